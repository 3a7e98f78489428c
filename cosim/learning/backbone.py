"""The frozen CLIP backbone from open_clip: a configuration by name, weights from a local file.

Nothing is downloaded. ``checkpoint`` is a local state dict / safetensors file or None (random
initialisation); a hub tag such as ``openai`` is refused with a message that says which file to
fetch elsewhere and where to point the scenario; ``synthetic`` is cosim's own pre-training of the
configuration (``pretrain.py``), built once and cached.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cosim.errors import InputError
from cosim.learning.openclip import open_clip_module, quiet_random_init
from cosim.learning.pretrain import PretrainConfig, ensure_pretrained


def model_names() -> list[str]:
    return list(open_clip_module().list_models())


def load_clip(name: str, checkpoint: Path | str | None, field: str = "learning.model"
              ) -> torch.nn.Module:
    """An open_clip CLIP model by configuration name, weights from ``checkpoint`` or random;
    ``"synthetic"``: cosim's synthetic pre-training of this configuration (cached)."""
    open_clip = open_clip_module()
    if checkpoint == "synthetic":
        checkpoint = ensure_pretrained(PretrainConfig(model=name))
    if name not in open_clip.list_models():
        raise InputError(None, f"{field}.name", f"unknown open_clip configuration {name!r}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        tags = open_clip.list_pretrained_tags_by_model(name)
        hint = (f"; {str(checkpoint)!r} looks like a hub tag: download the {name} weights "
                f"({', '.join(tags) or 'a checkpoint'}) on a machine with internet and set "
                f"{field}.checkpoint to the local file") if str(checkpoint) in tags else ""
        raise InputError(None, f"{field}.checkpoint", f"no such file: {checkpoint}{hint}")
    with quiet_random_init():
        model = open_clip.create_model(name, pretrained=str(checkpoint) if checkpoint else None,
                                       device="cpu")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


