"""The clients' rounds as a Gantt chart: one row per client that took part, its download, local
training and upload as bars on the simulated clock, coloured by how the attempt ended.

The participation table records when each phase ended, not when a failed one stopped, so the phase
an attempt failed in is drawn hatched up to its deadline (the latest it can have stopped), with a
cross where it began.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from cosim.analysis.figure_style import OUTCOME_COLOURS, set_caption
from cosim.analysis.runs import ReportSource, RunRef, table
from cosim.analysis.skip import Skip, figure
from cosim.names import COMPLETED, DROP_REASONS
from cosim.trace_schemas import PARTICIPATION

PHASES = (("download", "selected_at", "t_download_end", 1.0),
          ("train", "t_download_end", "t_compute_end", 0.55),
          ("upload", "t_compute_end", "t_upload_end", 1.0))
PHASE_HATCH = {"download": "", "train": "", "upload": "///"}
ROW = 0.8  # bar height of a whole row; training is thinner, so phases read apart in greyscale


def outcome_of(p: pd.DataFrame) -> pd.Series:
    """``completed`` or the drop reason (``failed`` when none was recorded)."""
    return p.reason.where(p.outcome != COMPLETED, COMPLETED).fillna("failed")


def _end_of_run(run: RunRef) -> float:
    sc = run.info.get("scenario") or {}
    return float(run.info.get("sim_time_s") or sc.get("duration_s") or np.inf)


def _deadline(run: RunRef) -> float | None:
    return ((run.info.get("scenario") or {}).get("aggregation") or {}).get("round_deadline_s")


def _bars(p: pd.DataFrame, deadline_s: float | None, end: float) -> pd.DataFrame:
    """One row per drawn phase: client, phase, start, end, outcome, failed (the phase it failed in)."""
    rows = []
    outcome = outcome_of(p)
    for (_, a), why in zip(p.iterrows(), outcome, strict=True):
        limit = min(a.selected_at + deadline_s, end) if deadline_s else end
        for phase, start_col, end_col, _ in PHASES:
            start, stop = a[start_col], a[end_col]
            if pd.isna(start):
                break
            failed = pd.isna(stop)
            rows.append((int(a.client), phase, float(start),
                         float(max(limit, start) if failed else stop), why, failed))
            if failed:
                break
    return pd.DataFrame(rows, columns=["client", "phase", "start", "end", "outcome", "failed"])


def _draw(ax, bars: pd.DataFrame, clients: list[int], scale: float) -> None:
    """The bars of one run; ``scale``: seconds per unit of the time axis."""
    row = {c: i for i, c in enumerate(clients)}
    heights = {name: ROW * h for name, _, _, h in PHASES}
    for (phase, failed), b in bars.groupby(["phase", "failed"], sort=False):
        y = b.client.map(row).to_numpy(float)
        colours = [OUTCOME_COLOURS.get(o, "#333333") for o in b.outcome]
        ax.barh(y, (b.end - b.start).to_numpy(float) / scale, left=b.start.to_numpy(float) / scale,
                height=heights[phase], color=colours, alpha=0.45 if failed else 1.0,
                hatch="////" if failed else PHASE_HATCH[phase], edgecolor="black", linewidth=0.4)
        if failed:
            ax.plot(b.start / scale, y, linestyle="none", marker="x", color="black", markersize=5,
                    zorder=4)
    ax.set_yticks(range(len(clients)), [f"client {c}" for c in clients])
    ax.set_ylim(len(clients) - 0.5, -0.5)
    ax.grid(alpha=0.3, axis="x")


@figure
def client_gantt(src: ReportSource) -> Figure:
    """Per client: download / train / upload of every attempt (first seed of each policy)."""
    firsts: dict[str, RunRef] = {}
    for run in src.runs:
        firsts.setdefault(run.label, run)
    read = {label: table(run, PARTICIPATION) for label, run in firsts.items()}
    frames = {k: v for k, v in read.items() if v is not None and len(v)}
    if not frames:
        raise Skip("no client took part in any round (no participation rows: learning not "
                   "configured, or no client was ever selected)")
    panels = []
    for label, p in frames.items():
        run = firsts[label]
        bars = _bars(p.sort_values(["selected_at", "client"], kind="stable"), _deadline(run),
                     _end_of_run(run))
        panels.append((label, run, bars, sorted(p.client.astype(int).unique())))
    end = max(_end_of_run(run) for _, run, _, _ in panels)
    end = end if np.isfinite(end) else max(float(b.end.max()) for _, _, b, _ in panels)
    scale, unit = (1.0, "s") if end <= 600 else (60.0, "min")  # a short run reads in seconds
    heights = [0.35 * len(c) + 0.9 for *_, c in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, sum(heights) + 1.2), squeeze=False,
                             sharex=True, height_ratios=heights)
    for ax, (label, run, bars, clients) in zip(axes[:, 0], panels, strict=True):
        _draw(ax, bars, clients, scale)
        ax.set_title(f"{label} (seed {run.seed})", fontsize=10)
    axes[-1, 0].set_xlim(0, end / scale)
    axes[-1, 0].set_xlabel(f"simulated time ({unit})")
    every = pd.concat([b for _, _, b, _ in panels])
    handles = [Patch(facecolor=OUTCOME_COLOURS[o], edgecolor="black", linewidth=0.4, label=o)
               for o in (COMPLETED, *DROP_REASONS, "failed") if o in set(every.outcome)]
    handles += [Patch(facecolor="white", edgecolor="black", label="download (full height)"),
                Patch(facecolor="white", edgecolor="black", label="train (thin)"),
                Patch(facecolor="white", edgecolor="black", hatch=PHASE_HATCH["upload"],
                      label="upload")]
    if every.failed.any():
        handles.append(Patch(facecolor="#cccccc", edgecolor="black", hatch="////",
                             label="phase it failed in (to its deadline)"))
    rows = -(-len(handles) // 5)
    fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.3 * rows / fig.get_figheight(), 1, 1))
    return set_caption(fig, "One row per client that was selected at least once; bars: download, "
                            "local training (thin), upload, coloured by the attempt's outcome. A "
                            "failed phase's end is not recorded: it is drawn hatched up to the "
                            "round deadline, with a cross where it began.")
