"""The forest plot of a compare: per measure, every pair's mean paired difference A - B with its
interval, the equivalence margin shaded, and the verdict in the marker's colour. It is what a
reader should see first: which differences are real, which are not, and which are undecided.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cosim.analysis.figure_style import set_caption
from cosim.analysis.paired import A_BETTER, B_BETTER, EQUIVALENT, UNDECIDED

# The measures drawn (pairs.csv holds every one): completion, then per task its area and time to
# target, then the final values.
DRAWN_PREFIXES = ("completion_rate", "area_", "time_to_target_", "final_")
COLOURS = {A_BETTER: "#1b7837", B_BETTER: "#b2182b", EQUIVALENT: "#2166ac", UNDECIDED: "#777777"}
NAMES = {A_BETTER: "A better", B_BETTER: "B better", EQUIVALENT: "equivalent",
         UNDECIDED: "undecided"}


def drawn_measures(pairs: pd.DataFrame) -> list[str]:
    measured = pairs[pairs.seeds > 0]
    return [m for prefix in DRAWN_PREFIXES for m in dict.fromkeys(measured.measure)
            if m.startswith(prefix)]


def forest_figure(pairs: pd.DataFrame) -> Figure:
    measures = drawn_measures(pairs)
    cols = min(4, max(1, len(measures)))
    rows = math.ceil(len(measures) / cols)
    n_pairs = pairs[["a", "b"]].drop_duplicates().shape[0]
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 0.9 + 0.32 * n_pairs * rows + 0.6 * rows),
                             squeeze=False)
    for ax in axes.flat[len(measures):]:
        ax.set_visible(False)
    for ax, measure in zip(axes.flat, measures, strict=False):
        rows_m = pairs[pairs.measure == measure].reset_index(drop=True)
        y = range(len(rows_m))[::-1]
        margin = rows_m.margin.iloc[0]
        if math.isfinite(margin):
            ax.axvspan(-margin, margin, color="#dde8f3", zorder=0)
        ax.axvline(0.0, color="#444", lw=0.8, zorder=1)
        for yi, r in zip(y, rows_m.itertuples(), strict=True):
            colour = COLOURS[r.decision]
            if math.isfinite(r.ci_low):
                ax.plot([r.ci_low, r.ci_high], [yi, yi], color=colour, lw=2, zorder=2)
            ax.plot([r.mean_a_minus_b], [yi], "o", color=colour, zorder=3)
        ax.set_yticks(list(y), [f"{r.a} - {r.b}" for r in rows_m.itertuples()], fontsize=7)
        ax.set_title(rows_m.label.iloc[0], fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    handles = [Line2D([], [], color=c, marker="o", lw=2, label=NAMES[d]) for d, c in COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    level = pairs.ci_level.iloc[0]
    seeds = int(pairs.seeds.max())
    return set_caption(fig, f"Paired differences A - B over {seeds} seeds: mean and {level:.1%} "
                            "Student-t interval; shaded, the equivalence margin; colour, the "
                            "verdict (Holm-corrected across the pairs of a measure; equivalence by "
                            "two one-sided tests). Every measure and pair: pairs.csv.")
