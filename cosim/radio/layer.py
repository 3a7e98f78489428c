"""The radio layer: one SimPy process that turns vehicle positions into links.

Every radio step (default 100 ms) it evaluates all vehicles x all cells, runs the handoff / radio
link failure state machine, serves the active transfers and accumulates link windows. Work is
batched per SUMO step: at each SUMO step the positions of its K radio steps are interpolated and
the received powers of all K steps are computed in one numpy pass; the state machine then walks
the K steps one at a time, on the engine clock.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pyarrow as pa

from cosim.engine import Engine, until
from cosim.errors import InputError
from cosim.names import LEFT_NETWORK
from cosim.radio.background import BackgroundLoad
from cosim.radio.cells import Cells, build_cells
from cosim.radio.channel import Channel
from cosim.radio.handoff import BlockLinks, LinkEvent, LinkStateMachine
from cosim.radio.rates import LinkRates, cell_activity
from cosim.radio.slots import SlotStore
from cosim.radio.stats import RadioStats
from cosim.radio.transfers import Transfers
from cosim.radio.windows import LinkWindows
from cosim.scenario import RadioConfig
from cosim.trace_schemas import (
    CELL_SCHEMA,
    CELLS,
    HANDOFF_SCHEMA,
    HANDOFFS,
    LINK_WINDOWS,
    RADIO,
    RADIO_SCHEMA,
    WINDOW_SCHEMA,
)


class RadioLayer:
    """Coverage, SINR, handoffs, rates, transfers and link windows on the engine clock."""

    name = "radio"

    def __init__(self, cfg: RadioConfig, seed: int, mobility_step_s: float, net_file: Path | None,
                 source: Any = None):
        """``seed``: the scenario's connectivity seed; ``mobility_step_s``: SUMO's step, a whole
        number of radio steps; ``source``: the scenario file its input errors name."""
        self.cfg = cfg
        net = _read_network(net_file)
        self.bounds = net.getBoundary() if net is not None else (-math.inf, -math.inf, math.inf, math.inf)
        try:
            self.cells: Cells = build_cells(self.cfg, net)
        except ValueError as exc:
            raise InputError(source, "radio.cells", str(exc)) from None
        # The channel's fields cover the network (or, without one, the cells and 1.5 km around).
        area = self.bounds if net is not None else (
            self.cells.x.min() - 1500, self.cells.y.min() - 1500,
            self.cells.x.max() + 1500, self.cells.y.max() + 1500)
        self.step_s = self.cfg.step_s
        self.k_per_block = round(mobility_step_s / self.step_s)
        self.trace_every = round(self.cfg.trace_period_s / self.step_s)
        self.rng = np.random.default_rng([seed, 3])
        try:
            self.channel = Channel(self.cells, self.cfg.channel, self.rng, area, net)
        except ValueError as exc:
            raise InputError(source, "radio.channel", str(exc)) from None
        self.fsm = LinkStateMachine(self.cfg.handoff, self.cells.cochannel_group, self.cells.carrier_ghz,
                                    self.channel.noise_mw, self.cfg.channel.max_sinr_db, self.step_s,
                                    offload=np.array([k != "macro" for k in self.cells.kind]))
        self.store = SlotStore(len(self.cells))
        self.windows = LinkWindows()
        self.stats = RadioStats()
        self.rates = LinkRates(self.cfg.rate, self.cells, self.channel.noise_dbm)
        self.background = (BackgroundLoad(self.cfg.background, len(self.cells),
                                          np.random.default_rng([seed, 5]))
                           if self.cfg.background is not None else None)
        self.background_users = (self.background.users if self.background is not None
                                 else np.zeros((2, len(self.cells)), dtype=np.int64))
        self._block_ids = np.array([], dtype=object)
        self._slots = np.array([], dtype=np.int64)
        self._state: dict[str, np.ndarray] = self.store.gather(self._slots)
        self._row_of: dict[str, int] = {}
        self.block_t0 = 0.0
        self.block_serving = np.full((self.k_per_block, 0), -1, dtype=np.int32)
        self.block_avail = np.zeros((self.k_per_block, 0))
        self.block_rate = np.zeros((2, self.k_per_block, 0))
        self._fail_at = np.zeros(0)
        self._events: dict[str, list] = {key: [] for key in HANDOFF_SCHEMA.names}

    # ---- wiring -------------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        self.env = engine.env
        self.mobility = engine.layer("mobility")
        self.transfers = Transfers(engine.env, self)
        engine.traces.table(CELLS, CELL_SCHEMA).append(self._cell_rows())
        self.radio_table = engine.traces.table(RADIO, RADIO_SCHEMA)
        self.handoff_table = engine.traces.table(HANDOFFS, HANDOFF_SCHEMA)
        self.window_table = engine.traces.table(LINK_WINDOWS, WINDOW_SCHEMA)
        engine.env.process(self._run())

    def transfer(self, vehicle: str, nbytes: int, direction: str, timeout_s: float | None = None):
        """SimPy process moving ``nbytes`` to ("down") or from ("up") ``vehicle``."""
        return self.transfers.transfer(vehicle, nbytes, direction, timeout_s)

    def _cell_rows(self) -> dict[str, Any]:
        c = self.cells
        return {"cell": np.arange(len(c)), "id": list(c.ids), "kind": list(c.kind),
                "scenario": list(c.scenario), "x": c.x, "y": c.y, "height_m": c.height_m,
                "tx_power_dbm": c.tx_power_dbm, "antenna_gain_dbi": c.antenna_gain_dbi,
                "carrier_ghz": c.carrier_ghz, "bandwidth_mhz": c.bandwidth_hz / 1e6,
                "azimuth_deg": pa.array(c.azimuth_deg, pa.float64(), from_pandas=True),  # null: omni
                "downtilt_deg": c.downtilt_deg}

    # ---- the process ----------------------------------------------------------------------
    def _run(self):
        block = 0
        block_s = self.step_s * self.k_per_block
        while True:
            t0 = round(block * block_s, 9)
            self.transfers.settle(t0)  # up to here with the previous block's rates
            if self.background is not None and block > 0:
                self.background.advance(block_s)
                self.background_users = self.background.users
            self._begin_block(t0, block * self.k_per_block)
            self.transfers.reschedule()
            block += 1
            yield until(self.env, block * block_s, urgent=True)

    def _begin_block(self, t0: float, first_step: int) -> None:
        cur, up = self.mobility.current, self.mobility.upcoming
        self.store.scatter(self._slots, self._state)
        for vehicle in cur.left:
            self._vehicle_left(vehicle, t0)
        new = [v for v in cur.entered if v not in self.store.slot_of]
        for v in new:
            self.store.add(v, t0)
        ids, names, n = cur.ids, cur.ids.tolist(), len(cur.ids)  # a list iterates faster
        slots = np.fromiter(map(self.store.slot_of.__getitem__, names), np.int64, n)
        self._block_ids, self._slots = ids, slots
        self._row_of = dict(zip(names, range(n), strict=True))
        is_new = np.zeros(n, dtype=bool)
        if new:
            is_new[[self._row_of[v] for v in new]] = True
            self.channel.add_vehicles(slots[is_new])
        # Where each vehicle is at the next SUMO step (it stays put if it leaves before).
        x1, y1 = cur.x.copy(), cur.y.copy()
        up_row = dict(zip(up.ids.tolist(), range(len(up.ids)), strict=True))
        nxt = np.fromiter(map(up_row.get, names, itertools.repeat(-1)), np.int64, n)
        stay = nxt >= 0
        x1[stay], y1[stay] = up.x[nxt[stay]], up.y[nxt[stay]]
        self.stats.motion(np.hypot(x1 - cur.x, y1 - cur.y), cur.speed, self.step_s * self.k_per_block)
        self._state = self.store.gather(slots)
        rsrp, received = self._block_channel(slots, cur.x, cur.y, x1, y1)
        self.fsm.activity = cell_activity(self.cfg.interference, self._state["serving"], len(self.cells),
                                          self.background_users[0] if self.background is not None else None)
        links = self.fsm.run_block(self._state, rsrp, received, is_new, t0)
        rates = self.rates(links, received)
        self._account(links, rates)
        self._record(links, rates, rsrp, first_step)
        self.block_t0, self.block_serving, self.block_avail = t0, links.serving, links.avail_from
        self.block_rate = rates
        self._fail_at = np.full(n, np.inf)
        for k, e in reversed(links.events):
            if e.kind == "rlf":
                self._fail_at[e.row] = round(t0 + k * self.step_s, 9)
        self._flush()

    def _block_channel(self, slots: np.ndarray, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray,
                       y1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RSRP per RE (dBm) and total received power (mW) at the block's K radio steps: (K, N, C).

        ``sumo_steps``: the channel is evaluated where the vehicles are at this SUMO step and the
        next, and RSRP is interpolated linearly in dB between them (received power geometrically);
        ``radio_steps``: evaluated at every radio step, at positions interpolated linearly."""
        K = self.k_per_block
        if self.cfg.evaluate_at == "radio_steps":
            frac = (np.arange(K) / K)[:, None]
            xs, ys = x0 + frac * (x1 - x0), y0 + frac * (y1 - y0)
            rsrp = self.channel.rsrp_dbm(np.tile(slots, K), xs.ravel(), ys.ravel())
            rsrp = rsrp.reshape(K, len(slots), -1)
            return rsrp, self.channel.received_mw(rsrp)
        start = self._state["rsrp_next"]
        unknown = np.flatnonzero(np.isnan(start[:, 0]))  # vehicles new in this block
        both = self.channel.rsrp_dbm(np.concatenate([slots, slots[unknown]]),
                                     np.concatenate([x1, x0[unknown]]), np.concatenate([y1, y0[unknown]]))
        end = both[: len(slots)]
        start[unknown] = both[len(slots):]
        self._state["rsrp_next"] = end
        frac = np.arange(K, dtype=np.float32) / K
        diff = end - start
        step = np.power(np.float32(10.0), diff * np.float32(0.1 / K))
        rsrp = np.empty((K, *start.shape), dtype=np.float32)
        received = np.empty_like(rsrp)
        _interpolate_block(start, diff, frac, self.channel.received_mw(start), step, rsrp, received)
        return rsrp, received

    def _account(self, links: BlockLinks, rates: np.ndarray) -> None:
        """Link windows and the handoff trace for the block's events, step by step."""
        by_step: dict[int, list[LinkEvent]] = {}
        for k, e in links.events:
            by_step.setdefault(k, []).append(e)
        ids = self._block_ids
        done = 0  # steps accumulated so far; a step's events come before its rates
        for k in sorted(by_step):
            self.windows.accumulate(self._state, links.serving[done:k], rates[0, done:k])
            done = k
            tau = round(links.t0 + k * self.step_s, 9)
            self.windows.apply(self._state, by_step[k], ids, tau)
            for e in by_step[k]:
                self._add_event(tau, ids[e.row], e)
        self.windows.accumulate(self._state, links.serving[done:], rates[0, done:])

    def _add_event(self, tau: float, vehicle: str, e: LinkEvent) -> None:
        self.stats.event(e)
        for key, value in (("t", tau), ("vehicle", vehicle), ("from_cell", e.from_cell),
                           ("to_cell", e.to_cell), ("kind", e.kind),
                           ("interruption_s", e.interruption_s), ("ping_pong", e.ping_pong)):
            self._events[key].append(value)

    def _record(self, links: BlockLinks, rates: np.ndarray, rsrp: np.ndarray, first_step: int) -> None:
        n = len(self._block_ids)
        for k in range(links.serving.shape[0]):
            if (first_step + k) % self.trace_every or n == 0:
                continue
            s = links.serving[k]
            on = s >= 0
            rsrp_s = np.where(on, rsrp[k, np.arange(n), np.where(on, s, 0)], np.nan)
            self.radio_table.append({
                "t": np.full(n, round(links.t0 + k * self.step_s, 9)), "vehicle": self._block_ids,
                "serving_cell": s, "rsrp_dbm": pa.array(rsrp_s, pa.float32(), from_pandas=True),
                "sinr_db": pa.array(links.sinr_db[k], pa.float32(), from_pandas=True),
                "rate_bps": rates[0, k], "ul_rate_bps": rates[1, k],
            })
            self.stats.sinr(links.sinr_db[k])

    def _vehicle_left(self, vehicle: str, tau: float) -> None:
        slot = self.store.slot_of[vehicle]
        st = {name: arr[[slot]] for name, arr in self.store.arrays.items()}
        event = LinkEvent(0, "detach", int(st["serving"][0]), -1, 0.0, False)
        self.windows.apply(st, [event], np.array([vehicle], dtype=object), tau)
        self._add_event(tau, vehicle, event)
        self.transfers.fail_vehicle(vehicle, LEFT_NETWORK)
        self.store.remove(vehicle)

    def _flush(self) -> None:
        if self._events["t"]:
            self.handoff_table.append(self._events)
            self._events = {key: [] for key in HANDOFF_SCHEMA.names}
        rows = self.windows.drain()
        if rows:
            cols = list(zip(*rows, strict=True))
            self.window_table.append({
                "vehicle": cols[0], "cell": cols[1], "start": cols[2], "end": cols[3],
                "duration_s": np.array(cols[3]) - np.array(cols[2]), "mean_rate_bps": cols[4],
                "min_rate_bps": cols[5], "censored": cols[6],
            })

    def finish(self) -> None:
        """The run ended: settle transfers and close the windows still open (censored)."""
        self.transfers.settle(self.env.now)
        serving = self.block_serving[-1] if self.block_serving.size else np.zeros(0, np.int32)
        self.windows.close_all(self._state, serving, self._block_ids, self.env.now)
        self._flush()

    # ---- what transfers and schedulers read ------------------------------------------------
    @property
    def n_cells(self) -> int:
        return len(self.cells)

    def link_rows(self, vehicles: list[str]) -> np.ndarray:
        return np.array([self._row_of.get(v, -1) for v in vehicles], dtype=np.int64)

    def failure_times(self, rows: np.ndarray) -> np.ndarray:
        return np.where(rows >= 0, self._fail_at[np.maximum(rows, 0)], np.inf)

    def _step_now(self) -> int:
        K = self.block_serving.shape[0]
        return min(K - 1, max(0, int((self.env.now - self.block_t0) / self.step_s + 1e-9)))

    def serving_cell(self, vehicle: str) -> int:
        """The vehicle's serving cell now (-1: not connected or not in the network)."""
        row = self._row_of.get(vehicle)
        return -1 if row is None else int(self.block_serving[self._step_now(), row])

    def rate_bps(self, vehicle: str, direction: str = "up") -> float:
        """The vehicle's single-user rate now (what it would get alone in its cell)."""
        row = self._row_of.get(vehicle)
        if row is None:
            return 0.0
        return float(self.block_rate[0 if direction == "down" else 1, self._step_now(), row])

    def connected_since(self, vehicle: str) -> float | None:
        """Start of the vehicle's current connected window, None if it is not connected now."""
        if self.serving_cell(vehicle) < 0:
            return None
        start = float(self._state["win_start"][self._row_of[vehicle]])
        # The block is decided ahead: a window that opens later in it is not the current one.
        return start if start <= self.env.now else self.env.now

    def open_window(self, vehicle: str) -> dict[str, float] | None:
        """The vehicle's connected window so far: start, elapsed seconds, serving cell and the
        mean single-user downlink rate up to the end of the current radio step; None if not
        connected now."""
        start = self.connected_since(vehicle)
        if start is None:
            return None
        row = self._row_of[vehicle]
        k = self._step_now()
        # The window accumulators hold the whole block; take back the steps still to come.
        later = slice(k + 1, None)
        still_on = self.block_serving[later, row] >= 0
        total = self._state["win_sum"][row] - float(self.block_rate[0, later, row][still_on].sum())
        steps = int(self._state["win_n"][row]) - int(still_on.sum())
        return {"start": start, "elapsed_s": self.env.now - start,
                "serving_cell": int(self.block_serving[k, row]),
                "mean_rate_bps": total / steps if steps > 0 else 0.0}

    def completed_windows(self) -> list[tuple[float, float]]:
        """(end, duration) of every completed connected window so far (filter by end <= now)."""
        return list(zip(self.windows.connected_ends, self.windows.connected_durations, strict=True))

    def history_predictor(self, prior_s: float = 120.0):
        """A HistoryPredictor on this run's live state."""
        from cosim.radio.prediction import HistoryPredictor

        mobility = self.mobility

        def kinematics(vehicle: str):
            cur = mobility.current
            rows = np.flatnonzero(cur.ids == vehicle)
            if not len(rows):
                return None
            r = rows[0]
            return float(cur.x[r]), float(cur.y[r]), float(cur.speed[r]), float(cur.heading[r])

        return HistoryPredictor(self.completed_windows, self.connected_since, kinematics,
                                self.bounds, prior_s)

    def progress_fields(self) -> dict[str, str]:
        connected = int((self.block_serving[self._step_now()] >= 0).sum()) if self.block_serving.size else 0
        return {"connected": str(connected), "handoffs": str(self.stats.counts["handoff"])}

    def summary(self) -> dict[str, Any]:
        durations = np.array(self.windows.connected_durations)
        stays = [d for cell in self.windows.durations_by_cell.values() for d in cell]
        return {
            "cells": len(self.cells), **self.stats.summary(stays, self.env.now),
            "completed_link_windows": len(durations),
            "median_link_window_s": float(np.median(durations)) if len(durations) else None,
            "background": self.background.summary() if self.background is not None else None,
            "transfers_completed": self.transfers.completed,
            "transfers_failed": dict(self.transfers.failed),
        }


def _read_network(net_file: Path | None):
    """The SUMO network via sumolib (cell generators and the network's bounds need it)."""
    if net_file is None:
        return None
    import sumolib

    return sumolib.net.readNet(str(net_file))


@numba.njit(cache=True)
def _interpolate_block(start, diff, frac, received0, step, rsrp, received):  # pragma: no cover
    """RSRP in dB linear between the block's ends (start + frac_k diff, as numpy would in
    float32), and received power geometric: each step's the last one's times ``step``."""
    for k in range(frac.shape[0]):
        for i in range(start.shape[0]):
            for c in range(start.shape[1]):
                rsrp[k, i, c] = start[i, c] + frac[k] * diff[i, c]
                received[k, i, c] = received0[i, c] if k == 0 else received[k - 1, i, c] * step[i, c]
