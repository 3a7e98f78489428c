"""The frozen CLIP backbone from open_clip: a configuration by name, weights from a local file.

Nothing is downloaded. ``checkpoint`` is a local state dict / safetensors file or None (random
initialisation); a hub tag such as ``openai`` is refused with a message that says which file to
fetch elsewhere and where to point the scenario; ``synthetic`` is cosim's own pre-training of the
configuration (``pretrain.py``), built once and cached. ``check_checkpoint`` reads a local file
before a run creates its folder: unreadable, not tensors, NaN values, or keys and shapes that do
not fit the configuration are one InputError naming the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cosim.errors import InputError
from cosim.input_checks import remembered
from cosim.learning.openclip import open_clip_module, quiet_random_init
from cosim.learning.pretrain import PretrainConfig, ensure_pretrained

if TYPE_CHECKING:
    from cosim.learning.towers import ClipModule


def model_names() -> list[str]:
    return list(open_clip_module().list_models())


def load_clip(name: str, checkpoint: Path | str | None, field: str = "learning.model"
              ) -> ClipModule:
    """An open_clip CLIP model by configuration name, weights from ``checkpoint`` or random;
    ``"synthetic"``: cosim's synthetic pre-training of this configuration (cached)."""
    open_clip = open_clip_module()
    if checkpoint == "synthetic":
        checkpoint = ensure_pretrained(PretrainConfig(model=name))
    _check_names(open_clip, name, checkpoint, field)
    with quiet_random_init():
        model = open_clip.create_model(name, pretrained=str(checkpoint) if checkpoint else None,
                                       device="cpu")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _check_names(open_clip, name: str, checkpoint: Path | str | None, field: str) -> None:
    """A known configuration, and a checkpoint that is a file (a hub tag gets a hint)."""
    if name not in open_clip.list_models():
        raise InputError(None, f"{field}.name", f"unknown open_clip configuration {name!r}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        tags = open_clip.list_pretrained_tags_by_model(name)
        hint = (f"; {str(checkpoint)!r} looks like a hub tag: download the {name} weights "
                f"({', '.join(tags) or 'a checkpoint'}) on a machine with internet and set "
                f"{field}.checkpoint to the local file") if str(checkpoint) in tags else ""
        raise InputError(None, f"{field}.checkpoint", f"no such file: {checkpoint}{hint}")


def check_checkpoint(name: str, checkpoint: Path | str | None, field: str = "learning.model") -> None:
    """Refuse a weights file ``load_clip`` could not use, before a run starts (a pass is
    remembered per file version). ``synthetic`` is cosim's own and not checked."""
    open_clip = open_clip_module()
    if checkpoint == "synthetic":
        checkpoint = None
    _check_names(open_clip, name, checkpoint, field)
    if checkpoint is not None:
        path = Path(checkpoint)
        remembered("checkpoint", [path], lambda: _check_weights(open_clip, name, path, f"{field}.checkpoint"))


def _check_weights(open_clip, name: str, path: Path, field: str) -> None:
    """Finite tensors, then open_clip's own loading into a weightless (meta) model, so keys and
    shapes are judged as ``load_clip`` judges them without allocating the model."""
    from open_clip import load_checkpoint

    from cosim.learning.tensor_checks import check_finite, check_kinds, first_line, load_weights

    if path.suffix not in (".npz", ".npy"):  # big_vision numpy weights: open_clip's own reader
        saved = load_weights(path, field, "a weights file")  # weights_only, as open_clip reads it
        state = saved.get("state_dict", saved) if isinstance(saved, dict) else saved
        if not isinstance(state, dict) or not state or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            raise InputError(path, field, "not a state dict of tensors")
        check_finite(path, field, state)
    with quiet_random_init(), warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # copying into meta tensors is a no-op, said per tensor
        skeleton = open_clip.create_model(name, device="meta")
        try:
            load_checkpoint(skeleton, str(path))
        except Exception as exc:  # missing or unexpected keys, shape mismatches
            raise InputError(path, field, f"does not fit {name}: {first_line(exc)}") from None
    if path.suffix not in (".npz", ".npy"):  # loading converts every tensor to the model's type
        check_kinds(path, field, {k.removeprefix("module."): v for k, v in state.items()},
                    skeleton.state_dict())
