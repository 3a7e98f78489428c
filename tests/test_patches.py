"""The vision towers' training-time patch embedding against PyTorch's convolution."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cosim.learning.patches import PatchConv2d, patch_embedding


class _Tower(nn.Module):
    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv1 = conv


def _refused(*args, **kwargs):
    raise AssertionError("fell back to nn.Conv2d.forward")


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("size", [64, 67])  # 67: a partial patch the convolution drops
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float64, 1e-12)])
def test_patch_embedding_matches_convolution(bias, size, dtype, tol, monkeypatch):
    torch.manual_seed(0)
    reference = nn.Conv2d(3, 32, 8, stride=8, bias=bias).to(dtype)
    tower = _Tower(copy.deepcopy(reference))
    patch_embedding(tower)
    assert type(tower.conv1) is PatchConv2d
    x = torch.randn(5, 3, size, size, dtype=dtype)
    weights = torch.randn(5, 32, size // 8, size // 8, dtype=dtype)
    outs, grads = [], []
    for conv in (reference, tower.conv1):
        xi = x.clone().requires_grad_(True)
        with monkeypatch.context() as patch:
            if conv is tower.conv1:  # its own path, not the convolution by way of the fallback
                patch.setattr(nn.Conv2d, "forward", _refused)
            out = conv(xi)
        (out * weights).sum().backward()
        outs.append(out.detach())
        grads.append((xi.grad, *(p.grad for p in conv.parameters())))
    assert outs[0].shape == outs[1].shape
    assert torch.allclose(outs[0], outs[1], atol=tol, rtol=tol)
    for a, b in zip(grads[0], grads[1], strict=True):  # weight: sums of 5 x 64 products
        assert torch.allclose(a, b, atol=tol, rtol=tol), float((a - b).abs().max())
    with torch.no_grad():  # the convolution itself: the same bits
        assert torch.equal(reference(x), tower.conv1(x))


def test_overlapping_convolutions_are_left_alone():
    tower = _Tower(nn.Conv2d(3, 8, 3, padding=1))
    patch_embedding(tower)
    assert type(tower.conv1) is nn.Conv2d


def test_model_vision_towers_use_it():
    from cosim.learning.model import M3TModel
    from cosim.scenario import ModelConfig

    model = M3TModel(ModelConfig())
    assert type(model.image_tower.conv1) is PatchConv2d
    assert type(model.lidar_tower.conv1) is PatchConv2d
