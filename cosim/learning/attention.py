"""The frozen towers' self-attention, trained through in batch-first rows.

open_clip builds ``nn.MultiheadAttention(batch_first=True)``. With gradients on (local training:
PEFT modules sit above and below it), PyTorch's forward transposes the (N, T, W) rows to
(T, N, W), projects the non-contiguous view (a batched matmul per token position) and copies
q, k and v apart, and its backward does all of that again in reverse. Here the same arithmetic
runs on the rows as they lie: one (N*T, W) x (W, 3W) projection, q/k/v as strided views into
it, PyTorch's scaled-dot-product attention, one output projection: about 8 % less time for the
LiDAR tower's forward and backward (40 rows, cosim-tiny, one CPU thread), 2-3 % of a batched
pass. Outputs and gradients agree with ``nn.MultiheadAttention``'s to float rounding (sums
grouped another way; ``tests/test_attention.py``), so runs differ from those before it in the
last bits.

Anything else (weights asked for, masks of keys, cross-attention, dropout, no gradients: the
evaluation's fused inference path) goes to ``nn.MultiheadAttention``'s own forward.

In bfloat16 on a CPU (``precision.py``) the attention itself is two bfloat16 matrix products
around a softmax (``attend``): PyTorch's bfloat16 flash attention for CPUs trains about 4x slower
than its float32 one here, while these products run on the bfloat16 matrix units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BatchFirstSelfAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose training-time self-attention keeps rows batch-first."""

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self._rows_path(query, key, value, key_padding_mask, need_weights, attn_mask, is_causal):
            return super().forward(query, key, value, key_padding_mask=key_padding_mask,
                                   need_weights=need_weights, attn_mask=attn_mask,
                                   average_attn_weights=average_attn_weights, is_causal=is_causal)
        n, t, width = query.shape
        heads = self.num_heads
        qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)  # (N, T, 3W)
        q, k, v = qkv.unflatten(-1, (3, heads, width // heads)).permute(2, 0, 3, 1, 4)  # (N, H, T, D)
        o = attend(q, k, v, attn_mask).transpose(1, 2).reshape(n, t, width)
        return F.linear(o, self.out_proj.weight, self.out_proj.bias), None

    def _rows_path(self, query, key, value, key_padding_mask, need_weights, attn_mask, is_causal) -> bool:
        return (torch.is_grad_enabled() and self.batch_first and query is key and key is value
                and query.dim() == 3 and not need_weights and key_padding_mask is None
                and not is_causal and self._qkv_same_embed_dim and self.bias_k is None
                and not self.add_zero_attn and (self.dropout == 0.0 or not self.training)
                and (attn_mask is None or (attn_mask.dim() == 2 and attn_mask.is_floating_point())))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
           ) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v over (N, H, T, D) tensors: PyTorch's scaled-dot-product
    attention, except in bfloat16 on a CPU: there the two products run in bfloat16 and the softmax
    on their bfloat16 scores (PyTorch's kernel takes their maximum, exponentials and sum in
    float32). Forward and backward of the LiDAR tower's attention (80 rows of 65 tokens, one
    thread): 7.6 ms against 12.9 ms for float32 flash attention and 51 ms for bfloat16 flash."""
    if q.dtype == torch.float32 or q.device.type != "cpu":
        mask = mask.to(q.dtype) if mask is not None else None
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))
    if mask is not None:
        scores = scores + mask.to(scores.dtype)
    return torch.matmul(scores.softmax(-1), v)


def batch_first_attention(module: nn.Module) -> None:
    """Every plain batch-first ``nn.MultiheadAttention`` under ``module`` becomes a
    ``BatchFirstSelfAttention`` (same parameters; before any parametrization wraps its class)."""
    for m in module.modules():
        if type(m) is nn.MultiheadAttention and m.batch_first:
            m.__class__ = BatchFirstSelfAttention
