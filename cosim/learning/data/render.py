"""Camera images of a segment's frames, with exact per-pixel labels.

A pinhole front camera at 1.6 m ray-casts the scene; colour is each surface's own material
(``materials.py``: drawn per instance from distributions that overlap across classes),
Lambertian shading under a sun that depends on the time of day, and weather (fog blends with
distance, rain darkens and streaks, night dims everything but headlight-lit near surfaces).
Labels: camera semantic class (PAN2D), instance id (stable over frames for things) and depth,
plus 2D boxes of visible objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.learning.data.raycast import GROUND, cast
from cosim.learning.data.scene import (
    KIND_NAMES,
    KINDS,
    LANE_MARKER,
    ROAD,
    SIDEWALK,
    SIDEWALK_OUTER,
    SKY,
    Segment,
    ground_surfaces,
)

CAMERA_HEIGHT_M = 1.6
MAX_RANGE_M = 150.0
_LIGHT = {"day": (1.0, (0.5, 0.7, 0.95)), "dusk": (0.65, (0.95, 0.55, 0.35)),
          "night": (0.22, (0.05, 0.06, 0.12))}


@dataclass
class CameraFrame:
    image: np.ndarray  # (H, W, 3) uint8
    semantic: np.ndarray  # (H, W) PAN2D class
    instance: np.ndarray  # (H, W) instance id of things, 0 = none
    depth: np.ndarray  # (H, W) metres, inf for sky
    boxes: np.ndarray  # (K, 4) x1, y1, x2, y2 of visible detectable objects
    box_labels: np.ndarray  # (K,) DETECTION class
    box_ids: np.ndarray  # (K,) instance ids


def camera_rays(width: int, height: int, hfov_deg: float = 70.0) -> np.ndarray:
    """Unit ray directions (H * W, 3), row-major from the top-left pixel."""
    f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
    u = np.arange(width) + 0.5 - width / 2
    v = np.arange(height) + 0.5 - height / 2
    uu, vv = np.meshgrid(u, v)
    d = np.stack([np.full_like(uu, f), -uu, -vv], axis=-1).reshape(-1, 3)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def render_camera(seg: Segment, k: int, width: int, height: int, rng: np.random.Generator
                  ) -> CameraFrame:
    boxes, kinds, ids = seg.frame(k)
    origin = np.array([0.0, 0.0, CAMERA_HEIGHT_M])
    dirs = camera_rays(width, height)
    dist, hit, normal = cast(origin, dirs, boxes, MAX_RANGE_M)
    point = origin + dirs * np.where(np.isfinite(dist), dist, 0.0)[:, None]
    semantic = np.full(len(dirs), SKY[1])
    instance = np.zeros(len(dirs), dtype=np.int64)
    colour = np.zeros((len(dirs), 3))
    brightness, sky = _LIGHT[seg.style.time_of_day]
    colour[:] = sky
    on_box = hit >= 0
    kind_of_hit = np.where(on_box, kinds[np.maximum(hit, 0)], -1)
    colour[on_box] = seg.rgb[hit[on_box]]  # each instance's own material
    for ki, name in enumerate(KIND_NAMES):
        m = kind_of_hit == ki
        if not m.any():
            continue
        semantic[m] = KINDS[name][1]
        if KINDS[name][2] >= 0:  # things carry instance ids
            instance[m] = ids[hit[m]]
    ground = hit == GROUND
    lane, road, ground_side = ground_surfaces(seg, k, point, ground)
    side = ground_side & (np.abs(point[:, 1]) < SIDEWALK_OUTER)  # beyond it: bare ground
    rest = ground_side & ~side
    g = seg.ground
    assert g is not None  # make_segment, the one maker of segments, always sets their materials
    for mask, cls, rgb in ((road, ROAD[1], g.road_rgb), (lane, LANE_MARKER[1], g.lane_rgb),
                           (side, SIDEWALK[1], g.sidewalk_rgb), (rest, SIDEWALK[1], g.bare_rgb)):
        semantic[mask], colour[mask] = cls, rgb
    lit = hit != -1
    sun = np.array([0.3, 0.4, 0.87]) / np.linalg.norm([0.3, 0.4, 0.87])
    shade = 0.45 + 0.55 * np.clip(normal @ sun, 0, 1)
    light = brightness * shade
    if seg.style.time_of_day == "night":  # headlights light what is near and ahead
        light = light + 0.8 * np.exp(-np.where(np.isfinite(dist), dist, 1e9) / 12.0)
    colour[lit] *= light[lit, None]
    depth = np.where(lit, dist, np.inf)
    if seg.style.weather == "foggy":
        fog = 1 - np.exp(-np.where(lit, dist, 1e9) / 35.0)
        colour = colour * (1 - fog[:, None]) + 0.7 * fog[:, None]
    elif seg.style.weather == "rainy":
        colour *= 0.75
        streaks = rng.random(len(dirs)) < 0.02
        colour[streaks] = np.clip(colour[streaks] + 0.35, 0, 1)
    elif seg.style.weather == "cloudy":
        colour = 0.8 * colour + 0.1
    colour += rng.normal(0, 0.02, colour.shape)
    image = (np.clip(colour, 0, 1) * 255).round().astype(np.uint8).reshape(height, width, 3)
    sem, inst = semantic.reshape(height, width), instance.reshape(height, width)
    b, bl, bi = _visible_boxes(inst, boxes, kinds, ids)
    return CameraFrame(image, sem, inst, depth.reshape(height, width), b, bl, bi)


def _visible_boxes(instance: np.ndarray, boxes: np.ndarray, kinds: np.ndarray, ids: np.ndarray):
    """Tight 2D boxes around the visible pixels of each detectable object."""
    out, labels, out_ids = [], [], []
    for obj in np.unique(instance):
        if obj == 0:
            continue
        rows, cols = np.nonzero(instance == obj)
        if len(rows) < 4:
            continue
        label = KINDS[KIND_NAMES[kinds[obj - 1]]][2]
        out.append((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
        labels.append(label)
        out_ids.append(obj)
    return (np.array(out, float).reshape(-1, 4), np.array(labels, int), np.array(out_ids, int))


def caption(seg: Segment, frame: CameraFrame) -> str:
    """What a person would say about the image: conditions, place, and what is in view."""
    names = ("car", "pedestrian", "cyclist", "sign")
    counts = [int((frame.box_labels == i).sum()) for i in range(4)]
    parts = [f"{n} {name}{'s' if n > 1 else ''}" for n, name in zip(counts, names, strict=True) if n]
    tail = " with " + ", ".join(parts) if parts else ", empty"
    return seg.style.caption() + tail
