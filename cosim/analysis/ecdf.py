"""Empirical CDFs of durations, with right-censored samples shown apart.

A link window still open when the run ends is right-censored: its recorded duration is a lower
bound. Dropping such windows biases the CDF towards short windows; counting them as ended hides
that they are bounds. So a figure draws the CDF of every window (censored ones at their bound) in
the series' line style, marks each censored sample with an open marker on it, and adds the CDF of
the ended windows alone as a thin dotted step: where the two part, censoring matters.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from cosim.analysis.figure_style import SeriesStyle

ECDF_POINTS = 2_000  # at most this many steps per CDF line
CENSORED_LABEL = "censored (open at the end of the run: a lower bound)"


def ecdf(x: np.ndarray, thin: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values and their empirical CDF (thinned to ECDF_POINTS, ends kept)."""
    x = np.sort(np.asarray(x, float))
    p = np.arange(1, len(x) + 1) / len(x)
    if thin and len(x) > ECDF_POINTS:
        keep = np.unique(np.linspace(0, len(x) - 1, ECDF_POINTS).astype(int))
        x, p = x[keep], p[keep]
    return x, p


def step_ecdf(ax: Axes, values: np.ndarray, **kw) -> None:
    """The CDF as a step from 0 at the smallest value up to 1 at the largest."""
    x, p = ecdf(values)
    ax.step(np.r_[x[0], x], np.r_[0.0, p], where="post", **kw)


def censored_ecdf(ax: Axes, durations: np.ndarray, censored: np.ndarray, style: SeriesStyle,
                  label: str) -> tuple[np.ndarray, np.ndarray] | None:
    """All samples' CDF (the series' line style), the ended samples' CDF (thin, dotted), censored
    samples as open markers on the first; returns the drawn (sorted durations, CDF), or None when
    nothing is left. Non-positive durations are left out (a log axis cannot show them)."""
    keep = durations > 0
    d, c = durations[keep].astype(float), censored[keep].astype(bool)
    if not len(d):
        return None
    order = np.argsort(d, kind="stable")
    d, c = d[order], c[order]
    p = np.arange(1, len(d) + 1) / len(d)
    step_ecdf(ax, d, color=style.color, linestyle=style.linestyle, linewidth=1.7,
              zorder=style.zorder, label=f"{label}: all {len(d):,} (median {np.median(d):.1f} s)")
    if c.any():
        # the highest CDF value at each censored duration: the point sits on the step's corner
        ax.plot(d[c], p[c], linestyle="none", marker=style.marker, markersize=5.5,
                markerfacecolor="white", markeredgecolor=style.color, markeredgewidth=1.2,
                zorder=style.zorder + 0.5, label=f"{label}: {int(c.sum()):,} {CENSORED_LABEL}")
    if (~c).any() and c.any():
        step_ecdf(ax, d[~c], color=style.color, linewidth=0.9, linestyle=(0, (1, 1.5)), alpha=0.8,
                  zorder=style.zorder, label=f"{label}: ended only ({int((~c).sum()):,})")
    return d, p
