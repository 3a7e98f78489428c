"""Mean and min-max band over seeds of curves sampled at different instants.

A compare folder runs every policy on several seeds; each seed's curve has its own evaluation
times. A paper shows one line per policy: the mean over seeds with the spread around it. Each
seed's curve is held (its last value stays until the next) on the union of all instants, and the
mean and band are taken where every seed has a value, so the line never averages a partial set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BAND = "min–max over seeds"


@dataclass(frozen=True)
class Band:
    t: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: int


def hold(t: np.ndarray, v: np.ndarray, grid: np.ndarray, before: float = np.nan) -> np.ndarray:
    """The curve's last value at or before each grid instant (``before`` ahead of its first)."""
    order = np.argsort(t, kind="stable")
    t, v = np.asarray(t, float)[order], np.asarray(v, float)[order]
    idx = np.searchsorted(t, grid, side="right") - 1
    return np.where(idx >= 0, v[np.clip(idx, 0, None)], before)


def seed_band(curves: list[tuple[np.ndarray, np.ndarray]], before: float = np.nan) -> Band | None:
    """Mean, min and max over the seeds' curves (t, v), on the instants where all have a value;
    None when they share none."""
    curves = [(np.asarray(t, float), np.asarray(v, float)) for t, v in curves if len(t)]
    if not curves:
        return None
    grid = np.unique(np.concatenate([t for t, _ in curves]))
    values = np.vstack([hold(t, v, grid, before) for t, v in curves])
    ok = np.isfinite(values).all(axis=0)
    if not ok.any():
        return None
    values, grid = values[:, ok], grid[ok]
    return Band(grid, values.mean(axis=0), values.min(axis=0), values.max(axis=0), len(curves))


def _same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], rtol: float) -> bool:
    """Equal where both exist: each held at every instant of either within their common span."""
    (ta, va), (tb, vb) = ((np.asarray(t, float), np.asarray(v, float)) for t, v in (a, b))
    if not len(ta) or not len(tb):
        return False
    lo, hi = max(ta.min(), tb.min()), min(ta.max(), tb.max())
    grid = np.unique(np.r_[ta, tb])
    grid = grid[(grid >= lo) & (grid <= hi)]
    return bool(len(grid)) and np.allclose(hold(ta, va, grid), hold(tb, vb, grid), rtol=rtol,
                                            atol=1e-12, equal_nan=True)


def coinciding(curves: dict[str, tuple[np.ndarray, np.ndarray]], rtol: float = 1e-9) -> list[list[str]]:
    """Groups (two or more) of labels whose curves are equal where both exist (step curves,
    evaluated at either's instants): the figure names them, since one line hides the other."""
    groups: list[list[str]] = []
    for label, curve in curves.items():
        for group in groups:
            if _same(curves[group[0]], curve, rtol):
                group.append(label)
                break
        else:
            groups.append([label])
    return [g for g in groups if len(g) > 1]


def coincide_note(groups: list[list[str]],
                  what: str = "identical curves, drawn on top of each other") -> str:
    """A line for the figure: which curves lie on top of each other."""
    return "; ".join(" = ".join(g) for g in groups) + (f" ({what})" if groups else "")
