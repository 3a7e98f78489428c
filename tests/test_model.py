"""The multi-modal multi-task model on the tiny CPU configuration."""

from __future__ import annotations

import math

import pytest
import torch

from cosim.learning.classes import IGNORE_INDEX
from cosim.learning.model import M3TModel, state_bytes
from cosim.learning.tasks import SPECS, task_loss
from cosim.scenario import ModelConfig

torch.manual_seed(0)


@pytest.fixture(scope="module")
def tiny_clip():
    from cosim.learning.backbone import load_clip

    return load_clip("cosim-tiny", None)


def _model(tiny_clip, **cfg) -> M3TModel:
    import copy

    torch.manual_seed(0)
    return M3TModel(ModelConfig(**cfg), clip=copy.deepcopy(tiny_clip))


def _batch(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"image": torch.randn(b, 3, 64, 64, generator=g),
            "lidar": torch.randn(b, 3, 64, 64, generator=g),
            "lidar_bev": torch.randn(b, 3, 64, 64, generator=g),
            "text": ["a sunny afternoon in San Francisco"] * b}


def _targets(b: int = 2, size: int = 32) -> dict:
    """Structured targets a model can fit: halves, a few centres, offsets."""
    labels = torch.full((b, size, size), 3, dtype=torch.long)
    labels[:, :, size // 2:] = 7
    labels[:, :2] = IGNORE_INDEX
    heat = torch.zeros(b, 4, size, size)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for c, (cy, cx) in enumerate([(8, 8), (20, 24)]):
        heat[:, c] = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
    mask = heat.amax(1) == 1
    return {
        "seg3d": {"labels": labels},
        "det3d": {"heatmap": heat, "reg": torch.full((b, 8, size, size), 0.5), "mask": mask},
        "pan2d": {"labels": labels,
                  "center": heat[:, :1], "offset": torch.ones(b, 2, size, size),
                  "offset_mask": labels == 7},
        "det2d": {"heatmap": heat, "reg": torch.full((b, 4, size, size), -0.3), "mask": mask},
    }


def test_every_head_and_branch_has_the_right_shape(tiny_clip):
    model = _model(tiny_clip)
    feats = model.encode(_batch())
    assert feats["image"].shape == feats["lidar"].shape == (2, 64, 128)  # 8 x 8 patches, E = 128
    assert feats["text"].shape == (2, 128)
    out = model(_batch())
    regression = {"seg3d": 0, "det3d": 8, "pan2d": 3, "det2d": 4}
    for task, o in out.items():
        assert o["scores"].shape == (2, len(SPECS[task].classes), 32, 32)
        assert o["reg"].shape == (2, regression[task], 32, 32)
    assert len(SPECS["seg3d"].classes) == 23 and len(SPECS["pan2d"].classes) == 28


def test_each_task_decodes_its_own_view(tiny_clip):
    """det3d's grid is the LiDAR BEV, seg3d's the range view, the 2D tasks' the image: changing
    one view's input moves the tasks on it and leaves the others as they were."""
    model = _model(tiny_clip).eval()
    batch = _batch()
    with torch.no_grad():
        before = model(batch)
        bev = dict(batch, lidar_bev=batch["lidar_bev"] + 1.0)
        after = model(bev)
    assert not torch.allclose(after["det3d"]["scores"], before["det3d"]["scores"])
    for task in ("seg3d", "pan2d", "det2d"):
        assert torch.equal(after[task]["scores"], before[task]["scores"]), task
    with torch.no_grad():  # the image reaches the 3D tasks only as a global context vector
        shifted = dict(batch, image=batch["image"].roll(3, dims=-1))
        moved = model(shifted)
    assert not torch.allclose(moved["pan2d"]["scores"], before["pan2d"]["scores"])


@pytest.mark.parametrize("method", ["adapter", "lora", "prompt", "moe_adapter"])
def test_frozen_backbone_gets_no_gradient(tiny_clip, method):
    model = _model(tiny_clip, peft={"method": method})
    model.train()
    out = model(_batch())
    targets = _targets()
    loss = sum(task_loss(t, out[t], targets[t]) for t in out) + model.aux_loss()
    loss.backward()
    backbone = list(model.backbone_parameters())
    assert backbone and all(not p.requires_grad and p.grad is None for p in backbone)
    trained = model.trainable_parameters(model.module_names())
    assert all(p.grad is not None for p in trained)
    assert {id(p) for p in trained}.isdisjoint({id(p) for p in backbone})


def test_module_export_import_round_trip_and_size(tiny_clip):
    a, b = _model(tiny_clip), _model(tiny_clip)
    with torch.no_grad():
        for p in a.trainable_parameters(a.module_names()):
            p.add_(torch.randn_like(p))
    names = a.module_names()
    state = a.export_modules(names)
    assert state_bytes(state) == sum(v.numel() * 4 for v in state.values() if v.is_floating_point()) \
        + sum(v.numel() * 8 for v in state.values() if not v.is_floating_point())
    b.import_modules(state)
    assert all(torch.equal(state[k], v) for k, v in b.export_modules(names).items())
    b.eval(), a.eval()
    with torch.no_grad():
        oa, ob = a(_batch()), b(_batch())
    assert all(torch.allclose(oa[t]["scores"], ob[t]["scores"]) for t in oa)
    # a client without LiDAR and with 2D tasks only trains (and uploads) fewer modules
    sub = a.modules_for(["pan2d", "det2d"], ["image", "text"])
    assert not any(n.startswith("peft.lidar") or n in ("heads.seg3d", "heads.det3d") for n in sub)
    assert state_bytes(a.export_modules(sub)) < state_bytes(state)


def test_hub_tag_is_refused_with_a_hint(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="hub tag"):
        ModelConfig(checkpoint="openai")


def test_local_checkpoint_loads(tiny_clip, tmp_path):
    from cosim.learning.backbone import load_clip

    path = tmp_path / "tiny.pt"
    torch.save(tiny_clip.state_dict(), path)
    loaded = load_clip("cosim-tiny", path)
    assert all(torch.equal(x, y) for x, y in zip(loaded.state_dict().values(),
                                                 tiny_clip.state_dict().values(), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("classifier", ["linear", "text"])
def test_a_few_dozen_steps_halve_every_task_loss(tiny_clip, classifier):
    model = _model(tiny_clip, classifier=classifier)
    model.train()
    params = model.trainable_parameters(model.module_names())
    opt = torch.optim.Adam(params, lr=3e-3)
    batch, targets = _batch(), _targets()
    first = None
    for _ in range(40):
        out = model(batch)
        losses = {t: task_loss(t, out[t], targets[t]) for t in out}
        first = first or {t: v.item() for t, v in losses.items()}
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    last = {t: v.item() for t, v in losses.items()}
    for t in first:
        assert last[t] < 0.5 * first[t], (t, first[t], last[t])
    assert all(math.isfinite(v) for v in last.values())


@pytest.mark.parametrize("skip_channels", [0, 3])
def test_channels_last_head_equals_plain_nchw_convolutions(skip_channels):
    """The heads keep their weights and maps channels-last (oneDNN's layout: faster on a CPU);
    that changes no value: maps and gradients equal PyTorch's NCHW convolutions on the same
    weights, written out here with contiguous tensors (float64)."""
    from torch.nn import functional as F

    from cosim.learning.heads import DenseHead

    torch.manual_seed(0)
    head = DenseHead(SPECS["det2d"], 16, 4, 8, "linear", skip_channels=skip_channels).double()
    assert head.up1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not head.up1.weight.is_contiguous()
    tokens = torch.randn(2, 16, 16, dtype=torch.float64, requires_grad=True)
    skip = torch.randn(2, 3, 32, 32, dtype=torch.float64) if skip_channels else None
    out = head(tokens, skip)
    got = torch.cat([out["scores"], out["reg"]], dim=1)
    (got_grad,) = torch.autograd.grad(got.square().sum(), tokens)

    x = tokens.transpose(1, 2).reshape(2, 16, 4, 4).contiguous()
    x = F.conv_transpose2d(x, head.up1.weight.contiguous(), head.up1.bias, stride=2, padding=1)
    x = F.relu(F.batch_norm(x, None, None, head.norm.weight, head.norm.bias, training=True))
    x = F.conv_transpose2d(x, head.up2.weight.contiguous(), head.up2.bias, stride=2, padding=1)
    if skip_channels:
        x = F.relu(F.batch_norm(x, None, None, head.norm2.weight, head.norm2.bias, training=True))
        x = torch.cat([x, F.adaptive_avg_pool2d(skip, 16).contiguous()], dim=1)
        x = F.conv2d(x, head.out.weight.contiguous(), head.out.bias, padding=1)
    (want_grad,) = torch.autograd.grad(x.square().sum(), tokens)
    assert got.shape == x.shape == (2, len(SPECS["det2d"].classes) + SPECS["det2d"].regression, 16, 16)
    assert torch.allclose(got, x, rtol=0, atol=1e-12)
    assert torch.allclose(got_grad, want_grad, rtol=0, atol=1e-12)
