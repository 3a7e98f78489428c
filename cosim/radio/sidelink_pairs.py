"""Per-pair state of the sidelink, as arrays: each pair of vehicles has a slot holding its draws,
its shadowing and its open link window.

Random draws are counter-based (splitmix64 of the seed, the pair's tag and a counter): a pair's
n-th draw of a stream is the same whatever other pairs exist or in which order they are
evaluated, and a step's draws for all pairs are one vectorised computation.
"""

from __future__ import annotations

import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

# draw streams
LOS_U, BLOCKAGE_Z, SHADOW_Z0, SHADOW_INNOVATION = 1, 2, 3, 4


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def uniform(tags: np.ndarray, counter: np.ndarray | int, stream: int) -> np.ndarray:
    """A uniform in (0, 1) per tag, for this counter and stream."""
    with np.errstate(over="ignore"):
        x = _splitmix64(tags ^ _splitmix64(np.asarray(counter, np.uint64) * np.uint64(8) + np.uint64(stream)))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def normal(tags: np.ndarray, counter: np.ndarray | int, stream: int) -> np.ndarray:
    """A standard normal per tag (Box-Muller on two of the stream's uniforms)."""
    c = np.asarray(counter, np.uint64) * np.uint64(2)
    u1, u2 = uniform(tags, c, stream), uniform(tags, c + np.uint64(1), stream)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def pair_tag(seed: int, a: str, b: str) -> int:
    """A pair's 64-bit tag: the run's seed and the two vehicle ids."""
    return (int(seed) * 0x100000001B3 ^ (zlib.crc32(a.encode()) << 32) ^ zlib.crc32(b.encode())) & (2**64 - 1)


class PairStore:
    """Slots of pair state, grown as pairs are first seen (a run meets some tens of thousands)."""

    def __init__(self, seed: int, capacity: int = 1024):
        self.seed = seed
        self.slot_of: dict[tuple[str, str], int] = {}
        self.keys: list[tuple[str, str]] = []
        self.tag = np.zeros(capacity, np.uint64)
        self.los_u = np.zeros(capacity)
        self.blockage_z = np.zeros(capacity)
        self.shadow_z = np.zeros(capacity)
        self.draws = np.zeros(capacity, np.uint64)  # shadowing innovations drawn so far
        self.last_xy = np.full((capacity, 4), np.nan)  # both ends' positions at the last evaluation
        self.start = np.full(capacity, np.nan)  # open window's start (nan: none)
        self.rate_sum = np.zeros(capacity)
        self.steps = np.zeros(capacity, np.int64)
        self.rate_min = np.full(capacity, np.inf)

    def slots(self, keys: list[tuple[str, str]]) -> np.ndarray:
        """The pairs' slots, creating those seen for the first time."""
        get = self.slot_of.get
        out = np.fromiter((get(k, -1) for k in keys), np.int64, len(keys))
        new = np.flatnonzero(out < 0)
        if len(new):
            first = len(self.keys)
            self._grow(first + len(new))
            for j, i in enumerate(new):
                key = keys[i]
                self.slot_of[key] = first + j
                self.keys.append(key)
                out[i] = first + j
            fresh = np.arange(first, first + len(new))
            self.tag[fresh] = [pair_tag(self.seed, *keys[i]) for i in new]
            tags = self.tag[fresh]
            self.los_u[fresh] = uniform(tags, 0, LOS_U)
            self.blockage_z[fresh] = normal(tags, 0, BLOCKAGE_Z)
            self.shadow_z[fresh] = normal(tags, 0, SHADOW_Z0)
        return out

    def _grow(self, n: int) -> None:
        size = len(self.tag)
        if n <= size:
            return
        new = max(n, 2 * size)
        for name in ("tag", "los_u", "blockage_z", "shadow_z", "draws", "last_xy", "start", "rate_sum",
                     "steps", "rate_min"):
            old = getattr(self, name)
            fill = {"last_xy": np.nan, "start": np.nan, "rate_min": np.inf}.get(name, 0)
            grown = np.full((new, *old.shape[1:]), fill, dtype=old.dtype)
            grown[:size] = old
            setattr(self, name, grown)
