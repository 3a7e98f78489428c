"""A spinning TOP LiDAR ray-cast into Waymo's range-image layout.

Rows are beams from the highest inclination down; column c looks at azimuth
pi - (c + 0.5) * 2 pi / W (Waymo's convention: the middle column looks forward along +x).
Channels: range (m, -1 = no return), intensity, elongation, no-label-zone (-1 = none). Labels per
pixel: (instance id, semantic class in SEG3D / Waymo's lidar segmentation types).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.learning.data.materials import lidar_intensity
from cosim.learning.data.raycast import GROUND, cast
from cosim.learning.data.scene import (
    KIND_NAMES,
    KINDS,
    LANE_MARKER,
    ROAD,
    SIDEWALK,
    Segment,
    ground_surfaces,
)

LIDAR_HEIGHT_M = 1.8
MAX_RANGE_M = 75.0
INCLINATION_DEG = (-17.6, 2.4)  # the TOP laser's vertical field of view


@dataclass
class LidarFrame:
    range_image: np.ndarray  # (H, W, 4) float32
    labels: np.ndarray  # (H, W, 2) int32: instance id, semantic class
    points_in_box: dict[int, int]  # instance id -> returns on it


def beam_inclinations(rows: int) -> np.ndarray:
    """Inclination of each row (radians), highest first."""
    lo, hi = np.radians(INCLINATION_DEG)
    return np.linspace(hi, lo, rows)


def lidar_rays(rows: int, cols: int) -> np.ndarray:
    incl = beam_inclinations(rows)[:, None]
    az = np.pi - (np.arange(cols) + 0.5) * 2 * np.pi / cols
    d = np.stack([np.cos(incl) * np.cos(az), np.cos(incl) * np.sin(az),
                  np.broadcast_to(np.sin(incl), (rows, cols))], axis=-1)
    return d.reshape(-1, 3)


def range_image_points(range_image: np.ndarray, inclinations: np.ndarray, extrinsic: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) in the vehicle frame of the valid pixels, and those pixels' flat indices."""
    rows, cols = range_image.shape[:2]
    incl = np.asarray(inclinations)  # highest first, one per row
    az = np.pi - (np.arange(cols) + 0.5) * 2 * np.pi / cols
    r = range_image[..., 0]
    valid = np.flatnonzero(r.reshape(-1) > 0)
    ri, ci = np.divmod(valid, cols)
    rr = r.reshape(-1)[valid]
    local = np.stack([rr * np.cos(incl[ri]) * np.cos(az[ci]), rr * np.cos(incl[ri]) * np.sin(az[ci]),
                      rr * np.sin(incl[ri])], axis=1)
    pts = local @ extrinsic[:3, :3].T + extrinsic[:3, 3]
    return pts, valid


def render_lidar(seg: Segment, k: int, rows: int, cols: int, rng: np.random.Generator) -> LidarFrame:
    boxes, kinds, ids = seg.frame(k)
    origin = np.array([0.0, 0.0, LIDAR_HEIGHT_M])
    dirs = lidar_rays(rows, cols)
    dist, hit, normal = cast(origin, dirs, boxes, MAX_RANGE_M)
    n = len(dirs)
    rng_img = np.full((n, 4), 0.0, dtype=np.float32)
    rng_img[:, 3] = -1.0
    instance = np.zeros(n, dtype=np.int32)
    semantic = np.zeros(n, dtype=np.int32)
    valid = np.isfinite(dist)
    noisy = dist + rng.normal(0, 0.02, n)
    rng_img[:, 0] = np.where(valid, noisy, -1.0)
    rng_img[:, 2] = np.where(valid, np.abs(rng.normal(0.05, 0.02, n)), 0.0)
    on_box = hit >= 0
    box_kind = np.where(on_box, kinds[np.maximum(hit, 0)], -1)
    reflectivity = np.zeros(n)
    reflectivity[on_box] = seg.reflectivity[hit[on_box]]  # each instance's own material
    for ki, name in enumerate(KIND_NAMES):
        m = box_kind == ki
        semantic[m] = KINDS[name][0]
        if KINDS[name][2] >= 0:
            instance[m] = ids[hit[m]]
    ground = hit == GROUND
    point = origin + dirs * np.where(valid, dist, 0.0)[:, None]
    lane, road, side = ground_surfaces(seg, k, point, ground)
    g = seg.ground
    assert g is not None  # make_segment, the one maker of segments, always sets their materials
    for mask, cls, value in ((road, ROAD[0], g.road_reflectivity),
                             (lane, LANE_MARKER[0], g.lane_reflectivity),
                             (side, SIDEWALK[0], g.sidewalk_reflectivity)):
        semantic[mask], reflectivity[mask] = cls, value
    cos_incidence = np.einsum("ij,ij->i", normal, dirs)
    rng_img[valid, 1] = lidar_intensity(reflectivity[valid], cos_incidence[valid], rng)
    # Quantise as a sensor reports: 5 mm range steps, 8-bit intensity and elongation.
    rng_img[:, 0] = np.where(valid, np.round(rng_img[:, 0] / 0.005) * 0.005, -1.0)
    rng_img[:, 1:3] = np.round(rng_img[:, 1:3] * 255) / 255
    counts = np.bincount(instance[instance > 0], minlength=len(ids) + 1)
    labels = np.stack([instance, semantic], axis=1).reshape(rows, cols, 2)
    return LidarFrame(rng_img.reshape(rows, cols, 4), labels,
                      {int(i): int(counts[i]) for i in np.flatnonzero(counts)})
