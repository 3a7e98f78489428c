"""Scheduling policies: who is picked at the start of a round.

A policy is a small class with ``select(view, candidates, k) -> chosen client indices``; the
view holds only what a server could know at decision time (current links and rates, predicted
link windows, estimated completion times, tasks, past participation). Policies are registered by
name; a user's own policy is given as a dotted path ``package.module:ClassName``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from cosim.errors import InputError
from cosim.registry import Registry


@dataclass(frozen=True)
class Candidate:
    client: int
    vehicle: str
    connected: bool
    serving_cell: int
    dl_rate_bps: float
    ul_rate_bps: float
    predicted_window_s: float  # predicted remaining connected time
    bytes_down: int
    bytes_up: int
    compute_s: float
    tasks: tuple[str, ...]
    modalities: tuple[str, ...]
    samples: int
    parked: bool
    rounds_selected: int
    rounds_completed: int
    # reported by the client after its last completed update (a policy that reads it sets
    # reads_losses; without, a sync round's may come after the next selection: overlap)
    last_loss: float | None = None
    last_round: int = 0  # the round it last took part in

    @property
    def est_completion_s(self) -> float:
        """Download + compute + upload at today's single-user rates (optimistic: no sharing)."""
        if self.dl_rate_bps <= 0 or self.ul_rate_bps <= 0:
            return float("inf")
        return 8 * self.bytes_down / self.dl_rate_bps + self.compute_s + 8 * self.bytes_up / self.ul_rate_bps


@dataclass(frozen=True)
class ServerView:
    now: float
    round: int
    deadline_s: float


class Policy(Protocol):
    """What the server asks of a scheduling policy."""

    @property
    def reads_losses(self) -> bool:
        """Whether it reads the losses clients report (``Candidate.last_loss``): then each update
        must be trained by its client's next selection (no overlap; FedBuff trains arrivals at
        once)."""
        ...

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]: ...


@dataclass(frozen=True)
class UserPolicy:
    """A ``module:Class`` policy from the user's code, with what its class declares: one that does
    not declare ``reads_losses`` is taken to read the losses (the safe assumption)."""

    inner: Any
    reads_losses: bool

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        """The user's choice, checked: what it raises or returns wrongly is said in one line
        naming the field, not an internal error in the server that indexes by it."""
        name = f"{type(self.inner).__module__}:{type(self.inner).__qualname__}"
        try:
            chosen = self.inner.select(view, candidates, k)
        except Exception as exc:
            said = " ".join(str(exc).split())[:160]
            raise InputError(None, "scheduling.policy", f"{name}.select raised "
                             f"{type(exc).__name__}" + (f": {said}" if said else "")) from exc
        ids = {c.client for c in candidates}
        if (not isinstance(chosen, list | tuple)
                or not all(isinstance(c, int | np.integer) and not isinstance(c, bool)
                           for c in chosen)
                or not {int(c) for c in chosen} <= ids or len(set(chosen)) != len(chosen)):
            raise InputError(None, "scheduling.policy", f"{name}.select returned "
                             f"{repr(chosen)[:80]}: not a list of distinct client ids from its "
                             "candidates")
        return [int(c) for c in chosen]


class AllConnected:
    """Everyone connected now (k is ignored)."""

    reads_losses = False  # FedBuff may train a buffer's arrivals together

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        return [c.client for c in candidates if c.connected]


class RandomPolicy:
    """k connected clients drawn at random (seeded)."""

    reads_losses = False  # FedBuff may train a buffer's arrivals together

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng([seed, 31])

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        pool = [c.client for c in candidates if c.connected]
        if len(pool) <= k:
            return pool
        return sorted(int(x) for x in self.rng.choice(pool, size=k, replace=False))


class AvailabilityAware:
    """Connected clients whose predicted link window covers their estimated completion time
    (and the round deadline), ranked by that margin."""

    reads_losses = False  # FedBuff may train a buffer's arrivals together

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        scored = []
        for c in candidates:
            need = c.est_completion_s
            if c.connected and need <= view.deadline_s and c.predicted_window_s >= need:
                scored.append((c.predicted_window_s - need, -c.client, c.client))
        return [client for *_, client in sorted(scored, reverse=True)[:k]]


class RateAware:
    """The k connected clients with the best bottleneck rate (min of down and up)."""

    reads_losses = False  # FedBuff may train a buffer's arrivals together

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        ranked = sorted((c for c in candidates if c.connected),
                        key=lambda c: (-min(c.dl_rate_bps, c.ul_rate_bps), c.client))
        return [c.client for c in ranked[:k]]


def _feasible(view: ServerView, c: Candidate, need: float) -> bool:
    return c.connected and need <= view.deadline_s and c.predicted_window_s >= need


def _shared_need(c: Candidate, cell_count: int) -> float:
    """Completion estimate when ``cell_count`` picked clients share the cell equally."""
    if c.dl_rate_bps <= 0 or c.ul_rate_bps <= 0:
        return float("inf")
    n = max(cell_count, 1)
    return 8 * c.bytes_down * n / c.dl_rate_bps + c.compute_s + 8 * c.bytes_up * n / c.ul_rate_bps


class DeadlineAware:
    """Greedy: add clients (fastest first) while the number expected to finish before the
    deadline, with the picked clients sharing their cells, goes up."""

    reads_losses = False  # FedBuff may train a buffer's arrivals together

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        pool = sorted((c for c in candidates if c.connected), key=lambda c: (c.est_completion_s, c.client))
        chosen: list[Candidate] = []
        best = 0
        for c in pool:
            trial = [*chosen, c]
            cells: dict[int, int] = {}
            for x in trial:
                cells[x.serving_cell] = cells.get(x.serving_cell, 0) + 1
            done = sum(_feasible(view, x, _shared_need(x, cells[x.serving_cell])) for x in trial)
            if done > best:
                chosen, best = trial, done
            if len(chosen) == k:
                break
        return [c.client for c in chosen]


class ModalityTaskAware:
    """Cover every task and modality among feasible clients first, then fill by margin."""

    reads_losses = False  # FedBuff may train a buffer's arrivals together

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        feasible = [c for c in candidates if _feasible(view, c, c.est_completion_s)]
        margin = {c.client: c.predicted_window_s - c.est_completion_s for c in feasible}
        chosen: list[Candidate] = []
        covered: set[str] = set()
        while len(chosen) < k:
            rest = [c for c in feasible if c not in chosen]
            if not rest:
                break
            seen = frozenset(covered)

            def gain(c: Candidate, seen: frozenset[str] = seen) -> tuple[int, float, int]:
                return len((set(c.tasks) | set(c.modalities)) - seen), margin[c.client], -c.client

            best = max(rest, key=gain)
            chosen.append(best)
            covered |= set(best.tasks) | set(best.modalities)
        return [c.client for c in chosen]


class Oort:
    """Oort (Lai et al., OSDI 2021): statistical utility |B| sqrt(mean loss^2) with a staleness
    bonus, times (T / t)^alpha for clients slower than the preferred duration T (the deadline);
    a share epsilon of the slots explores clients never picked."""

    reads_losses = True  # the losses clients report: FedBuff trains each arrival at once

    def __init__(self, seed: int = 0, epsilon: float = 0.2, alpha: float = 2.0):
        self.rng = np.random.default_rng([seed, 37])
        self.epsilon, self.alpha = epsilon, alpha

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        pool = [c for c in candidates if c.connected]
        fresh = [c for c in pool if c.rounds_selected == 0]
        known = [c for c in pool if c.rounds_selected > 0]
        explore = min(len(fresh), max(1, round(self.epsilon * k)) if fresh else 0, k)
        picked = []
        if explore:
            picked = [fresh[i].client for i in sorted(self.rng.choice(len(fresh), explore, replace=False))]

        def utility(c: Candidate) -> float:
            loss = c.last_loss if c.last_loss is not None else 1.0
            stat = c.samples * abs(loss) + np.sqrt(0.1 * np.log(max(view.round, 2)) / max(c.last_round, 1))
            t = c.est_completion_s
            slow = (view.deadline_s / t) ** self.alpha if t > view.deadline_s else 1.0
            return float(stat * slow)

        ranked = sorted(known + [c for c in fresh if c.client not in picked],
                        key=lambda c: (-utility(c), c.client))
        picked += [c.client for c in ranked[: k - len(picked)]]
        return picked


class Oracle(AvailabilityAware):
    """Availability-aware with the true future link windows (an upper bound): the layer feeds it
    the oracle predictor, read from a recorded run of the same scenario and seed."""


def _policy_class_problem(found: object) -> str | None:
    """What keeps a user's object from being a scheduling policy class (None: nothing)."""
    if not isinstance(found, type):
        return f"it is a {type(found).__name__}, not a class"
    select = inspect.getattr_static(found, "select", None)
    static = isinstance(select, staticmethod)
    if isinstance(select, staticmethod | classmethod):
        select = select.__func__
    if not inspect.isfunction(select):
        return "it has no select(view, candidates, k) method"
    try:
        inspect.signature(select).bind(*([None] * (3 if static else 4)))
    except (TypeError, ValueError):
        return "its select does not take (view, candidates, k)"
    try:
        inspect.signature(found).bind()
    except (TypeError, ValueError):
        return "it cannot be built without arguments"
    return None


# keyed by cosim.names.POLICIES, the names the scenario accepts (or a user's module:Class)
REGISTRY: Registry[type] = Registry("policy", "scheduling.policy", {
    "all_connected": AllConnected, "random": RandomPolicy, "availability_aware": AvailabilityAware,
    "rate_aware": RateAware, "deadline_aware": DeadlineAware,
    "modality_task_aware": ModalityTaskAware, "oort": Oort, "oracle": Oracle},
    check=_policy_class_problem)


def make_policy(name: str, seed: int) -> Policy:
    """A registered policy by name, or ``module:Class`` from the user's code."""
    cls = policy_class(name)
    if name in REGISTRY:
        return cls(seed) if cls in (RandomPolicy, Oort) else cls()
    policy = cls()
    return UserPolicy(policy, bool(inspect.getattr_static(policy, "reads_losses", True)))


def policy_class(name: str) -> type:
    """The class ``name`` selects: a registered policy, or a user's ``module:Class`` (imported
    now) checked to be a policy class; an InputError naming what is wrong otherwise."""
    return REGISTRY.resolve(name)
