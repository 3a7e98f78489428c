"""Transfers over the radio as SimPy processes, simulated as fluid flows.

Bytes move at the vehicle's link rate, which is constant within a radio step; a cell's resources
in one direction are shared equally among its active transfers; nothing moves during a handoff
interruption. A transfer fails when its vehicle leaves the network (``left_network``), loses its
link (``radio_link_failure``), has no link to begin with (``out_of_coverage``) or runs past its
timeout (``timeout``).

Between change points (a transfer starts or ends, a vehicle fails, a SUMO step begins) every
transfer's rate is piecewise constant, so progress is integrated exactly and the next completion
instant is computed, not stepped to: no SimPy event per radio step, and exact completion times.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import simpy

from cosim.names import LEFT_NETWORK, OUT_OF_COVERAGE, RADIO_LINK_FAILURE, TRANSFER_TIMEOUT

DIRECTIONS = ("down", "up")


@dataclass(frozen=True)
class TransferResult:
    """How a transfer ended."""

    vehicle: str
    direction: str
    nbytes: int
    ok: bool
    reason: str | None  # None, left_network, radio_link_failure, out_of_coverage, timeout
    t_start: float
    t_end: float
    bytes_moved: float


@dataclass(eq=False)
class _Active:
    vehicle: str
    direction: int  # 0 down, 1 up
    nbytes: int
    t_start: float
    done: simpy.Event
    bits_left: float = field(init=False)

    def __post_init__(self) -> None:
        self.bits_left = 8.0 * self.nbytes


class LinkView(Protocol):
    """The current block of radio steps, as the radio layer publishes it."""

    step_s: float
    block_t0: float
    block_serving: np.ndarray  # (K, N)
    block_avail: np.ndarray  # (K, N)
    block_rate: np.ndarray  # (2, K, N) single-user rate, down / up (bit/s)
    background_users: np.ndarray  # (2, C) non-FL users sharing each cell, down / up

    @property
    def n_cells(self) -> int: ...

    def link_rows(self, vehicles: list[str]) -> np.ndarray: ...  # -1 if not in the network

    def failure_times(self, rows: np.ndarray) -> np.ndarray: ...  # next RLF time, inf if none


class Transfers:
    """The active transfers of a run."""

    def __init__(self, env: simpy.Environment, link: LinkView):
        self.env = env
        self.link = link
        self.active: list[_Active] = []
        self._settled_to = 0.0
        self._wake_generation = itertools.count()
        self._current_wake = -1
        self.completed = 0
        self.failed: dict[str, int] = {}

    # ---- the API ------------------------------------------------------------------------
    def transfer(self, vehicle: str, nbytes: int, direction: str, timeout_s: float | None = None
                 ) -> simpy.Process:
        """A process whose value is the TransferResult."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'down' or 'up', got {direction!r}")
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")
        return self.env.process(self._run(vehicle, int(nbytes), DIRECTIONS.index(direction), timeout_s))

    def _run(self, vehicle: str, nbytes: int, direction: int, timeout_s: float | None):
        now = self.env.now
        tr = _Active(vehicle, direction, nbytes, now, self.env.event())
        row = int(self.link.link_rows([vehicle])[0])
        if row < 0:
            return self._result(tr, False, LEFT_NETWORK, now)
        k = self._step_index(now)
        if self.link.block_serving[k, row] < 0:
            return self._result(tr, False, OUT_OF_COVERAGE, now)
        if nbytes == 0:
            return self._result(tr, True, None, now)
        self.settle(now)
        self.active.append(tr)
        self.reschedule()
        waits = [tr.done]
        if timeout_s is not None:
            waits.append(self.env.timeout(timeout_s))
        yield self.env.any_of(waits)
        if not tr.done.triggered:
            self.settle(self.env.now)
            self._end(tr, False, TRANSFER_TIMEOUT)
            self.reschedule()
        return tr.done.value

    # ---- called by the radio layer ----------------------------------------------------------
    def settle(self, t: float) -> None:
        """Move every active transfer's bits up to time ``t`` (rates of the current block)."""
        a = self._settled_to
        self._settled_to = max(a, t)
        if not self.active or t <= a:
            return
        bits = self._bits_between(a, t)
        for tr, b in zip(self.active, bits, strict=True):
            tr.bits_left = max(0.0, tr.bits_left - b)

    def fail_vehicle(self, vehicle: str, reason: str) -> None:
        """End the vehicle's transfers now (it left the network or lost its link)."""
        for tr in [t for t in self.active if t.vehicle == vehicle]:
            self._end(tr, False, reason)

    def reschedule(self) -> None:
        """Wake at the next change point inside the current block (or never: the radio layer
        settles and reschedules at every block start)."""
        generation = next(self._wake_generation)
        self._current_wake = generation
        if not self.active:
            return
        now = self.env.now
        when = min(self._next_completion(now), self._next_failure(now))
        if math.isfinite(when):
            timer = self.env.timeout(max(0.0, when - now))
            def wake(_e: object, g: int = generation) -> None:
                self._wake(g)

            timer.callbacks.append(wake)

    # ---- internals -------------------------------------------------------------------------
    def _wake(self, generation: int) -> None:
        if generation != self._current_wake:
            return  # superseded by a later reschedule
        now = self.env.now
        self.settle(now)
        rows = self.link.link_rows([t.vehicle for t in self.active])
        fail_at = self.link.failure_times(rows)
        for tr, t_fail in zip(list(self.active), fail_at, strict=True):
            if tr.bits_left <= 1e-6 * max(1.0, 8.0 * tr.nbytes):
                self._end(tr, True, None)
            elif t_fail <= now + 1e-9:
                self._end(tr, False, RADIO_LINK_FAILURE)
        self.reschedule()

    def _step_index(self, t: float) -> int:
        K = self.link.block_serving.shape[0]
        return min(K - 1, max(0, int(math.floor((t - self.link.block_t0) / self.link.step_s + 1e-9))))

    def _shares(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per active transfer and radio step: shared rate, usable-from time, step start."""
        lk = self.link
        K = lk.block_serving.shape[0]
        rows = lk.link_rows([t.vehicle for t in self.active])
        dirs = np.array([t.direction for t in self.active])
        present = rows >= 0
        safe = np.maximum(rows, 0)
        serving = np.where(present[:, None], lk.block_serving[:, safe].T, -1)  # (M, K)
        avail = lk.block_avail[:, safe].T
        alone = lk.block_rate[dirs[:, None], np.arange(K)[None, :], safe[:, None]]
        on = serving >= 0
        key = np.arange(K)[None, :] * (2 * lk.n_cells) + serving * 2 + dirs[:, None]
        counts = np.bincount(key[on], minlength=K * 2 * lk.n_cells)
        # the cell's resources go equally to its transfers and its background users
        users = counts[np.where(on, key, 0)] + lk.background_users[dirs[:, None], np.maximum(serving, 0)]
        share = np.where(on, alone / np.maximum(users, 1), 0.0)
        starts = lk.block_t0 + np.arange(K) * lk.step_s
        return share, avail, starts

    def _bits_between(self, a: float, b: float) -> np.ndarray:
        share, avail, starts = self._shares()
        lo = np.maximum(np.maximum(starts[None, :], avail), a)
        hi = np.minimum(starts[None, :] + self.link.step_s, b)
        return (share * np.clip(hi - lo, 0.0, None)).sum(axis=1)

    def _next_completion(self, now: float) -> float:
        share, avail, starts = self._shares()
        lo = np.maximum(np.maximum(starts[None, :], avail), now)
        usable = np.clip(starts[None, :] + self.link.step_s - lo, 0.0, None)
        cum = np.cumsum(share * usable, axis=1)
        left = np.array([t.bits_left for t in self.active])[:, None]
        done = cum >= left
        best = math.inf
        for i in np.flatnonzero(done.any(axis=1)):
            k = int(done[i].argmax())
            before = cum[i, k - 1] if k else 0.0
            best = min(best, lo[i, k] + (left[i, 0] - before) / share[i, k])
        return best

    def _next_failure(self, now: float) -> float:
        rows = self.link.link_rows([t.vehicle for t in self.active])
        times = self.link.failure_times(rows)
        future = times[times > now - 1e-9]
        return float(future.min()) if len(future) else math.inf

    def _end(self, tr: _Active, ok: bool, reason: str | None) -> None:
        if tr in self.active:
            self.active.remove(tr)
        if not tr.done.triggered:
            tr.done.succeed(self._result(tr, ok, reason, self.env.now))

    def _result(self, tr: _Active, ok: bool, reason: str | None, t_end: float) -> TransferResult:
        if ok:
            self.completed += 1
            tr.bits_left = 0.0
        else:
            assert reason is not None  # every failure names its reason
            self.failed[reason] = self.failed.get(reason, 0) + 1
        return TransferResult(tr.vehicle, DIRECTIONS[tr.direction], tr.nbytes, ok, reason,
                              tr.t_start, t_end, (8.0 * tr.nbytes - tr.bits_left) / 8.0)
