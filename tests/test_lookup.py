"""The model-free lookup baseline, and the synthetic data it must not be able to read labels from."""

from __future__ import annotations

import numpy as np
import torch

from cosim.learning.classes import DETECTION
from cosim.learning.codec import encode_boxes_3d
from cosim.learning.data.materials import ground_materials, object_material
from cosim.learning.data.scene import CITIES
from cosim.learning.grid import Geometry
from cosim.learning.lookup import LookupBaseline
from cosim.learning.openclip import CLIP_MEAN, CLIP_STD
from cosim.scenario import EvaluationConfig

GEO = Geometry(image_size=64, grid=32, bev_range_m=40.0)


def _batch(n: int, seed: int):
    """Frames where intensity says the 3D class and colour says the 2D class, exactly; and a
    BEV where a car-sized blob of returns sits at each box."""
    g = torch.Generator().manual_seed(seed)
    seg3d = torch.randint(1, 4, (n, 32, 32), generator=g)  # classes 1..3
    lidar = torch.zeros(n, 3, 64, 64)
    lidar[:, 1] = torch.nn.functional.interpolate(((seg3d.float() - 0.5) / 4)[:, None], size=64,
                                                  mode="nearest")[:, 0]
    pan2d = torch.where(torch.rand(n, 32, 32, generator=g) < 0.5, 19, 24)  # road or sky
    rgb = torch.where(pan2d[:, None] == 19, torch.tensor([0.3, 0.3, 0.3]).view(1, 3, 1, 1),
                      torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1))
    rgb = torch.nn.functional.interpolate(rgb, size=64, mode="nearest")
    image = (rgb - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    boxes = [np.array([[10.0 + 5 * (i % 2), -6.0, 0.8, 4.5, 1.9, 1.6, 0.0]]) for i in range(n)]
    bev = torch.zeros(n, 3, 64, 64)
    for i, b in enumerate(boxes):  # returns on the car's footprint: 1.25 m pixels
        x, y = b[0, 0], b[0, 1]
        c0, c1 = int((x - 2.25 + 40) / 1.25), int((x + 2.25 + 40) / 1.25)
        r0, r1 = int((y - 0.95 + 40) / 1.25), int((y + 0.95 + 40) / 1.25)
        bev[i, :, r0: r1 + 1, c0: c1 + 1] = torch.tensor([0.4, 0.5, 0.8]).view(3, 1, 1)
    det3d = [encode_boxes_3d(b, [0], len(DETECTION), 32, 40.0) for b in boxes]
    targets = {
        "seg3d": {"labels": seg3d},
        "pan2d": {"labels": pan2d, "instance": torch.zeros(n, 32, 32, dtype=torch.long)},
        "det3d": {"heatmap": torch.stack([d["heatmap"] for d in det3d]), "boxes": boxes,
                  "box_labels": [np.array([0])] * n, "points": [np.array([50])] * n},
    }
    inputs = {"image": image, "lidar": lidar, "lidar_bev": bev, "sequence": ["a"] * n}
    return inputs, targets


def test_lookup_reads_labels_that_appearance_gives_away():
    baseline = LookupBaseline.fit([_batch(4, 0)], GEO)
    out = baseline.evaluate([_batch(4, 1)], ["seg3d", "pan2d", "det3d"], EvaluationConfig())
    assert out["seg3d"]["mIoU"] == 1.0  # intensity determines the class: the lookup is exact
    assert out["pan2d"]["SQ"] == 1.0  # so does colour for road and sky
    # one car per frame, found where its returns are, at the centre within a 2.5 m cell
    assert out["det3d"]["mAP_center"] > 0.7


def test_materials_overlap_across_classes():
    """No class owns a range of LiDAR reflectivity or of colour: the central 90 % of each pair
    of road-user / structure classes overlap (what made the lookup strong before: constants)."""
    rng = np.random.default_rng(0)
    kinds = ("car", "pedestrian", "cyclist", "sign", "building", "tree", "pole")
    refl = {k: [] for k in kinds}
    light = {k: [] for k in kinds}
    for i in range(400):
        for k in kinds:
            rgb, r = object_material(k, CITIES[i % len(CITIES)], rng)
            refl[k].append(r)
            light[k].append(float(rgb @ [0.299, 0.587, 0.114]))
    ground = [ground_materials(rng) for _ in range(200)]
    refl["lane"] = [g.lane_reflectivity for g in ground]
    refl["road"] = [g.road_reflectivity for g in ground]

    def overlaps(values, a, b):
        lo_a, hi_a = np.quantile(values[a], [0.05, 0.95])
        lo_b, hi_b = np.quantile(values[b], [0.05, 0.95])
        return min(hi_a, hi_b) > max(lo_a, lo_b)

    for a, b in [("car", "building"), ("car", "pedestrian"), ("pedestrian", "tree"),
                 ("sign", "lane"), ("pole", "building"), ("road", "tree"), ("cyclist", "car")]:
        assert overlaps(refl, a, b), (a, b)
    for a, b in [("car", "building"), ("car", "pole"), ("pedestrian", "car"), ("tree", "pedestrian")]:
        assert overlaps(light, a, b), (a, b)
