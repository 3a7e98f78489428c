"""The deployed model's system cost, counted on PyTorch's meta device.

The model a fleet would fine-tune (the paper's CLIP ViT-B/16 with image, LiDAR and text towers,
PEFT modules and task heads) is too large to train for every simulated client on a CPU. The
learning runs on a small surrogate; what the radio and the vehicles' computers must carry is the
deployed model's: FLOPs of one local training step per sample and bytes of every module a client
downloads and uploads. Both are counted on the meta device (shapes only: no weights, no memory,
no arithmetic): the model is built with the surrogate's PEFT method, branches and heads on the
deployed open_clip configuration, and ``torch.utils.flop_counter.FlopCounterMode`` counts the
forward and backward of one batch (2 FLOPs per multiply-add, as the counter defines them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from cosim.learning.model import M3TModel, state_bytes
from cosim.learning.openclip import open_clip_module, quiet_random_init
from cosim.scenario import ModelConfig


def meta_model(cfg: ModelConfig) -> M3TModel:
    """``cfg``'s model (open_clip configuration ``cfg.name``) with every tensor on the meta device."""
    open_clip = open_clip_module()
    if cfg.name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip configuration {cfg.name!r}")
    random_init = cfg.model_copy(update={"checkpoint": None})
    with torch.device("meta"), quiet_random_init():
        clip = open_clip.create_model(cfg.name, pretrained=None, device="meta")
        return M3TModel(random_init, clip=clip)


@contextlib.contextmanager
def _trainable(model: M3TModel, names: Sequence[str]) -> Iterator[None]:
    """Only the named modules take gradients (the backbone never does)."""
    previous = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.trainable_parameters(list(names)):
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in previous.items():
            p.requires_grad_(flag)


def training_flops_per_sample(model: M3TModel, tasks: Sequence[str], modalities: Sequence[str],
                              batch: int = 2, names: Sequence[str] | None = None) -> float:
    """FLOPs of one training step (forward of the client's tasks, backward into its modules) per
    sample. The loss is the sum of the heads' outputs: the task losses' own FLOPs are negligible
    next to the towers', and any loss back-propagates through the same graph."""
    device = next(model.parameters()).device
    s = model.image_size
    inputs: dict = {}
    if "image" in modalities:
        inputs["image"] = torch.zeros(batch, 3, s, s, device=device)
    if "lidar" in modalities:  # both views of the sweep
        inputs["lidar"] = torch.zeros(batch, 3, s, s, device=device)
        inputs["lidar_bev"] = torch.zeros(batch, 3, s, s, device=device)
    if "text" in modalities:
        inputs["text"] = ["a photo of a street"] * batch
    if names is None:
        names = model.modules_for(list(tasks), list(modalities))
    model.train()
    with _trainable(model, names), FlopCounterMode(display=False) as counter:
        out = model(inputs, tasks=list(tasks))
        loss = sum(v.float().sum() for heads in out.values() for v in heads.values()
                   if isinstance(v, torch.Tensor) and v.is_floating_point())
        assert isinstance(loss, torch.Tensor)  # every head outputs tensors
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def module_bytes(model: M3TModel) -> dict[str, int]:
    """Bytes of every trainable module of ``model`` as stored (its parameter dtype)."""
    return {name: state_bytes(model.export_modules([name])) for name in model.module_names()}
