"""Module-level federated averaging: each module is averaged over the clients that trained it,
weighted by the samples behind it; modules nobody trained keep their global value. Clients that
lack a modality or a task upload only the modules they trained, so partial updates need nothing
special.
"""

from __future__ import annotations

import torch


def fedavg(global_state: dict[str, torch.Tensor],
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
