"""The vision towers' patch embedding, trained through as one matrix product.

A ViT's ``conv1`` has kernel = stride = patch size: each token is one patch times the weight. The
LiDAR tower trains through it (its stems sit below it), and oneDNN's backward of that convolution
(the input's gradient, three channels out of a 128-wide token) runs at a quarter of the speed of
the same arithmetic as a matrix product: 7.8-10 ms against 2.7 ms for 24 LiDAR views of
cosim-tiny on one CPU thread, about 3 % of a batched pass. With gradients on, the patches are
cut out (an exact copy) and multiplied by the flattened weight; outputs and gradients agree with
the convolution to float rounding (``tests/test_patches.py``). Without gradients (the cached
prefix, evaluation) it is the convolution. In bf16 (``precision.py``) the product runs in bfloat16
under autocast like any linear layer: no path of its own is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchConv2d(nn.Conv2d):
    """``nn.Conv2d`` over non-overlapping patches whose training-time forward is a matmul."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and _is_patchify(self) and x.dim() == 4):
            return super().forward(x)
        n, c, h, w = x.shape
        ph, pw = self.kernel_size
        gh, gw = h // ph, w // pw
        x = x[:, :, : gh * ph, : gw * pw]  # as the convolution: a partial patch is dropped
        rows = x.reshape(n, c, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5).reshape(n * gh * gw, c * ph * pw)
        out = F.linear(rows, self.weight.reshape(self.out_channels, -1), self.bias)
        return out.reshape(n, gh, gw, self.out_channels).permute(0, 3, 1, 2)


def _is_patchify(conv: nn.Conv2d) -> bool:
    return (conv.kernel_size == conv.stride and conv.padding == (0, 0) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding_mode == "zeros")


def patch_embedding(tower: nn.Module) -> None:
    """A vision tower's ``conv1``, when it cuts non-overlapping patches, becomes ``PatchConv2d``
    (same parameters)."""
    conv = getattr(tower, "conv1", None)
    if type(conv) is nn.Conv2d and _is_patchify(conv):
        conv.__class__ = PatchConv2d
