"""The frozen towers cut in two: a prefix (embedding and the blocks below the first PEFT block)
whose output depends on the input alone, and the suffix that PEFT reaches.

With PEFT only in the upper blocks, the prefix of a frame is the same in every local epoch and
every round, so the batched trainer computes it once per frame and runs only the suffix. The
split follows open_clip's own ``VisionTransformer.forward`` and ``CLIP.encode_text`` (3.x);
``tests/test_towers.py`` checks prefix + suffix against those forwards.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import torch
from torch import nn

# An open_clip module (CLIP, its VisionTransformer, its Transformer): open_clip is untyped, and
# the code reads their attributes as open_clip 3.x names them.
ClipModule: TypeAlias = Any


def _run_blocks(transformer: ClipModule, x: torch.Tensor, blocks: range,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    if not transformer.batch_first:
        x = x.transpose(0, 1)
    for i in blocks:
        x = transformer.resblocks[i](x, attn_mask=attn_mask)
    return x if transformer.batch_first else x.transpose(0, 1)


def vision_prefix(tower: ClipModule, images: torch.Tensor, upto: int) -> torch.Tensor:
    """Patch tokens after the tower's first ``upto`` blocks (N, 1 + P, W)."""
    return _run_blocks(tower.transformer, tower._embeds(images), range(upto))


def vision_suffix(tower: ClipModule, hidden: torch.Tensor, upto: int) -> torch.Tensor:
    """The projected output tokens (N, P, E) from a prefix's hidden state."""
    x = _run_blocks(tower.transformer, hidden, range(upto, len(tower.transformer.resblocks)))
    _, tokens = tower._pool(x)
    return tokens @ tower.proj if tower.proj is not None else tokens


def text_prefix(text_tower: ClipModule, tokens: torch.Tensor, upto: int) -> torch.Tensor:
    """Token states after the text transformer's first ``upto`` blocks (N, L, W)."""
    cast = text_tower.transformer.get_cast_dtype()
    x = text_tower.token_embedding(tokens).to(cast) + text_tower.positional_embedding.to(cast)
    return _run_blocks(text_tower.transformer, x, range(upto), text_tower.attn_mask)


def text_suffix(text_tower: ClipModule, hidden: torch.Tensor, tokens: torch.Tensor,
                upto: int) -> torch.Tensor:
    """The pooled, projected text embedding (N, E) from a prefix's hidden state."""
    transformer = text_tower.transformer
    x = _run_blocks(transformer, hidden, range(upto, len(transformer.resblocks)), text_tower.attn_mask)
    x = text_tower.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # the EOT token
    proj = text_tower.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, nn.Linear) else x @ proj
