"""Procedural street scenes: a straight street with buildings, sidewalks and moving road users.

A segment is a clip of an ego car driving down a street (like a Waymo segment: 20 s, here at
2 Hz by default, as a client keeping every 5th of Waymo's 10 Hz frames). Its *style* (city,
weather, time of day, class mix) makes clients non-IID, as Waymo segments from different cities
and conditions are. Everything is an oriented 3D box (x, y, z-bottom, length, width, height, yaw)
in the ego frame (x forward, y left, z up), so cameras and LiDAR ray-cast the same geometry and
the 2D/3D labels follow from it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cosim.learning.data.materials import GroundMaterials, ground_materials, object_material

# Bump when what a seed generates changes: the version is part of every cache key built from
# scenes (synthetic datasets, the synthetic pre-training), so stale caches are never reused.
GENERATOR_VERSION = 5

CITIES = ("San Francisco", "Phoenix", "Mountain View", "Los Angeles", "Detroit", "Seattle")
WEATHER = ("sunny", "cloudy", "rainy", "foggy")
TIMES = ("day", "dusk", "night")

# Kinds of scene element: (name, LiDAR class in SEG3D, camera class in PAN2D, detection class)
KINDS = {
    "car": (1, 1, 0),
    "pedestrian": (7, 8, 1),
    "cyclist": (6, 9, 2),
    "sign": (8, 16, 3),
    "building": (14, 18, -1),
    "tree": (15, 23, -1),
    "pole": (10, 14, -1),
}
KIND_NAMES = tuple(KINDS)
# Surfaces that are not boxes: (LiDAR class, camera class)
ROAD, LANE_MARKER, SIDEWALK, SKY = (18, 19), (19, 20), (22, 22), (0, 24)
SIZES = {  # length, width, height (m) and a jitter factor
    "car": ((4.5, 1.9, 1.6), 0.15), "pedestrian": ((0.6, 0.6, 1.75), 0.1),
    "cyclist": ((1.8, 0.6, 1.7), 0.1), "sign": ((0.15, 0.8, 2.6), 0.1),
    "tree": ((1.5, 1.5, 6.0), 0.3), "pole": ((0.3, 0.3, 7.0), 0.1),
}
ROAD_HALF_WIDTH, SIDEWALK_OUTER = 5.25, 8.5


@dataclass(frozen=True)
class SegmentStyle:
    city: str
    weather: str
    time_of_day: str
    class_mix: dict[str, float]  # expected count of each road-user kind per 100 m

    def caption(self) -> str:
        return f"a {self.weather} {self.time_of_day} street in {self.city}"


@dataclass
class Segment:
    """A clip: static boxes, moving agents and the ego speed; ``frame(k)`` places them."""

    name: str
    style: SegmentStyle
    static: np.ndarray  # (S, 7) boxes
    static_kind: np.ndarray  # (S,) index into KIND_NAMES
    agents: np.ndarray  # (A, 7) boxes at t = 0
    agent_kind: np.ndarray  # (A,)
    agent_speed: np.ndarray  # (A,) m/s along each agent's heading
    ego_speed: float
    frames: int
    hz: float = 2.0
    # Materials, in frame(k)'s box order (static, then agents): colour and LiDAR reflectivity.
    rgb: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    reflectivity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ground: GroundMaterials | None = None

    def frame(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes, kinds and instance ids (stable over frames; 0 = none) in the ego frame."""
        t = k / self.hz
        agents = self.agents.copy()
        agents[:, 0] += np.cos(agents[:, 6]) * self.agent_speed * t
        agents[:, 1] += np.sin(agents[:, 6]) * self.agent_speed * t
        boxes = np.concatenate([self.static, agents])
        boxes[:, 0] -= self.ego_speed * t
        kinds = np.concatenate([self.static_kind, self.agent_kind])
        ids = np.arange(1, len(boxes) + 1)
        return boxes, kinds, ids


def random_style(rng: np.random.Generator) -> SegmentStyle:
    # Per 100 m of street, as downtown blocks give them: curbside signs every 11-25 m (parking,
    # street names, turn rules), a bike lane's traffic, and pedestrians on both sidewalks.
    mix = {"car": rng.uniform(2, 10), "pedestrian": rng.uniform(2, 12),
           "cyclist": rng.uniform(2, 6), "sign": rng.uniform(4, 9)}
    return SegmentStyle(CITIES[rng.integers(len(CITIES))], WEATHER[rng.integers(len(WEATHER))],
                        TIMES[rng.integers(len(TIMES))], mix)


def make_segment(name: str, seed: int, frames: int = 40, style: SegmentStyle | None = None,
                 hz: float = 2.0) -> Segment:
    """A deterministic segment from a seed (and an optional fixed style)."""
    rng = np.random.default_rng(seed)
    style = style or random_style(rng)
    ego_speed = float(rng.uniform(0, 12))
    travel = ego_speed * (frames - 1) / hz
    length_m = max(160.0, travel + 110.0)  # buildings wherever the ego car and sensors get
    static, static_kind = [], []
    for side in (1, -1):  # buildings along both sides, with gaps
        x = -30.0
        while x < length_m:
            depth, width = rng.uniform(10, 20), rng.uniform(12, 35)
            tall = style.city in ("San Francisco", "Seattle")
            height = rng.uniform(8, 45) if tall else rng.uniform(5, 20)
            y = side * (SIDEWALK_OUTER + depth / 2 + rng.uniform(0, 2))
            static.append((x + width / 2, y, 0.0, width, depth, height, 0.0))
            static_kind.append(KIND_NAMES.index("building"))
            x += width + rng.uniform(1, 8)
        for kind, per_100 in (("tree", 3.0), ("pole", 2.0)):
            for _ in range(rng.poisson(per_100 * length_m / 100)):
                y = side * rng.uniform(ROAD_HALF_WIDTH + 0.5, SIDEWALK_OUTER - 0.5)
                static.append(_box(rng, kind, rng.uniform(-20, length_m), y, 0.0))
                static_kind.append(KIND_NAMES.index(kind))
    for _ in range(rng.poisson(style.class_mix["sign"] * length_m / 100)):
        side = rng.choice([1, -1])
        static.append(_box(rng, "sign", rng.uniform(0, length_m), side * (ROAD_HALF_WIDTH + 0.4), 0.0))
        static_kind.append(KIND_NAMES.index("sign"))
    # Road users along the stretch the sensors sweep during the clip (the TOP LiDAR reaches
    # 75 m ahead), as dense as the class mix says.
    agents, agent_kind, speed = [], [], []
    lanes = (-3.5, -1.75, 1.75, 3.5)
    swept = travel + 105.0
    # Crosswalks at the block corners: pedestrians crossing the street in front of the camera,
    # where a front camera sees people large enough to detect (on the sidewalks they are at the
    # edge of its view and a few pixels wide).
    x = rng.uniform(5.0, 60.0)
    while x < travel + 75.0:
        for _ in range(rng.poisson(style.class_mix["pedestrian"] / 4)):
            y = rng.uniform(-SIDEWALK_OUTER + 1.0, SIDEWALK_OUTER - 1.0)
            agents.append(_box(rng, "pedestrian", x + rng.uniform(-1.5, 1.5), y,
                               rng.choice([np.pi / 2, -np.pi / 2]) + rng.normal(0, 0.1)))
            agent_kind.append(KIND_NAMES.index("pedestrian"))
            speed.append(rng.uniform(0.8, 1.6))
        x += rng.uniform(70.0, 130.0)
    for kind in ("car", "pedestrian", "cyclist"):
        for _ in range(rng.poisson(style.class_mix[kind] * swept / 100)):
            x = rng.uniform(-30.0, travel + 75.0)
            if kind == "car":
                y = lanes[rng.integers(len(lanes))]
                yaw, v = (0.0, rng.uniform(3, 14)) if y > 0 else (np.pi, rng.uniform(3, 14))
            elif kind == "cyclist":
                y = rng.choice([1, -1]) * (ROAD_HALF_WIDTH - 0.6)
                yaw, v = (0.0 if y > 0 else np.pi), rng.uniform(2, 6)
            else:
                y = rng.choice([1, -1]) * rng.uniform(ROAD_HALF_WIDTH + 0.5, SIDEWALK_OUTER - 0.3)
                yaw, v = rng.choice([0.0, np.pi]) + rng.normal(0, 0.1), rng.uniform(0, 1.6)
            agents.append(_box(rng, kind, x, y, yaw))
            agent_kind.append(KIND_NAMES.index(kind))
            speed.append(v)
    kinds = static_kind + agent_kind
    # Materials from a stream of their own: the layout a seed gives stays as it was.
    material_rng = np.random.default_rng([seed, 101])
    drawn = [object_material(KIND_NAMES[k], style.city, material_rng) for k in kinds]
    return Segment(
        name, style, np.array(static, float).reshape(-1, 7), np.array(static_kind, int),
        np.array(agents, float).reshape(-1, 7), np.array(agent_kind, int),
        np.array(speed, float), ego_speed, frames, hz,
        rgb=np.array([d[0] for d in drawn], float).reshape(-1, 3),
        reflectivity=np.array([d[1] for d in drawn], float),
        ground=ground_materials(material_rng),
    )


def _box(rng: np.random.Generator, kind: str, x: float, y: float, yaw: float) -> tuple:
    (length, width, height), jitter = SIZES[kind]
    scale = 1 + rng.uniform(-jitter, jitter, 3)
    return (x, y, 0.0, length * scale[0], width * scale[1], height * scale[2], yaw)


def ground_surfaces(seg: Segment, k: int, points: np.ndarray, ground: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of ground hits on lane markers (dashed centre line), road, and sidewalk or beyond,
    for hit points (N, 3) in the ego frame of frame k."""
    y_abs = np.abs(points[:, 1])
    x_world = points[:, 0] + seg.ego_speed * k / seg.hz
    lane = ground & (y_abs < 0.12) & ((x_world % 6.0) < 3.0)
    road = ground & (y_abs < ROAD_HALF_WIDTH) & ~lane
    side = ground & ~(lane | road)
    return lane, road, side
