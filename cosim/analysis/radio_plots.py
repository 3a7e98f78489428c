"""The radio statistics radio researchers compare a model with: SINR CDF, time of stay on a cell,
per-cell load, serving-cell map, handoff rate over time, and the table of `summary.radio` from
run.json. Each figure function returns a matplotlib Figure, or None when the runs lack its data.

Connectivity comes from `ReportSource.connectivity`: the run itself, or a compare folder's
per-seed recordings (one line per seed in the CDFs; maps and load show the first seed)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from cosim.analysis.ecdf import ecdf as _ecdf
from cosim.analysis.figure_style import integer_ticks, series_styles, set_caption
from cosim.analysis.plots import _draw_network
from cosim.analysis.runs import ReportSource, RunRef, table
from cosim.analysis.skip import Skip, figure
from cosim.trace_schemas import CELLS, HANDOFFS, LINK_WINDOWS, MOBILITY, RADIO

NOT_CONNECTED = "#000000"
HEATMAP_FROM_CELLS = 30  # this many cells or more: per-cell load as a heatmap, not stacked areas
TOP_CELLS = 40  # more cells: the heatmap shows the busiest this many, beside every cell's load
LABEL_MAX_CELLS = 40  # more cells: the map marks sites without names or boresights (unreadable)
MAP_POINTS = 60_000  # at most this many samples on the maps (a fixed subsample: same pixels)
NO_RADIO = "radio not configured"


# ---------------------------------------------------------------------------------------- helpers

def _tables(src: ReportSource, name: str) -> list[tuple[RunRef, pd.DataFrame]]:
    """The connectivity runs' non-empty tables; Skip (saying which) when there are none."""
    frames = [(run, table(run, name)) for run in src.connectivity]
    if all(t is None for _, t in frames):
        raise Skip(f"no {name} table ({NO_RADIO})")
    frames = [(r, t) for r, t in frames if t is not None and len(t)]
    if not frames:
        raise Skip(f"the {name} table is empty")
    return frames


def _seed_note(src: ReportSource) -> str:
    """Maps and load show the first seed's recording only: say so when there are more."""
    return f" (first of {len(src.connectivity)} seeds)" if len(src.connectivity) > 1 else ""


def _cell_palette(n: int) -> list[tuple]:
    """n categorical colours, none black or grey (black: not connected; grey: the streets)."""
    names = ("tab10",) if n <= 10 else ("tab20", "tab20b", "tab20c")
    # the tab palettes are ListedColormaps (their .colors); get_cmap's stub says Colormap
    colours = [c for name in names for c in plt.get_cmap(name).colors  # type: ignore[attr-defined]
               if not np.allclose(c[0], c[1:3], atol=0.02)]
    return [to_rgba(colours[i % len(colours)]) for i in range(n)]


def _cell_names(cells: pd.DataFrame) -> dict[int, str]:
    ids = cells["id"] if "id" in cells else cells["cell"].astype(str)
    return dict(zip(cells["cell"].astype(int), ids.astype(str), strict=True))


def _azimuths(cells: pd.DataFrame) -> np.ndarray:
    """Boresight per cell in compass degrees; NaN for omnidirectional (or no azimuth column)."""
    if "azimuth_deg" not in cells:
        return np.full(len(cells), np.nan)
    return pd.to_numeric(cells["azimuth_deg"], errors="coerce").to_numpy(float)


def _time_key(t: pd.Series) -> np.ndarray:
    return np.round(t.to_numpy(float) * 1000).astype(np.int64)  # ms: exact for traces at 1 ms+


def _positions(radio: pd.DataFrame, mobility: pd.DataFrame) -> pd.DataFrame:
    """Radio samples with the vehicle's position at the same instant (exact (t, vehicle) join;
    samples without a mobility row are left out)."""
    r = radio[["t", "vehicle", "serving_cell", "sinr_db"]].assign(key=_time_key(radio.t))
    m = mobility[["t", "vehicle", "x", "y"]].assign(key=_time_key(mobility.t)).drop(columns="t")
    joined = r.merge(m, on=["key", "vehicle"], how="inner", validate="many_to_one")
    return joined.dropna(subset=["x", "y"])


# ---------------------------------------------------------------------------------------- figures

@figure
def sinr_cdf(src: ReportSource) -> Figure:
    """Empirical CDF of the serving cell's SINR (not-connected samples left out), per run / seed."""
    lines = []
    for run, r in _tables(src, RADIO):
        s = r.sinr_db.to_numpy(float)
        s = s[(r.serving_cell.to_numpy() >= 0) & np.isfinite(s)]
        if len(s):
            lines.append((run, s))
    if not lines:
        raise Skip("no vehicle was ever connected (every radio sample has serving cell -1)")
    styles = series_styles([r.label for r, _ in lines])
    fig, ax = plt.subplots(figsize=(8, 4))
    for run, s in lines:
        x, p = _ecdf(s)
        median = float(np.median(s))
        ax.step(x, p, where="post", label=f"{run.label}: median {median:.1f} dB (n={len(s):,})",
                **styles[run.label].kw())
        ax.plot([median], [0.5], "o", color=styles[run.label].color, markersize=5)
    ax.axhline(0.5, color="#888", linewidth=0.6, linestyle=":")
    ax.set_ylim(0, 1)
    ax.set_xlabel("serving-cell SINR (dB)")
    ax.set_ylabel("CDF (share of connected samples)")
    ax.set_title("SINR of the serving cell", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return set_caption(fig, "Empirical CDF of the serving cell's SINR over the connected radio "
                            "samples, one line per recording (seed); dots: medians.")


@figure
def time_of_stay(src: ReportSource) -> Figure:
    """CDFs (log x) of the time of stay on one serving cell and of the connected windows;
    windows open at the end of the run (censored) are left out and counted in the legend."""
    frames = _tables(src, LINK_WINDOWS)
    styles = series_styles([r.label for r, _ in frames])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    panels = (("time of stay on one serving cell", True),
              ("connected window (any cell, across handoffs)", False))
    for ax, (title, on_cell) in zip(axes, panels, strict=True):
        ended = 0
        for run, w in frames:
            rows = w[(w.cell >= 0) if on_cell else (w.cell == -1)]
            censored = rows.censored.to_numpy(bool)
            d = rows.duration_s.to_numpy(float)[~censored]
            d = d[d > 0]
            note = f"{censored.sum()} censored left out"
            if not len(d):
                ax.plot([], [], label=f"{run.label}: none ended ({note})", **styles[run.label].kw())
                continue
            ended += len(d)
            x, p = _ecdf(d)
            x, p = np.r_[x[0], x], np.r_[0.0, p]  # start the step at 0
            ax.step(x, p, where="post", label=f"{run.label}: median {np.median(d):.1f} s\n"
                    f"(n={len(d):,}; {note})", **styles[run.label].kw())
        if not ended:
            ax.text(0.5, 0.5, "no window ended before the end of the run", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9, color="#666")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("duration (s, log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best")
    axes[0].set_ylabel("CDF (share of ended windows)")
    fig.tight_layout()
    return set_caption(fig, "Empirical CDFs of the windows that ended before the end of the run; "
                            "the censored ones (still open) are counted in the legend, and drawn "
                            "in the link-window figure.")


@figure
def cell_load(src: ReportSource) -> Figure:
    """Vehicles each cell serves against simulated time; a cell x time heatmap with 30+ cells."""
    run, r = _tables(src, RADIO)[0]
    cells = table(run, CELLS)
    names = _cell_names(cells) if cells is not None else {}
    index = sorted(set(names) | set(int(c) for c in r.serving_cell.unique() if c >= 0))
    counts = pd.crosstab(r.t, r.serving_cell).reindex(columns=[*index, -1], fill_value=0)
    minutes = counts.index.to_numpy(float) / 60
    labels = [names.get(c, str(c)) for c in index]
    title = f"vehicles served per cell, {run.label}" + _seed_note(src)
    note = ""
    if len(index) >= HEATMAP_FROM_CELLS:
        shown = index
        if len(index) > TOP_CELLS:
            total = counts[index].sum(axis=0)
            shown = list(total.sort_values(ascending=False, kind="stable").index[:TOP_CELLS])
            fig, (ax, dist) = plt.subplots(1, 2, figsize=(12, 0.14 * TOP_CELLS + 1.5),
                                           width_ratios=(4, 1))
            _load_distribution(dist, counts[index].mean(axis=0).to_numpy())
            note = (f" The heatmap shows the {TOP_CELLS} busiest of {len(index)} cells; the "
                    "histogram, every cell's mean load.")
        else:
            fig, ax = plt.subplots(figsize=(10, max(4.0, 0.14 * len(index) + 1.5)))
        labels = [names.get(c, str(c)) for c in shown]
        index = shown
        load = counts[index].to_numpy().T
        step = np.median(np.diff(minutes)) if len(minutes) > 1 else 1 / 60
        edges = np.r_[minutes - step / 2, minutes[-1] + step / 2]
        mesh = ax.pcolormesh(edges, np.arange(len(index) + 1) - 0.5, load, cmap="viridis",
                             shading="flat", rasterized=True)
        every = max(1, math.ceil(len(index) / 45))
        ax.set_yticks(np.arange(0, len(index), every))
        ax.set_yticklabels(labels[::every], fontsize=7 if len(index) <= 40 else 6)
        ax.invert_yaxis()
        bar = fig.colorbar(mesh, ax=ax, pad=0.01)
        bar.set_label("vehicles served")
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
        ax.set_ylabel("cell")
    else:
        fig, ax = plt.subplots(figsize=(10, 4.2))
        palette = _cell_palette(len(index))
        series = [counts[c].to_numpy() for c in index]
        ax.stackplot(minutes, *series, colors=palette, labels=labels, linewidth=0, step="post")
        if counts[-1].any():
            connected = counts[index].sum(axis=1).to_numpy()
            ax.fill_between(minutes, connected, connected + counts[-1].to_numpy(), step="post",
                            facecolor="white", edgecolor="black", hatch="////", linewidth=0,
                            label="not connected")
        ax.set_ylabel("vehicles")
        ax.set_ylim(bottom=0)
        integer_ticks(ax.yaxis)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="cell",
                  title_fontsize=8, ncol=1 if len(index) <= 16 else 2, frameon=False)
        ax.grid(alpha=0.3, axis="y")
    if len(minutes) > 1:
        ax.set_xlim(minutes[0], minutes[-1])
    ax.set_xlabel("simulated time (min)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return set_caption(fig, "Vehicles attached to each cell at each radio trace sample (stacked; "
                            "hatched on top: vehicles in the network but not connected)." + note)


def _load_distribution(ax, mean_load: np.ndarray) -> None:
    """Every cell's time-mean load, as a histogram (how the load spreads over many cells)."""
    ax.hist(mean_load, bins=min(30, max(5, len(mean_load) // 8)), color="0.45", edgecolor="white")
    ax.set_xlabel("mean vehicles served")
    ax.set_ylabel("cells")
    integer_ticks(ax.yaxis)
    ax.set_title(f"all {len(mean_load)} cells", fontsize=9)
    ax.grid(alpha=0.3, axis="y")


@figure
def coverage_map(src: ReportSource) -> Figure:
    """Vehicle positions coloured by serving cell (black: not connected), and their SINR, over the
    SUMO street network, with the cells (sectors: a short line along the boresight)."""
    run = src.connectivity[0]
    radio, mobility, cells = (table(run, n) for n in (RADIO, MOBILITY, CELLS))
    if radio is None or mobility is None or cells is None:
        raise Skip(f"no radio, mobility or cells table ({NO_RADIO})")
    pos = _positions(radio, mobility)
    if not len(pos):
        raise Skip("no radio sample has a recorded position (empty radio or mobility table)")
    if len(pos) > MAP_POINTS:
        pos = pos.sample(MAP_POINTS, random_state=0)
    pos = pos.sort_values(["key", "vehicle"], kind="stable")
    names = _cell_names(cells)
    order = sorted(set(names) | set(int(c) for c in pos.serving_cell.unique() if c >= 0))
    palette = dict(zip(order, _cell_palette(len(order)), strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.4), sharex=True, sharey=True, layout="constrained")
    net = (run.info.get("inputs") or {}).get("net")
    drawn = _draw_network(axes, Path(net)) if net else False
    serving = pos.serving_cell.to_numpy(int)
    off = serving < 0
    colour = np.array([palette[c] if c >= 0 else to_rgba(NOT_CONNECTED) for c in serving])
    ax = axes[0]
    ax.scatter(pos.x[~off], pos.y[~off], s=4, c=colour[~off], linewidths=0, alpha=0.6, rasterized=True)
    ax.scatter(pos.x[off], pos.y[off], s=5, c=NOT_CONNECTED, linewidths=0, rasterized=True)
    ax.set_title("serving cell", fontsize=10)
    sinr = pos.sinr_db.to_numpy(float)
    ok = ~off & np.isfinite(sinr)
    ax2 = axes[1]
    # the colours span the 1st-99th percentile, so a few extreme samples do not wash out the rest
    low, high = np.percentile(sinr[ok], (1, 99)) if ok.any() else (0.0, 1.0)
    points = ax2.scatter(pos.x[ok], pos.y[ok], s=4, c=sinr[ok], cmap="viridis", vmin=low, vmax=high,
                         linewidths=0, rasterized=True)
    ax2.scatter(pos.x[~ok], pos.y[~ok], s=5, c=NOT_CONNECTED, linewidths=0, rasterized=True)
    bar = fig.colorbar(points, ax=list(axes), shrink=0.75, pad=0.01, extend="both")
    bar.set_label("serving-cell SINR (dB, right panel)")
    ax2.set_title("SINR", fontsize=10)
    few = len(cells) <= LABEL_MAX_CELLS
    for a in axes:
        _draw_cells(a, cells, palette, label=few and a is axes[0], boresights=few)
        a.set_aspect("equal")
        a.set_xlabel("x (m)")
        a.grid(alpha=0.2)
    axes[0].set_ylabel("y (m)")
    handles = [Line2D([], [], marker="o", linestyle="", color=NOT_CONNECTED, markersize=5,
                      label=f"not connected ({off.sum():,} samples)")]
    for kind, marker in (("macro", "^"), ("small", "s"), ("rsu", "D")):
        if (cells.kind == kind).any() if "kind" in cells else False:
            handles.append(Line2D([], [], marker=marker, linestyle="", markerfacecolor="white",
                                  markeredgecolor="black", markersize=7, label=f"{kind} cell"))
    if few and np.isfinite(_azimuths(cells)).any():
        handles.append(Line2D([], [], color="black", linewidth=2, label="sector boresight"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle(f"serving cell and SINR at the vehicles' positions, {run.label}"
                 + _seed_note(src) + ("" if drawn else " (street network file not found)"),
                 fontsize=10)
    return set_caption(fig, "Radio samples at the vehicles' positions, coloured by serving cell "
                            "(left) and by its SINR (right; colours span the 1st-99th percentile); "
                            "black: not connected; markers: the cell sites."
                            + ("" if few else f" {len(cells)} cells: sites without names or "
                               "boresights."))


def _draw_cells(ax, cells: pd.DataFrame, palette: dict[int, tuple], label: bool,
                boresights: bool = True) -> None:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = 0.05 * max(x1 - x0, y1 - y0, 1.0)
    markers = {"macro": ("^", 110), "small": ("s", 60), "rsu": ("D", 55)}
    names = _cell_names(cells)
    for (_, c), az in zip(cells.iterrows(), _azimuths(cells), strict=True):
        idx = int(c["cell"])
        marker, size = markers.get(c.get("kind", ""), ("o", 60))
        ax.scatter([c.x], [c.y], marker=marker, s=size, color=palette.get(idx, "white"),
                   edgecolors="black", linewidths=0.8, zorder=6)
        tip = (c.x, c.y)
        if boresights and np.isfinite(az):
            tip = (c.x + length * math.sin(math.radians(az)), c.y + length * math.cos(math.radians(az)))
            ax.plot([c.x, tip[0]], [c.y, tip[1]], color="black", linewidth=3.2, zorder=5,
                    solid_capstyle="round")
            ax.plot([c.x, tip[0]], [c.y, tip[1]], color=palette.get(idx, "white"), linewidth=1.8,
                    zorder=5, solid_capstyle="round")
        if label:
            ax.annotate(names.get(idx, str(idx)), tip, xytext=(4, 4), textcoords="offset points",
                        fontsize=7, zorder=7,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})


@figure
def handoff_rate(src: ReportSource) -> Figure:
    """Handoffs per minute against simulated time, ping-pongs (back within 1 s) apart."""
    frames = [(run, h[h.kind == "handoff"]) for run, h in _tables(src, HANDOFFS)]
    if not any(len(h) for _, h in frames):
        raise Skip("no handoff in the recording" + ("s" if len(frames) > 1 else ""))
    end = max(float(run.info.get("sim_time_s") or run.info["scenario"]["duration_s"]) for run, _ in frames)
    end = max(end, *(float(h.t.max()) for _, h in frames if len(h)))
    width = _bin_minutes(end / 60)
    edges = np.arange(0, end / 60 + width - 1e-9, width, dtype=float)
    edges = edges if edges[-1] >= end / 60 - 1e-9 else np.r_[edges, edges[-1] + width]
    widths = np.diff(edges)
    styles = series_styles([r.label for r, _ in frames])
    fig, ax = plt.subplots(figsize=(10, 3.8))
    for run, h in frames:
        ping = h.ping_pong.to_numpy(bool) if "ping_pong" in h else np.zeros(len(h), bool)
        t = h.t.to_numpy(float) / 60
        other = np.histogram(t[~ping], edges)[0] / widths
        pp = np.histogram(t[ping], edges)[0] / widths
        if len(frames) == 1:
            ax.bar(edges[:-1], other, width=widths, align="edge", color="#e76f51",
                   edgecolor="white", linewidth=0.3, label=f"handoff, not ping-pong ({(~ping).sum():,})")
            ax.bar(edges[:-1], pp, width=widths, bottom=other, align="edge", color="#6a4c93",
                   edgecolor="white", linewidth=0.3, label=f"ping-pong ({ping.sum():,})")
        else:
            style = styles[run.label]
            ax.stairs(other + pp, edges, color=style.color, linewidth=1.5,
                      linestyle=style.linestyle, zorder=style.zorder,
                      label=f"{run.label}: all handoffs ({len(h):,})")
            centres = (edges[:-1] + edges[1:]) / 2  # markers tell overlapping seeds apart
            ax.plot(centres, other + pp, linestyle="none", marker=style.marker, markersize=4,
                    markerfacecolor="none", color=style.color, zorder=style.zorder)
            ax.stairs(pp, edges, color=style.color, linewidth=1.0, linestyle=":",
                      alpha=0.8, zorder=style.zorder, label=f"{run.label}: ping-pongs ({ping.sum():,})")
    ax.set_xlim(0, edges[-1])
    ax.set_ylim(bottom=0)
    integer_ticks(ax.yaxis)
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel("handoffs per minute")
    ax.set_title(f"handoff rate ({width * 60:g}-s bins)" if width < 1 else
                 f"handoff rate ({width:g}-min bins)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return set_caption(fig, f"Handoffs (not attaches or radio link failures) per minute in "
                            f"{width * 60:g}-s bins; ping-pong: back to the previous cell within "
                            "1 s.")


def _bin_minutes(minutes: float) -> float:
    """1-min bins unless that gives fewer than 10 (shorter bins) or more than 120 (longer)."""
    width: float  # whole minutes, or a fraction of one below
    for width in (1, 2, 5, 10, 15, 30, 60, 120):
        if minutes / width <= 120:
            break
    if minutes / width < 10:
        width = next((w for w in (0.5, 0.25, 1 / 6) if minutes / w >= 10), 1 / 6)
    return width


RADIO_FIGURES = {
    "sinr_cdf": ("SINR of the serving cell (CDF)", sinr_cdf),
    "time_of_stay": ("Time of stay on a cell and connected windows (CDF)", time_of_stay),
    "cell_load": ("Vehicles served per cell", cell_load),
    "coverage_map": ("Serving cell and SINR over the street network", coverage_map),
    "handoff_rate": ("Handoff rate over time", handoff_rate),
}


# ------------------------------------------------------------------------------------------ table

# (label, path into summary.radio, format): every key optional
RADIO_STATS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("handoffs", ("handoffs",), "{:,.0f}"),
    ("radio link failures", ("rlfs",), "{:,.0f}"),
    ("ping-pongs", ("ping_pongs",), "{:,.0f}"),
    ("km driven", ("km_driven",), "{:,.1f}"),
    ("moving vehicle-minutes", ("moving_vehicle_minutes",), "{:,.1f}"),
    ("handoffs per km", ("handoffs_per_km",), "{:.2f}"),
    ("handoffs per moving vehicle-minute", ("handoffs_per_moving_vehicle_minute",), "{:.2f}"),
    ("returns A→B→A within 1 s", ("returns_within_s", "1"), "{:,.0f}"),
    ("returns A→B→A within 2 s", ("returns_within_s", "2"), "{:,.0f}"),
    ("returns A→B→A within 5 s", ("returns_within_s", "5"), "{:,.0f}"),
    ("handoffs returned within 5 s", ("return_share_within_5s",), "{:.1%}"),
    ("radio link failures per hour", ("rlf_per_hour",), "{:.1f}"),
    ("time of stay p10 (s)", ("time_of_stay_s", "p10"), "{:.1f}"),
    ("time of stay p50 (s)", ("time_of_stay_s", "p50"), "{:.1f}"),
    ("time of stay p90 (s)", ("time_of_stay_s", "p90"), "{:.1f}"),
    ("stays counted", ("time_of_stay_s", "n"), "{:,.0f}"),
    ("SINR p5 (dB)", ("sinr_db", "p5"), "{:.1f}"),
    ("SINR p50 (dB)", ("sinr_db", "p50"), "{:.1f}"),
    ("SINR p95 (dB)", ("sinr_db", "p95"), "{:.1f}"),
    ("SINR max (dB)", ("sinr_db", "max"), "{:.1f}"),
    ("median connected window (s)", ("median_link_window_s",), "{:.1f}"),
)


def _lookup(d: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _fmt(v: Any, fmt: str) -> str:
    """A number in the row's format; "-" for a missing, null or non-numeric value."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return "-"
    return fmt.format(v)


def radio_table(src: ReportSource) -> str | None:
    """`summary.radio` of run.json, one column per run / seed; None when no run has it."""
    stats = [(run, (run.info.get("summary") or {}).get("radio")) for run in src.connectivity]
    stats = [(run, s) for run, s in stats if isinstance(s, dict)]
    if not stats:
        return None
    rows = [(label, [_fmt(_lookup(s, path), fmt) for _, s in stats]) for label, path, fmt in RADIO_STATS]
    rows = [(label, values) for label, values in rows if any(v != "-" for v in values)]
    if not rows:
        return None
    head = "".join(f"<th>{html.escape(run.label)}</th>" for run, _ in stats)
    body = "".join(f"<tr><th class='stat'>{html.escape(label)}</th>"
                   + "".join(f"<td>{v}</td>" for v in values) + "</tr>"
                   for label, values in rows)
    return (f"<table class='summary radio'><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")
