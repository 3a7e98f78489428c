"""Update compression on the uplink: what the server receives from a client, and why it differs
from what the client trained. fp16 sends the modules in half precision; int8 sends the update
(trained minus downloaded values) as 8-bit integers with one float32 scale per tensor
(symmetric, max-abs: the simplest of the quantisers federated-learning papers compare)."""

from __future__ import annotations

import torch

State = dict[str, torch.Tensor]
METHODS = ("none", "fp16", "int8")
BYTES_PER_VALUE = {"fp16": 2, "int8": 1}  # on the air, for a floating-point tensor's values
SCALE_BYTES = {"int8": 4}  # plus one float32 scale per tensor


def compress(modules: State, start: State, method: str) -> State:
    """The modules as the server reconstructs them after ``method`` on the air."""
    if method not in METHODS:
        raise ValueError(f"unknown compression {method!r} (one of {', '.join(METHODS)})")
    if method == "none":
        return modules
    out = {}
    for key, value in modules.items():
        if not value.is_floating_point():
            out[key] = value  # counters and other integer buffers travel as they are
        elif method == "fp16":
            out[key] = value.to(torch.float16).to(value.dtype)
        else:
            base = start[key].to(value.dtype)
            delta = value - base
            scale = delta.abs().max() / 127.0
            q = torch.round(delta / scale).clamp(-127, 127) if scale > 0 else torch.zeros_like(delta)
            out[key] = base + q * scale
    return out
