"""The onboarding study's figure (the analogue of the paper's Fig. 4) and table.

Curves: the arriving task's headline metric after each aggregation round, mean over seeds (a band
of ± one standard deviation when there are several), one panel per arriving task.
Table: final metric mean ± std over seeds, and the first round whose mean reaches 90 % of the best
final mean any method reached on that task and connectivity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cosim.analysis.summary import headline_curves  # noqa: E402
from cosim.names import HEADLINE  # noqa: E402

CONNECTIVITY_TITLE = {"gated": "connectivity-gated rounds (sf_downtown radio)",
                      "ideal": "ideal connectivity (every client, every round)"}


def curves_table(runs) -> pd.DataFrame:
    """One row per (run, round): task, method, connectivity, seed, round, value."""
    rows = []
    for run in runs:
        curve = headline_curves(run.path).get(run.task)
        if curve is None:
            continue
        for rnd, value in zip(curve[0], curve[2], strict=True):
            rows.append({"task": run.task, "method": run.method, "connectivity": run.connectivity,
                         "seed": run.seed, "round": int(rnd), "value": float(value)})
    return pd.DataFrame(rows, columns=["task", "method", "connectivity", "seed", "round", "value"])


def figure(curves: pd.DataFrame, connectivity: str, tasks: list[str], methods: list[str]):
    cols = min(2, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    colours = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(methods)}
    data = curves[curves.connectivity == connectivity]
    for ax, task in zip(axes.flat, tasks, strict=False):
        for method in methods:
            d = data[(data.task == task) & (data.method == method)]
            if not len(d):
                continue
            stats = d.groupby("round").value.agg(["mean", "std"]).fillna(0.0)
            ax.plot(stats.index, stats["mean"], marker=".", color=colours[method], label=method,
                    linewidth=2.2 if method == "FedAdapt" else 1.3)
            if d.seed.nunique() > 1:
                ax.fill_between(stats.index, stats["mean"] - stats["std"],
                                stats["mean"] + stats["std"], color=colours[method], alpha=0.12)
        ax.set_title(f"arriving: {task} ({HEADLINE[task]})", fontsize=10)
        ax.set_xlabel("aggregation round")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.suptitle(f"Task onboarding: {CONNECTIVITY_TITLE[connectivity]}", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return fig


def summary_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Final metric mean ± std over seeds and rounds to 90 % of the best final mean."""
    rows = []
    for (conn, task), d in curves.groupby(["connectivity", "task"], sort=False):
        last = d[d["round"] == d.groupby(["method", "seed"])["round"].transform("max")]
        finals = last.groupby("method").value.agg(["mean", "std"])
        best = finals["mean"].max()
        for method, f in finals.iterrows():
            mean_curve = d[d.method == method].groupby("round").value.mean()
            reached = mean_curve[mean_curve >= 0.9 * best] if best > 0 else mean_curve.iloc[:0]
            rows.append({"connectivity": conn, "task": task, "metric": HEADLINE[task],
                         "method": method, "final_mean": float(f["mean"]),
                         "final_std": float(0.0 if np.isnan(f["std"]) else f["std"]),
                         "rounds_to_90pct_best": int(reached.index[0]) if len(reached) else None,
                         "best_method": bool(best > 0 and finals["mean"].idxmax() == method)})
    return pd.DataFrame(rows)


def write_outputs(runs, out: Path, tasks: list[str], methods: list[str],
                  connectivities: Sequence[str]) -> pd.DataFrame:
    curves = curves_table(runs)
    curves.to_csv(out / "curves.csv", index=False)
    for conn in connectivities:
        with plt.style.context("default"):  # Matplotlib's own defaults, not a matplotlibrc's
            fig = figure(curves, conn, tasks, methods)
            fig.savefig(out / f"fig4_{conn}.png", dpi=110)
        plt.close(fig)
    table = summary_table(curves)
    table.to_csv(out / "table.csv", index=False)
    (out / "table.md").write_text(markdown(table), encoding="utf-8")
    return table


def markdown(table: pd.DataFrame) -> str:
    lines = ["| connectivity | arriving task | method | final (mean ± std) | rounds to 90 % of best |",
             "|---|---|---|---|---|"]
    for r in table.itertuples():
        final = f"{r.final_mean:.4f} ± {r.final_std:.4f}" + (" **best**" if r.best_method else "")
        rounds = "-" if r.rounds_to_90pct_best is None or pd.isna(r.rounds_to_90pct_best) \
            else str(int(r.rounds_to_90pct_best))
        lines.append(f"| {r.connectivity} | {r.task} ({r.metric}) | {r.method} | {final} | {rounds} |")
    return "\n".join(lines) + "\n"
