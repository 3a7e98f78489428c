"""The report's figures, one function each; every one returns a matplotlib Figure, or None when
the runs hold no data for it (a run without learning has no participation to plot)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, same pixels everywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cosim.analysis.runs import ReportSource, RunRef, table  # noqa: E402
from cosim.analysis.summary import headline_curves, read_run_json  # noqa: E402
from cosim.names import (  # noqa: E402
    COMPLETED,
    DEADLINE,
    DROP_REASONS,
    FAILED,
    HEADLINE,
    LEFT_NETWORK,
    OUT_OF_COVERAGE,
    RADIO_LINK_FAILURE,
)
from cosim.trace_schemas import CELLS, HANDOFFS, LINK_WINDOWS, MOBILITY, PARTICIPATION  # noqa: E402

OUTCOME_COLOURS = {COMPLETED: "#2a9d8f", LEFT_NETWORK: "#e76f51", RADIO_LINK_FAILURE: "#9b2226",
                   OUT_OF_COVERAGE: "#f4a261", DEADLINE: "#6c757d"}


def _colours(labels: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(dict.fromkeys(labels))}


def metric_vs_time(src: ReportSource) -> Figure | None:
    """Headline metric per task against simulated time; one colour per policy / aggregation."""
    curves = [(run, headline_curves(run.path)) for run in src.runs]
    if not any(c for _, c in curves):
        return None
    colours = _colours([r.label for r in src.runs])
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for ax, (task, metric) in zip(axes.flat, HEADLINE.items(), strict=True):
        seen = set()
        for run, by_task in curves:
            if task not in by_task:
                continue
            _, t, v = by_task[task]
            ax.plot(t / 60, v, marker=".", color=colours[run.label], alpha=0.85,
                    label=None if run.label in seen else run.label)
            seen.add(run.label)
        lookup = [v for v in (_lookup(run.path, task, metric) for run in src.runs) if v is not None]
        if lookup:  # the model-free baseline on the same held-out frames (equal across runs)
            ax.axhline(float(np.mean(lookup)), color="0.4", ls="--", lw=1,
                       label=None if "lookup" in seen else "model-free lookup baseline")
            seen.add("lookup")
        ax.set_title(f"{task}: {metric}")
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("simulated time (min)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def _lookup(run_dir, task: str, metric: str) -> float | None:
    """The run's model-free lookup baseline for a task (run.json), if it has one."""
    info = read_run_json(run_dir)
    value = (((info.get("summary") or {}).get("learning") or {}).get("lookup_baseline") or {}) \
        .get(task, {}).get(metric)
    return None if value is None or value != value else float(value)


def participation_per_round(src: ReportSource) -> Figure | None:
    """Outcomes of the selected clients per round (first seed of each policy / aggregation)."""
    firsts: dict[str, RunRef] = {}
    for run in src.runs:
        firsts.setdefault(run.label, run)
    frames = {label: table(run, PARTICIPATION) for label, run in firsts.items()}
    frames = {k: v for k, v in frames.items() if v is not None and len(v)}
    if not frames:
        return None
    fig, axes = plt.subplots(len(frames), 1, figsize=(10, 2.4 * len(frames) + 0.6), squeeze=False)
    for ax, (label, p) in zip(axes[:, 0], frames.items(), strict=True):
        outcome = p.reason.where(p.outcome != COMPLETED, COMPLETED).fillna(FAILED)
        counts = pd.crosstab(p["round"], outcome)
        bottom = np.zeros(len(counts))
        for name in (COMPLETED, *DROP_REASONS):
            if name in counts:
                ax.bar(counts.index, counts[name], bottom=bottom, width=0.9, label=name,
                       color=OUTCOME_COLOURS[name])
                bottom += counts[name].to_numpy()
        ax.set_title(f"{label} (seed {firsts[label].seed})", fontsize=10)
        ax.set_ylabel("clients")
        ax.grid(alpha=0.3, axis="y")
    axes[-1, 0].set_xlabel("round (async: model version)")
    handles = {h.get_label(): h for ax in axes[:, 0] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def link_window_durations(src: ReportSource) -> Figure | None:
    """How long a vehicle stays connected (any cell) and stays on one cell."""
    frames = [(run, table(run, LINK_WINDOWS)) for run in src.connectivity]
    frames = [(r, w) for r, w in frames if w is not None and len(w)]
    if not frames:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (title, connected) in zip(axes, (("connected to any cell", True),
                                              ("on one serving cell (dwell)", False)), strict=True):
        for run, w in frames:
            d = w[(w.cell == -1) == connected].duration_s.to_numpy()
            d = d[d > 0]
            if len(d):
                bins = np.logspace(np.log10(max(d.min(), 0.1)), np.log10(d.max()) + 1e-9, 30)
                ax.hist(d, bins=bins, histtype="step", linewidth=1.5,
                        label=f"{run.label}: median {np.median(d):.0f} s (n={len(d)})")
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("window duration (s, log)")
        ax.set_ylabel("windows")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def handoff_map(src: ReportSource) -> Figure | None:
    """Where handoffs happen, over the SUMO street network, with the cells."""
    run = src.connectivity[0]
    handoffs, mobility, cells = (table(run, n) for n in (HANDOFFS, MOBILITY, CELLS))
    if handoffs is None or mobility is None or cells is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 8))
    net = (run.info.get("inputs") or {}).get("net")
    drawn = _draw_network(ax, Path(net)) if net else False
    moves = handoffs[handoffs.kind == "handoff"] if "kind" in handoffs else handoffs
    located = _locate(moves, mobility)
    if len(located):
        ping = located.ping_pong.to_numpy(bool) if "ping_pong" in located else np.zeros(len(located), bool)
        ax.scatter(located.x[~ping], located.y[~ping], s=5, c="#e76f51", alpha=0.5,
                   label=f"handoff ({(~ping).sum()})")
        ax.scatter(located.x[ping], located.y[ping], s=5, c="#6a4c93", alpha=0.6,
                   label=f"ping-pong ({ping.sum()})")
    for kind, marker, size in (("macro", "^", 120), ("small", "s", 60), ("rsu", "D", 50)):
        c = cells[cells.kind == kind]
        if len(c):
            ax.scatter(c.x, c.y, marker=marker, s=size, c="#1d3557", edgecolors="white",
                       label=f"{kind} cell", zorder=5)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(f"handoffs, {run.label}" + ("" if drawn else " (street network file not found)"),
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def _draw_network(ax, net_file: Path) -> bool:
    """The streets on one axes or on each of several (the net file is read once)."""
    if not net_file.is_file():
        return False
    import sumolib
    from matplotlib.collections import LineCollection

    net = sumolib.net.readNet(str(net_file))
    lines = [edge.getShape() for edge in net.getEdges() if edge.getFunction() != "internal"]
    for one in np.ravel(ax):
        one.add_collection(LineCollection(lines, colors="#adb5bd", linewidths=0.8, zorder=0))
        one.autoscale()
    return True


def _locate(handoffs: pd.DataFrame, mobility: pd.DataFrame) -> pd.DataFrame:
    """Each handoff at its vehicle's last recorded position (traces are 1 s apart or finer)."""
    if not len(handoffs):
        return handoffs.assign(x=[], y=[])
    left = handoffs.sort_values("t", kind="stable")
    right = mobility[["t", "vehicle", "x", "y"]].sort_values("t", kind="stable")
    return pd.merge_asof(left, right, on="t", by="vehicle", direction="backward").dropna(
        subset=["x", "y"])


def staleness_histogram(src: ReportSource) -> Figure | None:
    """Staleness of the updates that were aggregated (0 for synchronous rounds)."""
    rows = []
    for run in src.runs:
        p = table(run, PARTICIPATION)
        if p is not None and len(p):
            done = p[p.outcome == COMPLETED]
            rows.append((run.label, done.staleness.to_numpy()))
    if not rows:
        return None
    merged: dict[str, list] = {}
    for label, s in rows:
        merged.setdefault(label, []).append(s)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    top = max(int(np.concatenate([np.concatenate(v) for v in merged.values()]).max(initial=0)), 1)
    bins = np.arange(-0.5, top + 1.5)
    colours = _colours(list(merged))
    for label, parts in merged.items():
        s = np.concatenate(parts)
        ax.hist(s, bins=bins, histtype="step", linewidth=1.5, color=colours[label],
                label=f"{label}: mean {s.mean():.2f}" if len(s) else label)
    ax.set_xlabel("staleness (model versions)")
    ax.set_ylabel("aggregated updates")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def bytes_over_the_air(src: ReportSource) -> Figure | None:
    """Cumulative model bytes downloaded and uploaded against simulated time."""
    curves = []
    for run in src.runs:
        p = table(run, PARTICIPATION)
        if p is not None and len(p):
            curves.append((run, p))
    if not curves:
        return None
    colours = _colours([r.label for r, _ in curves])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (direction, column, t_col) in zip(axes, (("down", "bytes_down", "t_download_end"),
                                                      ("up", "bytes_up", "t_upload_end")), strict=True):
        seen = set()
        for run, p in curves:
            moved = p[p[column] > 0].copy()
            # a failed transfer still used the air until it failed: count it at its selection
            moved["when"] = moved[t_col].fillna(moved.selected_at)
            moved = moved.sort_values("when", kind="stable")
            ax.step(moved.when / 60, moved[column].cumsum() / 1e6, where="post",
                    color=colours[run.label], label=None if run.label in seen else run.label)
            seen.add(run.label)
        ax.set_title(f"bytes {direction}", fontsize=10)
        ax.set_xlabel("simulated time (min)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MB (cumulative)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


FIGURES = {
    "metric_vs_time": ("Metric vs simulated time", metric_vs_time),
    PARTICIPATION: ("Participation and drop reasons per round", participation_per_round),
    LINK_WINDOWS: ("Link-window durations", link_window_durations),
    "handoff_map": ("Handoff locations over the street network", handoff_map),
    "staleness": ("Staleness of aggregated updates", staleness_histogram),
    "bytes": ("Bytes over the air", bytes_over_the_air),
}
