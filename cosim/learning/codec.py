"""Targets from annotations, and predictions from head outputs: one convention per task, kept
together so that what the data layer encodes is exactly what evaluation decodes.

Grids are the heads' output (H = W = 4 x the token grid). Conventions:
- 2D boxes (x1, y1, x2, y2) in input-image pixels; a cell is image_size / H pixels wide.
  Regression at the centre cell: (dx, dy) offset of the centre inside the cell, log(w / cell),
  log(h / cell).
- 3D boxes (x, y, z, length, width, height, yaw) in metres in the ego frame; the BEV grid covers
  [-R, R] x [-R, R], column = x, row = y. Regression: (dx, dy, z, log l, log w, log h, sin yaw,
  cos yaw).
- Heatmaps: a Gaussian per object centred on its cell, 1 exactly at the centre cell.
- Panoptic: semantic labels per cell, an instance-centre heatmap and per-pixel offsets
  (dy, dx) from the pixel to its instance's centre (Panoptic-DeepLab).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from cosim.learning.classes import IGNORE_INDEX

# pan2d classes that are countable things, Waymo PVPS's eight (deeplab2's waymo_constants: car,
# truck, bus, other large vehicle, trailer, pedestrian, cyclist, motorcyclist): they get instance
# ids; bicycles, motorcycles, birds and animals are stuff there.
PAN2D_THINGS = (1, 2, 3, 4, 7, 8, 9, 10)


def _splat(heat: torch.Tensor, cy: int, cx: int, sigma: float) -> None:
    h, w = heat.shape
    yy = torch.arange(h).view(-1, 1)
    xx = torch.arange(w).view(1, -1)
    g = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    torch.maximum(heat, g, out=heat)


def encode_boxes_2d(boxes: np.ndarray, labels: np.ndarray, n_classes: int, grid: int,
                    image_size: int) -> dict[str, torch.Tensor]:
    cell = image_size / grid
    heat = torch.zeros(n_classes, grid, grid)
    reg = torch.zeros(4, grid, grid)
    mask = torch.zeros(grid, grid, dtype=torch.bool)
    for (x1, y1, x2, y2), c in zip(np.asarray(boxes, float).reshape(-1, 4), labels, strict=True):
        fx, fy = (x1 + x2) / 2 / cell, (y1 + y2) / 2 / cell
        col, row = int(fx), int(fy)
        if not (0 <= col < grid and 0 <= row < grid):
            continue
        w, h = max(x2 - x1, 1e-3) / cell, max(y2 - y1, 1e-3) / cell
        _splat(heat[int(c)], row, col, max(0.8, min(w, h) / 6))
        reg[:, row, col] = torch.tensor([fx - col, fy - row, math.log(w), math.log(h)])
        mask[row, col] = True
    return {"heatmap": heat, "reg": reg, "mask": mask}


def encode_boxes_3d(boxes: np.ndarray, labels: np.ndarray, n_classes: int, grid: int,
                    range_m: float) -> dict[str, torch.Tensor]:
    cell = 2 * range_m / grid
    heat = torch.zeros(n_classes, grid, grid)
    reg = torch.zeros(8, grid, grid)
    mask = torch.zeros(grid, grid, dtype=torch.bool)
    for box, c in zip(np.asarray(boxes, float).reshape(-1, 7), labels, strict=True):
        x, y, z, length, width, height, yaw = box
        fx, fy = (x + range_m) / cell, (y + range_m) / cell
        col, row = int(math.floor(fx)), int(math.floor(fy))
        if not (0 <= col < grid and 0 <= row < grid):
            continue
        _splat(heat[int(c)], row, col, max(0.8, min(length, width) / cell / 6))
        reg[:, row, col] = torch.tensor([fx - col, fy - row, z, math.log(length), math.log(width),
                                         math.log(height), math.sin(yaw), math.cos(yaw)])
        mask[row, col] = True
    return {"heatmap": heat, "reg": reg, "mask": mask}


def encode_panoptic(semantic: torch.Tensor, instance: torch.Tensor) -> dict[str, torch.Tensor]:
    """``semantic``, ``instance`` (H, W) at the head grid; instance 0 = none."""
    h, w = semantic.shape
    center = torch.zeros(1, h, w)
    offset = torch.zeros(2, h, w)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    for inst in instance.unique().tolist():
        if inst == 0:
            continue
        m = instance == inst
        cy, cx = yy[m].float().mean(), xx[m].float().mean()
        _splat(center[0], int(round(float(cy))), int(round(float(cx))), 2.0)
        offset[0][m] = cy - yy[m].float()
        offset[1][m] = cx - xx[m].float()
    return {"labels": semantic.long(), "center": center, "offset": offset,
            "offset_mask": instance > 0}


def heatmap_peaks(scores: torch.Tensor, k: int, threshold: float):
    """Local maxima (3x3) of sigmoid(scores) (C, H, W): class, row, col, score of the top k."""
    p = scores.sigmoid()
    keep = p == F.max_pool2d(p[None], 3, stride=1, padding=1)[0]
    p = torch.where(keep, p, torch.zeros_like(p))
    top, idx = p.reshape(-1).topk(min(k, p.numel()))
    sel = top >= threshold
    top, idx = top[sel], idx[sel]
    c, rem = idx // (p.shape[1] * p.shape[2]), idx % (p.shape[1] * p.shape[2])
    return c, rem // p.shape[2], rem % p.shape[2], top


def decode_boxes_2d(scores, reg, image_size: int, k: int = 50, threshold: float = 0.05):
    cell = image_size / scores.shape[-1]
    c, r, col, s = heatmap_peaks(scores, k, threshold)
    dx, dy, lw, lh = (reg[i, r, col] for i in range(4))
    cx, cy = (col + dx) * cell, (r + dy) * cell
    w, h = lw.clamp(max=8).exp() * cell, lh.clamp(max=8).exp() * cell
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    return {"boxes": boxes, "scores": s, "labels": c}


def decode_boxes_3d(scores, reg, range_m: float, k: int = 50, threshold: float = 0.05):
    cell = 2 * range_m / scores.shape[-1]
    c, r, col, s = heatmap_peaks(scores, k, threshold)
    v = reg[:, r, col]
    x = (col + v[0]) * cell - range_m
    y = (r + v[1]) * cell - range_m
    size = v[3:6].clamp(max=5).exp()
    yaw = torch.atan2(v[6], v[7])
    boxes = torch.stack([x, y, v[2], size[0], size[1], size[2], yaw], dim=1)
    return {"boxes": boxes, "scores": s, "labels": c}


def decode_panoptic(scores, reg, threshold: float = 0.3, k: int = 32):
    """Semantic argmax; thing pixels join the predicted centre nearest to where they point."""
    semantic = scores.argmax(0)
    _, r, col, _ = heatmap_peaks(reg[:1], k, threshold)
    instance = torch.zeros_like(semantic)
    things = torch.isin(semantic, torch.tensor(PAN2D_THINGS))
    if len(r) and things.any():
        h, w = semantic.shape
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        ty, tx = yy + reg[1], xx + reg[2]
        d = (ty[..., None] - r.float()) ** 2 + (tx[..., None] - col.float()) ** 2
        instance = torch.where(things, d.argmin(-1) + 1, instance)
    return semantic, instance


class GreedyTracker:
    """Carries instance ids across frames: an instance takes the id of the previous frame's
    instance of the same class it overlaps most (IoU >= ``min_iou``), or a new id.

    The overlaps of every (instance, previous track) pair come from one joint histogram of the
    two id maps, not a mask operation per pair; the greedy choice over them is unchanged."""

    def __init__(self, min_iou: float = 0.3):
        self.min_iou = min_iou
        self.prev_ids = torch.zeros(0, dtype=torch.long)  # the previous frame's tracked map
        self.prev_class: dict[int, int] = {}  # its track ids' classes, in the order they were made
        self.next_id = 1

    def __call__(self, semantic: torch.Tensor, instance: torch.Tensor) -> torch.Tensor:
        tracked = torch.zeros_like(instance)
        ids = [i for i in instance.unique().tolist() if i != 0]
        inter, area, prev_area = (x.tolist() for x in self._overlaps(instance, ids))
        current: dict[int, int] = {}
        free = dict(self.prev_class)
        track_index = {tid: j for j, tid in enumerate(self.prev_class)}
        for row, inst in enumerate(ids):
            m = instance == inst
            cls = int(semantic[m].mode().values)
            best, best_iou = None, self.min_iou
            for tid, tcls in free.items():
                if tcls != cls:
                    continue
                j = track_index[tid]
                both = inter[row][j]
                iou = float(both) / float(area[row] + prev_area[j] - both)
                if iou >= best_iou:
                    best, best_iou = tid, iou
            if best is None:
                best, self.next_id = self.next_id, self.next_id + 1
            else:
                free.pop(best)
            tracked[m] = best
            current[best] = cls
        self.prev_ids, self.prev_class = tracked, current
        return tracked

    def _overlaps(self, instance: torch.Tensor, ids: list[int]):
        """Pixels of each instance, of each previous track, and of each pair's overlap."""
        tracks = list(self.prev_class)
        n, k = len(ids), len(tracks)
        row = torch.full((int(instance.max()) + 1 if instance.numel() else 1,), n, dtype=torch.long)
        row[torch.tensor(ids, dtype=torch.long)] = torch.arange(n)
        rows = row[instance.reshape(-1)]
        if k and self.prev_ids.shape == instance.shape:
            col = torch.full((int(self.prev_ids.max()) + 1,), k, dtype=torch.long)
            col[torch.tensor(tracks, dtype=torch.long)] = torch.arange(k)
            cols = col[self.prev_ids.reshape(-1)]
        else:
            cols = torch.full_like(rows, k)
        joint = torch.bincount(rows * (k + 1) + cols, minlength=(n + 1) * (k + 1)).reshape(n + 1, k + 1)
        return joint[:n, :k], joint[:n].sum(1), joint[:, :k].sum(0)


def labels_at_grid(labels: torch.Tensor, grid: int) -> torch.Tensor:
    """Nearest-neighbour resize of a label map (H, W) to the head grid, keeping IGNORE_INDEX."""
    x = labels.float()[None, None]
    return F.interpolate(x, size=(grid, grid), mode="nearest")[0, 0].long().clamp(
        max=IGNORE_INDEX)
