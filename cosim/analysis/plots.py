"""The report's learning and link figures, one function each; every one returns a matplotlib
Figure, or None when it means nothing for the runs (``skip.render`` gives the reason: a run without
learning has no participation to plot, a synchronous run no staleness).

Paper conventions (``figure_style``): one colour, line style and marker per policy / aggregation;
several seeds of a compare folder are drawn as the mean with a min-max band; counts have integer
ticks; durations are CDFs with right-censored samples marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, same pixels everywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.artist import Artist  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cosim.analysis.ecdf import censored_ecdf  # noqa: E402
from cosim.analysis.figure_style import (  # noqa: E402
    OUTCOME_COLOURS,
    band_handle,
    integer_ticks,
    log_seconds,
    series_styles,
    set_caption,
)
from cosim.analysis.gantt import client_gantt, outcome_of  # noqa: E402
from cosim.analysis.runs import ReportSource, RunRef, table  # noqa: E402
from cosim.analysis.seed_bands import BAND, coincide_note, coinciding, seed_band  # noqa: E402
from cosim.analysis.skip import Skip, figure  # noqa: E402
from cosim.analysis.summary import headline_curves, read_run_json  # noqa: E402
from cosim.names import ASYNC_METHODS, COMPLETED, DROP_REASONS, HEADLINE  # noqa: E402
from cosim.trace_schemas import CELLS, HANDOFFS, LINK_WINDOWS, MOBILITY, PARTICIPATION  # noqa: E402

NO_CLIENT = ("no client took part in any round (no participation rows: learning not configured, "
             "or no client was ever selected)")
HATCHES = ("", "//", "..", "xx", "\\\\", "oo")  # bars side by side stay apart in greyscale


def _colours(labels: list[str]) -> dict[str, tuple]:
    """Colour per label (the styles' colours, for figures that need colour only)."""
    return {label: style.color for label, style in series_styles(labels).items()}


def _by_label(runs: list[RunRef]) -> dict[str, list[RunRef]]:
    out: dict[str, list[RunRef]] = {}
    for run in runs:
        out.setdefault(run.label, []).append(run)
    return out


def _band_or_line(ax, label: str, pieces: list[tuple[np.ndarray, np.ndarray]], style,
                  before: float = np.nan) -> tuple[np.ndarray, np.ndarray] | None:
    """One seed: its curve; several: the mean over seeds with a min-max band. Drawn as steps
    (a value holds until the next one); returns what was drawn as the line."""
    if len(pieces) == 1:
        t, v = pieces[0]
        ax.plot(t, v, drawstyle="steps-post", label=label, **style.kw(_drawable(v)))
        return np.asarray(t, float), np.asarray(v, float)
    band = seed_band(pieces, before)
    if band is None:
        return None
    ax.fill_between(band.t, band.low, band.high, step="post", color=style.color, alpha=0.18,
                    linewidth=0, zorder=style.zorder - 0.5)
    ax.plot(band.t, band.mean, drawstyle="steps-post",
            label=f"{label} (mean of {band.seeds} seeds)", **style.kw(_drawable(band.mean)))
    return band.t, band.mean


def _drawable(values: np.ndarray) -> bool:
    """Whether a curve has a finite point to put markers on (matplotlib's spaced markers fail
    on a curve of NaN: a run whose scores are all undefined)."""
    return bool(np.isfinite(np.asarray(values, float)).any())


def _note_coinciding(ax, drawn: dict[str, tuple[np.ndarray, np.ndarray]],
                     what: str = "identical curves, drawn on top of each other") -> str:
    """Name the curves that lie exactly on top of each other, in the axes and for the caption."""
    note = coincide_note(coinciding(drawn), what)
    if note:
        ax.text(0.99, 0.02, note, transform=ax.transAxes, fontsize=6.5, color="#333",
                va="bottom", ha="right", wrap=True, zorder=20,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#bbb", "alpha": 0.85})
    return note


def _band_caption(groups: dict[str, list[RunRef]]) -> str:
    seeds = max(len(v) for v in groups.values())
    if seeds < 2:
        return "One line per policy / aggregation (one seed)."
    return (f"Lines: mean over the seeds (up to {seeds}) of each policy / aggregation; shaded "
            f"band: {BAND} (each seed's value held from one sample to the next).")


@figure
def metric_vs_time(src: ReportSource) -> Figure:
    """Headline metric per task against simulated time; one style per policy / aggregation."""
    groups = _by_label(src.runs)
    curves = {label: [headline_curves(run.path) for run in runs] for label, runs in groups.items()}
    if not any(c for parts in curves.values() for c in parts):
        raise Skip("no evaluation in these runs (no metrics rows: learning not configured, or no "
                   "round was evaluated)")
    styles = series_styles(list(curves))
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    notes = []
    for ax, (task, metric) in zip(axes.flat, HEADLINE.items(), strict=True):
        drawn = {}
        for label, parts in curves.items():
            pieces = [(c[task][1] / 60, c[task][2]) for c in parts if task in c]
            if pieces:
                line = _band_or_line(ax, label, pieces, styles[label])
                if line is not None:
                    drawn[label] = line
        notes.append(_note_coinciding(ax, drawn))
        lookup = [v for v in (_lookup(run.path, task, metric) for run in src.runs) if v is not None]
        if lookup:  # the model-free baseline on the same held-out frames (equal across runs)
            ax.axhline(float(np.mean(lookup)), color="0.4", ls=(0, (1, 1)), lw=1, zorder=1,
                       label="model-free lookup baseline")
        ax.set_title(f"{task}: {metric}")
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("simulated time (min)")
    handles: dict[Any, Artist] = {}  # by label (matplotlib types a label as object)
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if any(len(runs) > 1 for runs in groups.values()):
        handles[band_handle(BAND).get_label()] = band_handle(BAND)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="lower center",
                   ncol=min(3, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * ((len(handles) + 2) // 3), 1, 1))
    note = "; ".join(dict.fromkeys(n for n in notes if n))
    return set_caption(fig, _band_caption(groups) + (f" Coinciding: {note}." if note else "")
                       + _support_caption(src))


def _support_caption(src: ReportSource) -> str:
    """What the curves rest on: held-out frames and objects (the smallest over the runs' sets)."""
    supports = [s for s in (((read_run_json(run.path).get("summary") or {}).get("learning") or {})
                            .get("heldout_support") for run in src.runs) if s]
    if not supports:
        return ""
    parts = []
    for task in HEADLINE:
        entries = [s[task] for s in supports if task in s]
        if not entries:
            continue
        least = min(entries, key=lambda e: e["smallest_count"] if "minimum_per_class" in e
                    else e["total"])
        frames = min(e.get("frames", 0) for e in entries)
        if "minimum_per_class" in least:
            what = f"{least['smallest_count']} {least['unit'].split(' ')[0]} in its smallest class"
            what += f" ({least['smallest_class']})"
        else:
            what = f"{least['total']:,} {least['unit']}"
        parts.append(f"{task} {what}" + (f", {frames} frames" if frames else ""))
    return " Held-out support: " + "; ".join(parts) + "."


def _lookup(run_dir, task: str, metric: str) -> float | None:
    """The run's model-free lookup baseline for a task (run.json), if it has one."""
    info = read_run_json(run_dir)
    value = (((info.get("summary") or {}).get("learning") or {}).get("lookup_baseline") or {}) \
        .get(task, {}).get(metric)
    return None if value is None or value != value else float(value)


def _participation(src: ReportSource) -> dict[str, tuple[RunRef, pd.DataFrame]]:
    """The first seed's participation table of each policy / aggregation (non-empty only)."""
    out = {}
    for label, runs in _by_label(src.runs).items():
        p = table(runs[0], PARTICIPATION)
        if p is not None and len(p):
            out[label] = (runs[0], p)
    return out


@figure
def participation_per_round(src: ReportSource) -> Figure:
    """Outcomes of the selected clients per round (first seed of each policy / aggregation)."""
    frames = _participation(src)
    if not frames:
        raise Skip(NO_CLIENT)
    fig, axes = plt.subplots(len(frames), 1, figsize=(10, 2.4 * len(frames) + 0.6), squeeze=False)
    for ax, (label, (run, p)) in zip(axes[:, 0], frames.items(), strict=True):
        counts = pd.crosstab(p["round"], outcome_of(p))
        bottom = np.zeros(len(counts))
        for name in (COMPLETED, *DROP_REASONS, "failed"):
            if name in counts:
                ax.bar(counts.index, counts[name], bottom=bottom, width=0.9, label=name,
                       color=OUTCOME_COLOURS[name])
                bottom += counts[name].to_numpy()
        ax.set_title(f"{label} (seed {run.seed})", fontsize=10)
        ax.set_ylabel("clients")
        integer_ticks(ax.xaxis, ax.yaxis)
        ax.grid(alpha=0.3, axis="y")
    axes[-1, 0].set_xlabel("round (async: model version)")
    handles = {h.get_label(): h for ax in axes[:, 0] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), loc="upper right", fontsize=8)
    fig.tight_layout()
    return set_caption(fig, "Selected clients per round, stacked by outcome (first seed of each "
                            "policy / aggregation).")


@figure
def link_window_durations(src: ReportSource) -> Figure:
    """CDFs of how long a vehicle stays connected (any cell) and stays on one cell; windows still
    open at the end of the run (censored) are marked, not dropped."""
    read = [(run, table(run, LINK_WINDOWS)) for run in src.connectivity]
    if all(w is None for _, w in read):
        raise Skip("no link_windows table (radio not configured)")
    frames = [(r, w) for r, w in read if w is not None and len(w)]
    if not frames:
        raise Skip("the link_windows table is empty: no vehicle was ever connected")
    styles = series_styles([r.label for r, _ in frames])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    notes = []
    for ax, (title, connected) in zip(axes, (("connected to any cell", True),
                                              ("on one serving cell (dwell)", False)), strict=True):
        drawn = {}
        for run, w in frames:
            rows = w[(w.cell == -1) == connected]
            line = censored_ecdf(ax, rows.duration_s.to_numpy(float), rows.censored.to_numpy(bool),
                                 styles[run.label], run.label)
            if line is not None:
                drawn[run.label] = line
        if not drawn:
            ax.text(0.5, 0.5, "no window longer than 0 s", transform=ax.transAxes, ha="center",
                    color="#666")
        notes.append(_note_coinciding(ax, drawn))
        ax.set_xscale("log")
        log_seconds(ax.xaxis)
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("window duration (s, log scale)")
        ax.legend(fontsize=6.5, loc="upper left")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("CDF (share of windows)")
    fig.tight_layout()
    note = "; ".join(n for n in notes if n)
    return set_caption(fig, "Empirical CDFs, one line style per recording. Thick: every window, "
                            "one still open at the end of the run (right-censored) counted at its "
                            "duration so far, a lower bound, and marked with an open marker; thin "
                            "dotted: the windows that ended."
                       + (f" Coinciding: {note}." if note else ""))


@figure
def handoff_map(src: ReportSource) -> Figure:
    """Where handoffs happen, over the SUMO street network, with the cells."""
    run = src.connectivity[0]
    handoffs, mobility, cells = (table(run, n) for n in (HANDOFFS, MOBILITY, CELLS))
    if handoffs is None or mobility is None or cells is None:
        raise Skip("no handoffs, mobility or cells table (radio not configured)")
    moves = handoffs[handoffs.kind == "handoff"] if "kind" in handoffs else handoffs
    located = _locate(moves, mobility)
    if not len(located):
        raise Skip("no handoff in the recording" + (f" of {run.label}" if src.kind == "compare"
                                                     else ""))
    fig, ax = plt.subplots(figsize=(8, 8))
    net = (run.info.get("inputs") or {}).get("net")
    drawn = _draw_network(ax, Path(net)) if net else False
    ping = located.ping_pong.to_numpy(bool) if "ping_pong" in located else np.zeros(len(located), bool)
    ax.scatter(located.x[~ping], located.y[~ping], s=6, c="#e76f51", alpha=0.5, marker="o",
               label=f"handoff ({(~ping).sum()})")
    ax.scatter(located.x[ping], located.y[ping], s=10, c="#6a4c93", alpha=0.7, marker="x",
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
    return set_caption(fig, "Each handoff at its vehicle's last recorded position"
                       + (f"; the recording of {run.label} only." if src.kind == "compare" else "."))


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


def is_async(run: RunRef) -> bool:
    """Whether the run's aggregation can aggregate stale updates (FedAsync, FedBuff)."""
    method = ((run.info.get("scenario") or {}).get("aggregation") or {}).get("method", "sync")
    return method in ASYNC_METHODS


@figure
def staleness_histogram(src: ReportSource) -> Figure:
    """Staleness of the updates that were aggregated, for asynchronous runs only (a synchronous
    round aggregates only updates of the current model: staleness 0 by construction)."""
    merged: dict[str, list[np.ndarray]] = {}
    seen_any = False
    for run in src.runs:
        p = table(run, PARTICIPATION)
        if p is None or not len(p):
            continue
        seen_any = True
        done = p[p.outcome == COMPLETED].staleness.to_numpy()
        if is_async(run) or (done > 0).any():
            merged.setdefault(run.label, []).append(done)
    if not seen_any:
        raise Skip(NO_CLIENT)
    if not merged:
        raise Skip("every run aggregates synchronously: an aggregated update's staleness is 0 by "
                   "construction")
    pooled = {label: np.concatenate(parts) for label, parts in merged.items()}
    if not any(len(s) for s in pooled.values()):
        raise Skip("no update of an asynchronous run was aggregated")
    top = max(int(max((s.max(initial=0) for s in pooled.values()), default=0)), 1)
    values = np.arange(0, top + 1)
    styles = series_styles(list(pooled))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    drawn = {}
    width = 0.8 / len(pooled)
    for i, (label, s) in enumerate(pooled.items()):
        counts = np.bincount(s.astype(int), minlength=top + 1)[: top + 1]
        seeds = len(merged[label])
        style = styles[label]
        ax.bar(values - 0.4 + width * (i + 0.5), counts, width=width, color=style.color,
               alpha=0.85, edgecolor="black", linewidth=0.5, hatch=HATCHES[i % len(HATCHES)],
               label=f"{label}: mean {s.mean():.2f} (n={len(s)}"
                     + (f", {seeds} seeds pooled)" if seeds > 1 else ")"))
        drawn[label] = (values.astype(float), counts.astype(float))
    note = _note_coinciding(ax, drawn, "identical counts")
    integer_ticks(ax.xaxis, ax.yaxis)
    ax.set_xlim(-0.5, top + 0.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("staleness (model versions)")
    ax.set_ylabel("aggregated updates")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    skipped = sorted({r.label for r in src.runs} - set(pooled))
    return set_caption(fig, "Aggregated updates by staleness (asynchronous runs; seeds pooled)."
                       + (f" Not drawn (synchronous): {', '.join(skipped)}." if skipped else "")
                       + (f" Coinciding: {note}." if note else ""))


@figure
def bytes_over_the_air(src: ReportSource) -> Figure:
    """Cumulative model bytes downloaded and uploaded against simulated time."""
    read = {label: [(run, table(run, PARTICIPATION)) for run in runs]
            for label, runs in _by_label(src.runs).items()}
    present = {label: [(r, p) for r, p in parts if p is not None and len(p)]
               for label, parts in read.items()}
    groups = {label: parts for label, parts in present.items() if parts}
    if not groups:
        raise Skip("nothing was sent: " + NO_CLIENT)
    styles = series_styles(list(groups))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (direction, column, t_col) in zip(axes, (("down", "bytes_down", "t_download_end"),
                                                      ("up", "bytes_up", "t_upload_end")), strict=True):
        drawn = {}
        for label, parts in groups.items():
            pieces = []
            for _, p in parts:
                moved = p[p[column] > 0].copy()
                # a failed transfer still used the air until it failed: count it at its selection
                moved["when"] = moved[t_col].fillna(moved.selected_at)
                moved = moved.sort_values("when", kind="stable")
                pieces.append((np.r_[0.0, moved.when.to_numpy(float) / 60],
                               np.r_[0.0, moved[column].cumsum().to_numpy(float) / 1e6]))
            line = _band_or_line(ax, label, pieces, styles[label], before=0.0)
            if line is not None:
                drawn[label] = line
        _note_coinciding(ax, drawn)
        ax.set_title(f"bytes {direction}", fontsize=10)
        ax.set_xlabel("simulated time (min)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MB (cumulative)")
    handles, labels = axes[1].get_legend_handles_labels()
    if any(len(parts) > 1 for parts in groups.values()):
        handles.append(band_handle(BAND))
        labels.append(handles[-1].get_label())
    axes[1].legend(handles, labels, fontsize=8)
    fig.tight_layout()
    return set_caption(fig, _band_caption({k: [r for r, _ in v] for k, v in groups.items()}))


FIGURES = {
    "metric_vs_time": ("Metric vs simulated time", metric_vs_time),
    PARTICIPATION: ("Participation and drop reasons per round", participation_per_round),
    "gantt": ("Client rounds: download, training, upload", client_gantt),
    LINK_WINDOWS: ("Link-window durations (CDF)", link_window_durations),
    "handoff_map": ("Handoff locations over the street network", handoff_map),
    "staleness": ("Staleness of aggregated updates", staleness_histogram),
    "bytes": ("Bytes over the air", bytes_over_the_air),
}
