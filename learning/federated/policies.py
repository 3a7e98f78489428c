"""Scheduling policies: who is picked at the start of a round.

A policy is a small class with ``select(view, candidates, k) -> chosen client indices``; the
view holds only what a server could know at decision time (current links and rates, predicted
link windows, estimated completion times, tasks, past participation). Policies are registered by
name; a user's own policy is given as a dotted path ``package.module:ClassName``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from cosim.errors import InputError


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


class AllConnected:
    """Everyone connected now (k is ignored)."""

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        return [c.client for c in candidates if c.connected]


class RandomPolicy:
    """k connected clients drawn at random (seeded)."""

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

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        scored = []
        for c in candidates:
            need = c.est_completion_s
            if c.connected and need <= view.deadline_s and c.predicted_window_s >= need:
                scored.append((c.predicted_window_s - need, -c.client, c.client))
        return [client for *_, client in sorted(scored, reverse=True)[:k]]


class RateAware:
    """The k connected clients with the best bottleneck rate (min of down and up)."""

    def select(self, view: ServerView, candidates: list[Candidate], k: int) -> list[int]:
        ranked = sorted((c for c in candidates if c.connected),
                        key=lambda c: (-min(c.dl_rate_bps, c.ul_rate_bps), c.client))
        return [c.client for c in ranked[:k]]


REGISTRY = {"all_connected": AllConnected, "random": RandomPolicy,
            "availability_aware": AvailabilityAware, "rate_aware": RateAware}


def make_policy(name: str, seed: int):
    """A registered policy by name, or ``module:Class`` from the user's code."""
    if name in REGISTRY:
        cls = REGISTRY[name]
        return cls(seed) if cls is RandomPolicy else cls()
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise InputError(None, "scheduling.policy", f"cannot load {name!r}: {exc}") from None
        return cls()
    raise InputError(None, "scheduling.policy",
                     f"unknown policy {name!r} (known: {', '.join(REGISTRY)}; or module:Class)")
