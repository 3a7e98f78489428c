"""Task heads: fused tokens -> a dense map through two transposed convolutions (as in the paper).

Each head reshapes the (B, P, E) token grid to (B, E, g, g) and upsamples it 4x with two stride-2
transposed convolutions. Output channels: the task's class scores, then its regression channels
(``cosim/learning/tasks/<task>.py`` says what they mean); det3d's tokens come from the LiDAR's
bird's-eye-view pseudo-image, so its grid is already the BEV grid. Class scores come from a
1x1 linear classifier, or (``classifier: text``) from the cosine similarity of the features with
the frozen text embeddings of "a photo of a {class}", scaled by a learnable temperature.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cosim.learning.tasks.spec import TaskSpec


class DenseHead(nn.Module):
    def __init__(self, spec: TaskSpec, embed_dim: int, grid: int, channels: int, classifier: str,
                 class_embeddings: torch.Tensor | None = None, skip_channels: int = 0):
        super().__init__()
        self.task, self.grid = spec.name, grid
        self.n_classes, self.n_reg = len(spec.classes), spec.regression
        self.classifier = classifier
        feat = embed_dim if classifier == "text" else self.n_classes
        self.up1 = ConvTranspose2d(embed_dim, channels, 4, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(channels)
        self.skip_channels = skip_channels
        if skip_channels:  # the input view at the output grid joins before the last layer
            self.up2 = ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
            self.norm2 = nn.BatchNorm2d(channels)
            self.out = nn.Conv2d(channels + skip_channels, feat + self.n_reg, 3, padding=1)
        else:
            self.up2 = ConvTranspose2d(channels, feat + self.n_reg, 4, stride=2, padding=1)
        if classifier == "text":
            if class_embeddings is None:
                raise ValueError("the text classifier needs class embeddings")
            # frozen and recomputed from the text tower: not part of what a client uploads
            self.register_buffer("class_embeddings", F.normalize(class_embeddings, dim=-1),
                                 persistent=False)
            self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        elif spec.heatmap_prior:  # CenterNet: p = 0.1 at start
            bias = (self.out if skip_channels else self.up2).bias
            assert bias is not None  # both convolutions are built with their bias
            with torch.no_grad():
                bias[: self.n_classes].fill_(-2.19)
        # channels-last convolution weights (and maps): oneDNN's own layout on a CPU, where the
        # head trains about a fifth faster than in NCHW; tensor cores' layout on a GPU
        self.to(memory_format=torch.channels_last)

    @property
    def out_size(self) -> int:
        return 4 * self.grid

    def forward(self, tokens: torch.Tensor, skip: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        e = tokens.shape[-1]
        # (B, E, g, g) as a view of the (B, g*g, E) tokens: channels-last, no copy
        x = tokens.unflatten(1, (self.grid, self.grid)).permute(0, 3, 1, 2)
        x = self.up2(F.relu(self.norm(self.up1(x))))
        if self.skip_channels:
            assert skip is not None  # a head built with skip channels is given its view's input
            skip = F.adaptive_avg_pool2d(skip, x.shape[-1]).contiguous(memory_format=torch.channels_last)
            x = self.out(torch.cat([F.relu(self.norm2(x)), skip.to(x.dtype)], dim=1))
        if self.classifier == "text":
            feat = F.normalize(x[:, :e], dim=1)
            scores = torch.einsum("behw,ce->bchw", feat, self.class_embeddings) * self.log_scale.exp()
            reg = x[:, e:]
        else:
            scores, reg = x[:, : self.n_classes], x[:, self.n_classes:]
        return {"scores": scores, "reg": reg}


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` whose bfloat16 training pass takes its bias gradient as a float32 sum
    of the output's gradient. oneDNN's own bias gradient of a bfloat16 channels-last transposed
    convolution took 1.0 ms of the 1.5 ms forward and backward of a head's ``up2`` (batch 4, one
    CPU thread); this one takes 1.1 ms in all, with the same input and weight gradients. In float32,
    without gradients, or with other settings it is the plain module."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        device = x.device.type
        if (output_size is None and self.bias is not None and self.padding_mode == "zeros"
                and torch.is_grad_enabled() and device == "cpu" and torch.is_autocast_enabled(device)
                and torch.get_autocast_dtype(device) == torch.bfloat16):
            low = torch.bfloat16
            return _ConvTransposeSummedBias.apply(x.to(low), self.weight.to(low), self.bias, self.stride,
                                                  self.padding, self.output_padding, self.groups,
                                                  self.dilation)
        return super().forward(x, output_size)


class _ConvTransposeSummedBias(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, groups, dilation):
        ctx.save_for_backward(x, weight)
        ctx.settings = (stride, padding, dilation, output_padding, groups)
        with torch.autocast(x.device.type, enabled=False):
            return torch.ops.aten.convolution(x, weight, bias.to(x.dtype), stride, padding, dilation, True,
                                              output_padding, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, output_padding, groups = ctx.settings
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False]
        dx, dw, _ = torch.ops.aten.convolution_backward(grad, x, weight, None, stride, padding, dilation,
                                                         True, output_padding, groups, wanted)
        db = grad.sum((0, 2, 3), dtype=torch.float32) if ctx.needs_input_grad[2] else None
        return dx, dw, db, None, None, None, None, None
