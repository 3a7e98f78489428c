"""A saved global model: the trainable modules' tensors (``global_modules.pt`` of a run).

Checked before a run starts, so a corrupt file (unreadable, not tensors, NaN values) is a
one-line input error, not a failed run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cosim.errors import InputError
from cosim.learning.tensor_checks import check_finite, check_kinds, load_weights

FIELD = "learning.init_modules"


def load_module_file(path: Path) -> dict[str, torch.Tensor]:
    saved = load_weights(path, FIELD, "a module file")
    if not isinstance(saved, dict) or not saved or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in saved.items()):
        raise InputError(path, FIELD, "not a state dict of module tensors")
    check_finite(path, FIELD, saved)
    return saved


def check_fits(path: Path, saved: dict[str, torch.Tensor], modules: dict[str, torch.Tensor]
               ) -> list[str]:
    """The saved modules this model has (``modules``: its tensors, on the meta device when
    checked before a run's folder), each of its shape and of its kind of number (a floating
    parameter is not started from integers, a counter not from floats); InputError otherwise."""
    known = [k for k in saved if k in modules]
    for key in known:
        want = modules[key]
        if tuple(saved[key].shape) != tuple(want.shape):
            raise InputError(path, FIELD, f"{key} has shape {tuple(saved[key].shape)}, the model "
                             f"{tuple(want.shape)} (another model config?)")
    check_kinds(path, FIELD, {k: saved[k] for k in known}, modules)
    if not known:
        raise InputError(path, FIELD, "holds none of this model's modules")
    return known


def apply_init_modules(path: Path, global_state: dict[str, torch.Tensor]) -> list[str]:
    """Start from a saved global model: overwrite ``global_state``'s modules with the file's;
    return the saved modules this model has no place for (a task adapter a model lacks)."""
    saved = load_module_file(path)
    for key in check_fits(path, saved, global_state):
        global_state[key] = saved[key].to(global_state[key].dtype)
    depth = {"heads": 2, "peft": 3}  # heads.<task>, peft.<branch>.<module>, task_adapter
    return sorted({".".join(k.split(".")[:depth.get(k.split(".")[0], 1)])
                   for k in saved if k not in global_state})
