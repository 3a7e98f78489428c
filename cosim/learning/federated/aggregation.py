"""Module-level federated averaging: each module is averaged over the clients that trained it,
weighted by the samples behind it; modules nobody trained keep their global value. Clients that
lack a modality or a task upload only the modules they trained, so partial updates need nothing
special.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def fedavg(global_state: Mapping[str, torch.Tensor],
           updates: list[tuple[dict[str, torch.Tensor], float]]) -> dict[str, torch.Tensor]:
    """New global state from (update state-dict subset, weight) pairs."""
    sums: dict[str, torch.Tensor] = {}
    weights: dict[str, float] = {}
    for state, weight in updates:
        for key, value in state.items():
            acc = value.double() * weight
            sums[key] = sums[key] + acc if key in sums else acc
            weights[key] = weights.get(key, 0.0) + weight
    out = dict(global_state)
    for key, total in sums.items():
        mean = total / weights[key]
        ref = global_state.get(key, next(s[key] for s, _ in updates if key in s))
        out[key] = mean.round().to(ref.dtype) if not ref.is_floating_point() else mean.to(ref.dtype)
    return out


def staleness_weight(kind: str, staleness: int, a: float, b: float) -> float:
    """s(tau) of FedAsync (Xie et al., 2019): constant, polynomial (1 + tau)^-a, or hinge
    (1 up to b, then 1 / (a (tau - b) + 1))."""
    if kind == "constant":
        return 1.0
    if kind == "polynomial":
        return float((1.0 + staleness) ** (-a))
    return 1.0 if staleness <= b else 1.0 / (a * (staleness - b) + 1.0)


def mix(global_state: Mapping[str, torch.Tensor], client_state: dict[str, torch.Tensor],
        weight: float) -> dict[str, torch.Tensor]:
    """FedAsync's update: w <- (1 - weight) w + weight w_client, for the modules the client sent."""
    out = dict(global_state)
    for key, value in client_state.items():
        g = global_state[key]
        mixed = (1.0 - weight) * g.double() + weight * value.double()
        out[key] = mixed.to(g.dtype) if g.is_floating_point() else mixed.round().to(g.dtype)
    return out


class FedBuffer:
    """FedBuff (Nguyen et al., 2022): collect K staleness-weighted deltas (client - the version it
    started from), then apply their mean, scaled by the server learning rate."""

    def __init__(self, size: int, server_lr: float):
        self.size, self.server_lr = size, server_lr
        self.deltas: list[tuple[dict[str, torch.Tensor], float]] = []

    def add(self, start: Mapping[str, torch.Tensor], client: dict[str, torch.Tensor], weight: float) -> None:
        self.deltas.append(({k: v.double() - start[k].double() for k, v in client.items()}, weight))

    def full(self) -> bool:
        return len(self.deltas) >= self.size

    def apply(self, global_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        for delta, weight in self.deltas:
            for key, value in delta.items():
                sums[key] = sums.get(key, 0.0) + weight * value
                counts[key] = counts.get(key, 0) + 1
        out = dict(global_state)
        for key, total in sums.items():
            g = global_state[key]
            new = g.double() + self.server_lr * total / counts[key]
            out[key] = new.to(g.dtype) if g.is_floating_point() else new.round().to(g.dtype)
        self.deltas = []
        return out


def cloud_average(global_state: Mapping[str, torch.Tensor],
                  edges: list[tuple[dict[str, torch.Tensor], dict[str, float]]]) -> dict[str, torch.Tensor]:
    """Cloud step of hierarchical FL: average edge models, each module weighted by the samples
    behind it at that edge (``edges``: (edge state, {key: samples})). With every client's update
    in some edge, this equals flat FedAvg over all clients."""
    sums: dict[str, torch.Tensor] = {}
    weights: dict[str, float] = {}
    for state, samples in edges:
        for key, weight in samples.items():
            if weight <= 0:
                continue
            acc = state[key].double() * weight
            sums[key] = sums[key] + acc if key in sums else acc
            weights[key] = weights.get(key, 0.0) + weight
    out = dict(global_state)
    for key, total in sums.items():
        ref = global_state[key]
        mean = total / weights[key]
        out[key] = mean.to(ref.dtype) if ref.is_floating_point() else mean.round().to(ref.dtype)
    return out


def samples_per_key(updates: list[tuple[dict[str, torch.Tensor], float]]) -> dict[str, float]:
    """Total weight behind each key of a set of updates (what an edge reports to the cloud)."""
    out: dict[str, float] = {}
    for state, weight in updates:
        for key in state:
            out[key] = out.get(key, 0.0) + weight
    return out
