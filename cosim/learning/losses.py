"""Loss building blocks on dense head outputs (targets at the heads' output resolution); each
task's loss (``cosim/learning/tasks``) is made of them.

Targets per task (B = batch, H x W = head output size):
- seg3d: ``labels`` (B, H, W) int64, 255 = no point / ignored.
- det3d, det2d: ``heatmap`` (B, C, H, W) in [0, 1] with 1 at object centres (Gaussian splats),
  ``reg`` (B, R, H, W) and ``mask`` (B, H, W) bool marking the centre cells.
- pan2d: ``labels`` (B, H, W), ``center`` (B, 1, H, W) instance-centre heatmap, ``offset``
  (B, 2, H, W) and ``offset_mask`` (B, H, W) for pixels that belong to an instance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def centernet_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Penalty-reduced pixel focal loss of CenterNet (alpha = 2, beta = 4)."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - target) ** 4 * (1 - pos)
    n = pos.sum().clamp(min=1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / n


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(1).float()
    return (F.l1_loss(pred * m, target * m, reduction="sum")
            / (m.sum() * pred.shape[1]).clamp(min=1.0))


def centernet_loss(out: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    """CenterNet detection: focal loss on the centre heatmaps plus L1 on the regression at centres."""
    return (centernet_focal_loss(out["scores"], target["heatmap"])
            + masked_l1(out["reg"], target["reg"], target["mask"]))
