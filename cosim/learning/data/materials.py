"""Surface materials: what colour a camera sees and how much light a LiDAR gets back.

Drawn per object instance (and per segment for the ground surfaces) from distributions that
overlap across classes, as real materials do: a silver car, a grey building and a grey pole
share colours; retro-reflective signs and lane paint share high LiDAR reflectivity; asphalt,
dark clothing and tree bark share low. So neither a pixel's colour nor a point's intensity gives
its class away (a model-free colour/intensity lookup is reported beside every result), and the
class has to come from shape and context.

Colour fractions of new cars follow the usual paint statistics (white, black, grey and silver
about three quarters); reflectivity follows surface lightness for painted and clothed surfaces,
with retro-reflectors (signs, lane markings) bright.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CAR_PAINTS = (  # (rgb, share)
    ((0.85, 0.85, 0.84), 0.25), ((0.07, 0.07, 0.08), 0.20), ((0.42, 0.42, 0.44), 0.18),
    ((0.62, 0.63, 0.65), 0.12), ((0.58, 0.10, 0.10), 0.10), ((0.14, 0.24, 0.52), 0.09),
    ((0.68, 0.62, 0.48), 0.03), ((0.20, 0.38, 0.24), 0.03),
)
SIGN_FACES = ((0.95, 0.80, 0.10), (0.90, 0.90, 0.88), (0.78, 0.10, 0.10), (0.10, 0.48, 0.25),
              (0.12, 0.30, 0.68))
CITY_FACADES = {"San Francisco": (0.8, 0.75, 0.65), "Phoenix": (0.85, 0.6, 0.4),
                "Mountain View": (0.7, 0.7, 0.75), "Los Angeles": (0.9, 0.85, 0.7),
                "Detroit": (0.55, 0.35, 0.3), "Seattle": (0.5, 0.55, 0.6)}


@dataclass(frozen=True)
class GroundMaterials:
    """A segment's road, lane-marking, sidewalk and bare-ground surfaces."""

    road_rgb: tuple[float, float, float]
    lane_rgb: tuple[float, float, float]
    sidewalk_rgb: tuple[float, float, float]
    bare_rgb: tuple[float, float, float]
    road_reflectivity: float
    lane_reflectivity: float
    sidewalk_reflectivity: float


def _lightness(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _jitter(rng: np.random.Generator, rgb, sd: float) -> np.ndarray:
    return np.clip(np.asarray(rgb, float) + rng.normal(0, sd, 3), 0.02, 0.98)


def _clothing(rng: np.random.Generator) -> np.ndarray:
    """Anything from black to white, with the odd bright colour."""
    if rng.random() < 0.6:
        return _jitter(rng, np.full(3, rng.uniform(0.05, 0.85)), 0.05)
    return rng.uniform(0.05, 0.9, 3)


def object_material(kind: str, city: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(rgb in [0, 1], LiDAR reflectivity in [0, 1]) of one object instance."""
    if kind == "car":
        paints, shares = zip(*CAR_PAINTS, strict=True)
        rgb = _jitter(rng, paints[rng.choice(len(paints), p=np.array(shares) / sum(shares))], 0.04)
        return rgb, float(np.clip(0.08 + 0.45 * _lightness(rgb) + rng.normal(0, 0.06), 0.02, 1))
    if kind in ("pedestrian", "cyclist"):
        rgb = _clothing(rng)
        return rgb, float(np.clip(0.06 + 0.4 * _lightness(rgb) + rng.normal(0, 0.06), 0.02, 1))
    if kind == "sign":
        rgb = _jitter(rng, SIGN_FACES[rng.integers(len(SIGN_FACES))], 0.05)
        return rgb, float(rng.uniform(0.35, 1.0))  # retro-reflective sheeting, worn or new
    if kind == "building":
        base = CITY_FACADES[city] if rng.random() < 0.6 else np.full(3, rng.uniform(0.3, 0.85))
        rgb = _jitter(rng, base, 0.1)
        return rgb, float(np.clip(0.05 + 0.45 * _lightness(rgb) + rng.normal(0, 0.08), 0.02, 1))
    if kind == "tree":
        rgb = _jitter(rng, (rng.uniform(0.1, 0.35), rng.uniform(0.25, 0.55), rng.uniform(0.08, 0.3)),
                      0.03)
        return rgb, float(rng.uniform(0.05, 0.45))
    if kind == "pole":
        rgb = _jitter(rng, np.full(3, rng.uniform(0.15, 0.7)), 0.04)
        return rgb, float(rng.uniform(0.15, 0.7))
    raise ValueError(f"no material for {kind!r}")


def ground_materials(rng: np.random.Generator) -> GroundMaterials:
    asphalt = rng.uniform(0.15, 0.42)
    lane = (0.9, 0.9, 0.85) if rng.random() < 0.7 else (0.9, 0.75, 0.2)
    sidewalk = rng.uniform(0.4, 0.7)
    return GroundMaterials(
        road_rgb=tuple(_jitter(rng, (asphalt, asphalt, asphalt + 0.02), 0.02)),
        lane_rgb=tuple(_jitter(rng, lane, 0.04)),
        sidewalk_rgb=tuple(_jitter(rng, (sidewalk, sidewalk * 0.97, sidewalk * 0.92), 0.03)),
        bare_rgb=tuple(_jitter(rng, (0.45, 0.42, 0.35), 0.06)),
        road_reflectivity=float(rng.uniform(0.05, 0.22)),
        lane_reflectivity=float(rng.uniform(0.3, 0.85)),
        sidewalk_reflectivity=float(rng.uniform(0.1, 0.35)),
    )


def lidar_intensity(reflectivity: np.ndarray, cos_incidence: np.ndarray, rng: np.random.Generator
                    ) -> np.ndarray:
    """Return intensity: reflectivity times a Lambertian-ish incidence term, plus noise."""
    return np.clip(reflectivity * (0.35 + 0.65 * np.abs(cos_incidence))
                   + rng.normal(0, 0.03, len(reflectivity)), 0.0, 1.0)
