"""Ray casting against the ground plane and oriented boxes, vectorised over rays and boxes."""

from __future__ import annotations

import numpy as np

GROUND = -2  # hit code of the ground plane; -1 = nothing (sky / out of range)


def cast(origin: np.ndarray, dirs: np.ndarray, boxes: np.ndarray, max_range: float,
         chunk: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of each ray.

    origin (3,), dirs (N, 3) unit vectors, boxes (M, 7) = x, y, z-bottom, length, width, height,
    yaw. Returns distance (N,) (inf: no hit), what was hit (N,) (box index, GROUND or -1) and the
    surface normal (N, 3) in the ego frame. Rays are processed in azimuth sectors, each tested
    only against the boxes its cone of directions can reach.
    """
    n = len(dirs)
    dist = np.full(n, np.inf)
    hit = np.full(n, -1, dtype=np.int64)
    normal = np.zeros((n, 3))
    down = dirs[:, 2] < -1e-9
    t_ground = np.where(down, -origin[2] / np.where(down, dirs[:, 2], -1.0), np.inf)
    on_ground = t_ground < max_range
    dist[on_ground], hit[on_ground] = t_ground[on_ground], GROUND
    normal[on_ground] = (0.0, 0.0, 1.0)
    if len(boxes) == 0:
        return dist, hit, normal
    order = np.argsort(np.arctan2(dirs[:, 1], dirs[:, 0]), kind="stable")
    for start in range(0, n, chunk):
        sl = order[start: start + chunk]
        reachable = _reachable(origin, dirs[sl], boxes, max_range)
        if not reachable:
            continue
        sub, index = reachable
        t, idx, nrm = _boxes(origin, dirs[sl], sub, max_range)
        closer = t < dist[sl]
        dist[sl] = np.where(closer, t, dist[sl])
        hit[sl] = np.where(closer, np.where(idx >= 0, index[np.maximum(idx, 0)], -1), hit[sl])
        normal[sl] = np.where(closer[:, None], nrm, normal[sl])
    return dist, hit, normal


def _reachable(origin: np.ndarray, dirs: np.ndarray, boxes: np.ndarray, max_range: float):
    """Boxes some ray can reach: within range, and not behind every ray (a conservative test on
    bounding spheres against the cone of ray directions)."""
    if len(boxes) == 0:
        return ()
    centre = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] + boxes[:, 5] / 2], axis=1) - origin
    radius = 0.5 * np.linalg.norm(boxes[:, 3:6], axis=1)
    dist = np.linalg.norm(centre, axis=1)
    axis = dirs.mean(axis=0)
    norm = np.linalg.norm(axis)
    keep = dist - radius < max_range
    if norm > 0.5:  # a cone of directions (a camera): drop boxes well outside it
        axis = axis / norm
        half_angle = np.arccos(np.clip((dirs @ axis).min(), -1.0, 1.0))
        angle = np.arccos(np.clip((centre @ axis) / np.maximum(dist, 1e-9), -1.0, 1.0))
        slack = np.arcsin(np.clip(radius / np.maximum(dist, 1e-9), 0.0, 1.0))
        keep &= (angle - slack <= half_angle) | (dist <= radius)
    index = np.flatnonzero(keep)
    return (boxes[index], index) if len(index) else ()


def _boxes(origin: np.ndarray, dirs: np.ndarray, boxes: np.ndarray, max_range: float):
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    centre = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] + boxes[:, 5] / 2], axis=1)
    half = boxes[:, 3:6] / 2  # (M, 3)
    rel = origin - centre  # (M, 3): the origin in each box's frame (before rotation)
    # rotate by -yaw about z: local x = c*x + s*y, local y = -s*x + c*y
    o_local = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], 1)
    dx, dy, dz = dirs[:, 0:1], dirs[:, 1:2], dirs[:, 2:3]
    d_local = np.stack([c * dx + s * dy, -s * dx + c * dy, np.broadcast_to(dz, (len(dirs), len(boxes)))],
                       axis=2)  # (N, M, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d_local
        t1 = (-half - o_local) * inv
        t2 = (half - o_local) * inv
    t_near = np.minimum(t1, t2)
    t_far = np.maximum(t1, t2)
    t_near = np.where(np.isnan(t_near), -np.inf, t_near)
    t_far = np.where(np.isnan(t_far), np.inf, t_far)
    entry = t_near.max(axis=2)
    exit_ = t_far.min(axis=2)
    ok = (exit_ >= entry) & (entry > 1e-6) & (entry < max_range)
    t = np.where(ok, entry, np.inf)
    best = t.argmin(axis=1)
    rows = np.arange(len(dirs))
    t_best = t[rows, best]
    # the normal is the face crossed last on entry, pointing against the ray
    axis = t_near[rows, best].argmax(axis=1)
    sign = -np.sign(d_local[rows, best, axis])
    local_n = np.zeros((len(dirs), 3))
    local_n[rows, axis] = sign
    cb, sb = c[best], s[best]
    nrm = np.stack([cb * local_n[:, 0] - sb * local_n[:, 1], sb * local_n[:, 0] + cb * local_n[:, 1],
                    local_n[:, 2]], axis=1)
    return t_best, np.where(np.isfinite(t_best), best, -1), nrm
