"""The model-free baseline: each cell's class looked up from its own colour or LiDAR return.

A trained model has to beat this to show it learnt more than a per-pixel/per-point appearance
shortcut. Fitted on the training clients' frames (pooled: the most a lookup can get), it turns
each cell of a task's output grid into a feature bin and predicts that bin's most frequent class:
- seg3d: the range view's intensity (32 bins);
- pan2d: the image's colour, averaged over the cell (8 levels per channel); thing cells joined
  into instances by connected components and tracked like the model's;
- det2d: boxes around the connected components of pan2d's vehicle/pedestrian/cyclist/sign cells;
- det3d: the BEV cell's (highest return, mean intensity, point density) (8 x 8 x 4 bins) against
  which class's footprint covers the cell; connected components become boxes of the class's
  median size, at the component's centre.
The lookup writes what a head would output (scores and regression maps) and goes through the
same task evaluators as the model, so both are scored by identical code on identical targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from cosim.learning.classes import DETECTION, IGNORE_INDEX, PAN2D, SEG3D
from cosim.learning.codec import PAN2D_THINGS
from cosim.learning.grid import Geometry
from cosim.learning.openclip import CLIP_MEAN, CLIP_STD
from cosim.learning.tasks import SPECS

INTENSITY_BINS = 32
COLOUR_LEVELS = 8
BEV_BINS = (8, 8, 4)  # height, intensity, density
# Camera classes whose pixels make a 2D box of a detection class.
PAN2D_TO_DETECTION = {"car": 0, "truck": 0, "bus": 0, "other large vehicle": 0, "trailer": 0,
                      "pedestrian": 1, "cyclist": 2, "sign": 3}
_CONFIDENT, _UNLIKELY = 20.0, -20.0  # logits of "certainly here" / "certainly not"


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


@dataclass
class LookupBaseline:
    seg3d: np.ndarray  # (INTENSITY_BINS, classes) counts
    pan2d: np.ndarray  # (COLOUR_LEVELS ** 3, classes)
    det3d: np.ndarray  # (prod(BEV_BINS), 1 + classes): background, then DETECTION
    det3d_size: np.ndarray  # (classes, 4): median z (centre), length, width, height
    geometry: Geometry

    # ---- features per cell of the head grid ---------------------------------------------------
    @staticmethod
    def _intensity_bins(inputs: dict, grid: int) -> torch.Tensor:
        x = F.interpolate(inputs["lidar"][:, 1:2], size=(grid, grid), mode="nearest")[:, 0]
        return (x.clamp(0, 1) * INTENSITY_BINS).long().clamp(max=INTENSITY_BINS - 1)

    @staticmethod
    def _colour_bins(inputs: dict, grid: int) -> torch.Tensor:
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        rgb = F.adaptive_avg_pool2d(inputs["image"] * std + mean, grid).clamp(0, 1)
        q = (rgb * COLOUR_LEVELS).long().clamp(max=COLOUR_LEVELS - 1)
        return (q[:, 0] * COLOUR_LEVELS + q[:, 1]) * COLOUR_LEVELS + q[:, 2]

    @staticmethod
    def _bev_bins(inputs: dict, grid: int) -> torch.Tensor:
        bev = inputs["lidar_bev"]
        height = F.adaptive_max_pool2d(bev[:, 0], grid)
        intensity = F.adaptive_avg_pool2d(bev[:, 1], grid)
        density = F.adaptive_max_pool2d(bev[:, 2], grid)
        bins = [(v.clamp(0, 1) * n).long().clamp(max=n - 1)
                for v, n in zip((height, intensity, density), BEV_BINS, strict=True)]
        return (bins[0] * BEV_BINS[1] + bins[1]) * BEV_BINS[2] + bins[2]

    # ---- fitting --------------------------------------------------------------------------
    @classmethod
    def fit(cls, batches, geometry: Geometry) -> LookupBaseline:
        """Count (feature bin, class) over training batches of (inputs, targets)."""
        grid = geometry.grid
        seg3d = torch.zeros(INTENSITY_BINS, len(SEG3D), dtype=torch.float64)
        pan2d = torch.zeros(COLOUR_LEVELS**3, len(PAN2D), dtype=torch.float64)
        det3d = torch.zeros(math.prod(BEV_BINS), 1 + len(DETECTION), dtype=torch.float64)
        sizes: list[list[np.ndarray]] = [[] for _ in DETECTION]
        for inputs, targets in batches:
            if "seg3d" in targets:
                _count(seg3d, cls._intensity_bins(inputs, grid), targets["seg3d"]["labels"])
            if "pan2d" in targets:
                _count(pan2d, cls._colour_bins(inputs, grid), targets["pan2d"]["labels"])
            if "det3d" in targets:
                labels = torch.stack([_footprints(b, lab, grid, geometry.bev_range_m)
                                      for b, lab in zip(targets["det3d"]["boxes"],
                                                        targets["det3d"]["box_labels"], strict=True)])
                _count(det3d, cls._bev_bins(inputs, grid), labels)
                for boxes, labels_ in zip(targets["det3d"]["boxes"], targets["det3d"]["box_labels"],
                                          strict=True):
                    for box, c in zip(np.asarray(boxes, float).reshape(-1, 7), labels_, strict=True):
                        sizes[int(c)].append(box[[2, 3, 4, 5]])
        size = np.array([np.median(s, axis=0) if s else (1.0, 1.0, 1.0, 1.0) for s in sizes])
        return cls(seg3d.numpy(), pan2d.numpy(), det3d.numpy(), size, geometry)

    # ---- head-shaped outputs ----------------------------------------------------------------
    def outputs(self, inputs: dict, tasks: list[str]) -> dict[str, dict[str, torch.Tensor]]:
        grid = self.geometry.grid
        out: dict[str, dict[str, torch.Tensor]] = {}
        if "seg3d" in tasks:
            out["seg3d"] = {"scores": _table_scores(self.seg3d, self._intensity_bins(inputs, grid)),
                            "reg": torch.zeros(len(inputs["lidar"]), 0, grid, grid)}
        if "pan2d" in tasks or "det2d" in tasks:
            pan_scores = _table_scores(self.pan2d, self._colour_bins(inputs, grid))
            if "pan2d" in tasks:
                out["pan2d"] = {"scores": pan_scores, "reg": _panoptic_reg(pan_scores.argmax(1))}
            if "det2d" in tasks:
                out["det2d"] = self._det2d(pan_scores)
        if "det3d" in tasks:
            out["det3d"] = self._det3d(_table_scores(self.det3d, self._bev_bins(inputs, grid)))
        return out

    def _det2d(self, pan_scores: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, g, _ = pan_scores.shape
        prob = pan_scores.softmax(1)
        det_class = torch.full((b, g, g), -1, dtype=torch.long)
        semantic = pan_scores.argmax(1)
        for name, c in PAN2D_TO_DETECTION.items():
            det_class[semantic == PAN2D.index(name)] = c
        heat = torch.full((b, len(DETECTION), g, g), _UNLIKELY)
        reg = torch.zeros(b, 4, g, g)
        for i in range(b):
            for c in range(len(DETECTION)):
                for rows, cols, _ in _components(det_class[i] == c):
                    r, col = int(rows.float().mean()), int(cols.float().mean())
                    x1, x2, y1, y2 = cols.min(), cols.max() + 1, rows.min(), rows.max() + 1
                    score = float(prob[i, :, rows, cols].max(0).values.mean())
                    heat[i, c, r, col] = _logit(score)
                    reg[i, :, r, col] = torch.tensor([(x1 + x2) / 2 - col, (y1 + y2) / 2 - r,
                                                      math.log(x2 - x1), math.log(y2 - y1)],
                                                     dtype=torch.float32)
        return {"scores": heat, "reg": reg}

    def _det3d(self, scores: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, g, _ = scores.shape
        prob = scores.softmax(1)
        cls = scores.argmax(1) - 1  # -1: background
        heat = torch.full((b, len(DETECTION), g, g), _UNLIKELY)
        reg = torch.zeros(b, 8, g, g)
        for i in range(b):
            for c in range(len(DETECTION)):
                for rows, cols, _ in _components(cls[i] == c):
                    fy, fx = float(rows.float().mean()) + 0.5, float(cols.float().mean()) + 0.5
                    r, col = int(fy), int(fx)
                    z, length, width, height = self.det3d_size[c]
                    heat[i, c, r, col] = _logit(float(prob[i, c + 1, rows, cols].mean()))
                    reg[i, :, r, col] = torch.tensor([fx - col, fy - r, z, math.log(length),
                                                      math.log(width), math.log(height), 0.0, 1.0])
        return {"scores": heat, "reg": reg}

    # ---- scoring ----------------------------------------------------------------------------
    def evaluate(self, batches, tasks: list[str], settings) -> dict[str, dict[str, float]]:
        """Metrics per task on held-out batches, by the tasks' own evaluators."""
        host = SimpleNamespace(image_size=self.geometry.image_size,
                               cfg=SimpleNamespace(bev_range_m=self.geometry.bev_range_m))
        evaluators = {t: SPECS[t].evaluator(host, settings) for t in tasks}
        for inputs, targets in batches:
            out = self.outputs(inputs, tasks)
            for t in tasks:
                for i in range(out[t]["scores"].shape[0]):
                    evaluators[t].update(out[t]["scores"][i], out[t]["reg"][i], targets[t], i, inputs)
        return {t: e.compute() for t, e in evaluators.items()}


def _count(table: torch.Tensor, bins: torch.Tensor, labels: torch.Tensor) -> None:
    keep = labels != IGNORE_INDEX
    idx = bins[keep] * table.shape[1] + labels[keep]
    table += torch.bincount(idx, minlength=table.numel()).reshape(table.shape).to(table.dtype)


def _table_scores(table: np.ndarray, bins: torch.Tensor) -> torch.Tensor:
    """(B, classes, G, G) log-frequencies of each cell's bin (add-one smoothed)."""
    t = torch.from_numpy(table).float() + 1.0
    log_p = (t / t.sum(1, keepdim=True)).log()
    return log_p[bins].permute(0, 3, 1, 2).contiguous()


def _components(mask: torch.Tensor):
    """(rows, cols, n) of each 4-connected component of a boolean (G, G) map."""
    labelled, n = ndimage.label(mask.numpy())
    for k in range(1, n + 1):
        rows, cols = np.nonzero(labelled == k)
        yield torch.from_numpy(rows), torch.from_numpy(cols), len(rows)


def _panoptic_reg(semantic: torch.Tensor) -> torch.Tensor:
    """Centre heatmap logits and offsets to the centre for each connected thing component."""
    b, g, _ = semantic.shape
    reg = torch.zeros(b, 3, g, g)
    reg[:, 0] = _UNLIKELY
    yy, xx = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    for i in range(b):
        for c in PAN2D_THINGS:
            for rows, cols, _ in _components(semantic[i] == c):
                cy, cx = rows.float().mean(), cols.float().mean()
                reg[i, 0, int(cy.round()), int(cx.round())] = _CONFIDENT
                reg[i, 1, rows, cols] = cy - yy[rows, cols].float()
                reg[i, 2, rows, cols] = cx - xx[rows, cols].float()
    return reg


def _footprints(boxes, labels, grid: int, range_m: float) -> torch.Tensor:
    """(G, G) label map of the BEV grid: 1 + the class whose box footprint covers a cell's centre
    (or whose centre lies in the cell: a pedestrian covers no cell centre), 0 for none."""
    cell = 2 * range_m / grid
    centres = (torch.arange(grid, dtype=torch.float64) + 0.5) * cell - range_m
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")  # row = y, column = x
    out = torch.zeros(grid, grid, dtype=torch.long)
    for box, c in zip(np.asarray(boxes, float).reshape(-1, 7), labels, strict=True):
        x, y, _, length, width, _, yaw = box
        dx, dy = xx - x, yy - y
        u = dx * math.cos(yaw) + dy * math.sin(yaw)
        v = -dx * math.sin(yaw) + dy * math.cos(yaw)
        out[(u.abs() <= length / 2) & (v.abs() <= width / 2)] = 1 + int(c)
        row, col = math.floor((y + range_m) / cell), math.floor((x + range_m) / cell)
        if 0 <= row < grid and 0 <= col < grid:
            out[row, col] = 1 + int(c)
    return out
