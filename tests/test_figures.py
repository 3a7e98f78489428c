"""Paper-ready report figures, on real runs of scenarios/grid_small.yaml: one
compare folder (random under sync and FedBuff, seeds 0 and 1; ~30 s) and its report.

Checked: every figure as PNG, SVG and PDF that decode, byte-identical when drawn again; integer
ticks on count axes; window CDFs that reach 1 with the right-censored windows marked; one line
style and marker per policy, mean and min-max band over seeds, coinciding curves named; the
coverage map, per-cell load, handoff rate and client Gantt from the traces; figures skipped with
the reason (staleness of a synchronous run, empty tables); the report in headless Chromium.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from matplotlib import pyplot as plt
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.image import imread
from matplotlib.patches import Rectangle, StepPatch
from typer.testing import CliRunner

from cosim.analysis import report as report_module
from cosim.analysis.ecdf import CENSORED_LABEL
from cosim.analysis.figure_files import FORMATS, save_figure
from cosim.analysis.figure_style import caption
from cosim.analysis.gantt import client_gantt
from cosim.analysis.plots import (
    FIGURES,
    bytes_over_the_air,
    link_window_durations,
    metric_vs_time,
    participation_per_round,
    staleness_histogram,
)
from cosim.analysis.radio_plots import RADIO_FIGURES, cell_load, coverage_map, handoff_rate
from cosim.analysis.report import ALL_FIGURES, write_report
from cosim.analysis.runs import open_source
from cosim.analysis.skip import render
from cosim.cli import app
from cosim.names import compare_run_dir, recording_dir
from cosim.trace_schemas import HANDOFF_SCHEMA, PARTICIPATION_SCHEMA

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

GRID_SMALL = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
# as tests/test_compare.py, with a FedBuff section (buffer of 2) that the sync runs leave out
SETTINGS = ["duration_s=40", "aggregation={method: fedbuff, buffer_size: 2, round_deadline_s: 10, "
            "max_rounds: 3}", "learning.enabled=true", "clients.count=3", "scheduling.per_round=2",
            "learning.data.synthetic.segments=5", "learning.data.synthetic.frames=2",
            "learning.data.clients=3", "learning.data.heldout_segments=2",
            "learning.local.batch_size=2"]
SEEDS = (0, 1)
SYNC, FEDBUFF = "random / sync", "random / fedbuff"


@pytest.fixture(autouse=True)
def _close_figures():
    """The figure functions return open figures: close them after each test."""
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("figures") / "cmp"
    sets = [a for s in SETTINGS for a in ("--set", s)]
    result = CliRunner().invoke(app, ["compare", str(GRID_SMALL), "--out", str(out), "--policies",
                                      "random", "--aggregations", "sync,fedbuff", "--seeds",
                                      ",".join(map(str, SEEDS)), "--jobs", "2", "-q", *sets])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def report(compared, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(compared, out)
    return out


def _page_figures(page: str) -> tuple[dict[str, str], dict[str, str]]:
    """The report's drawn figures (key: base64 PNG) and skipped ones (key: reason)."""
    drawn = dict(re.findall(r"<img alt='[^']*' data-figure='([^']+)' "
                            r"src='data:image/png;base64,([^']+)'>", page))
    skipped = dict(re.findall(r"<p class='none skipped' data-figure='([^']+)'>Skipped: ([^<]+)</p>",
                              page))
    return drawn, skipped


def _run(compared: Path, aggregation: str, seed: int = 0) -> Path:
    return compare_run_dir(compared, "random", aggregation, seed)


def _integer_ticks(axis) -> bool:
    ticks = [v for v in axis.get_ticklocs() if np.isfinite(v)]
    return len(ticks) >= 2 and all(float(v).is_integer() for v in ticks)


# ------------------------------------------------------------------------------ files and report

def test_every_figure_is_saved_as_png_svg_and_pdf_that_decode(report):
    page = (report / "report.html").read_text(encoding="utf-8")
    drawn, skipped = _page_figures(page)
    expected = {*ALL_FIGURES, "pairs"}  # a compare opens with its paired verdicts' forest plot
    assert set(drawn) | set(skipped) == expected and not set(drawn) & set(skipped)
    assert page.count("<img") == len(drawn)  # no image the check above did not see
    # the compare has learning, radio and an asynchronous run: every figure means something
    assert set(drawn) == expected, skipped
    for key, data in drawn.items():
        files = {fmt: report / "figures" / f"{key}.{fmt}" for fmt in FORMATS}
        assert all(p.is_file() and p.stat().st_size > 1000 for p in files.values()), key
        png = files["png"].read_bytes()
        assert base64.b64decode(data) == png, key  # the HTML embeds the PNG saved beside it
        pixels = imread(io.BytesIO(png))
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 200 and pixels[..., :3].std() > 0.05, key
        root = ET.parse(files["svg"]).getroot()
        assert root.tag.endswith("svg") and len(root) > 0, key
        pdf = files["pdf"].read_bytes()
        assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-64:], key
    assert not list((report / "figures").glob("*.jpg"))


def test_vector_files_are_byte_identical_when_drawn_again(compared, tmp_path):
    src = open_source(compared)
    first = save_figure(metric_vs_time(src), tmp_path / "a", "m")
    second = save_figure(metric_vs_time(src), tmp_path / "b", "m")
    for fmt in FORMATS:
        assert first[fmt].read_bytes() == second[fmt].read_bytes(), fmt
    assert b"CreationDate" not in first["pdf"].read_bytes()
    assert "<dc:date>" not in first["svg"].read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------- axes and CDFs

def test_count_axes_have_integer_ticks(compared):
    src = open_source(compared)
    fig = participation_per_round(src)
    fig.canvas.draw()
    for ax in fig.axes:
        assert _integer_ticks(ax.xaxis) and _integer_ticks(ax.yaxis), ax.get_title()
    fig = staleness_histogram(src)
    fig.canvas.draw()
    assert _integer_ticks(fig.axes[0].xaxis) and _integer_ticks(fig.axes[0].yaxis)
    for make in (cell_load, handoff_rate):
        fig = make(src)
        fig.canvas.draw()
        assert _integer_ticks(fig.axes[0].yaxis), make.__name__


def test_window_cdfs_reach_one_and_mark_the_censored_windows(compared):
    src = open_source(compared)
    fig = link_window_durations(src)
    assert fig is not None and "right-censored" in caption(fig)
    censored_seen = 0
    for ax, connected in zip(fig.axes, (True, False), strict=True):
        assert ax.get_xscale() == "log"
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        for seed in SEEDS:
            w = pq.read_table(recording_dir(compared, seed) / "link_windows.parquet").to_pandas()
            w = w[((w.cell == -1) == connected) & (w.duration_s > 0)]
            (main,) = [ln for lab, ln in lines.items() if lab.startswith(f"seed {seed}: all")]
            assert main.get_ydata().min() == 0 and main.get_ydata().max() == pytest.approx(1.0)
            assert main.get_xdata().max() == pytest.approx(w.duration_s.max())
            marks = [ln for lab, ln in lines.items()
                     if lab.startswith(f"seed {seed}:") and CENSORED_LABEL in lab]
            n = int(w.censored.sum())
            censored_seen += n
            if not n:
                assert not marks
                continue
            (mark,) = marks
            assert mark.get_linestyle() == "None" and mark.get_markerfacecolor() == "white"
            assert sorted(mark.get_xdata()) == pytest.approx(sorted(w.duration_s[w.censored]))
            assert min(mark.get_ydata()) > 0 and max(mark.get_ydata()) <= 1
            if (~w.censored).any():  # the ended windows alone: a second CDF up to 1
                (ended,) = [ln for lab, ln in lines.items()
                            if lab.startswith(f"seed {seed}: ended only")]
                assert ended.get_ydata().max() == pytest.approx(1.0)
    assert censored_seen > 0  # grid_small's 40 s: vehicles still connected at the end
    legend = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert any("censored" in t for t in legend)


# ------------------------------------------------------------------------- policies and seeds

def _lines_by_label(ax) -> dict[str, object]:
    return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}


def test_policies_get_distinct_styles_and_a_band_over_seeds(compared):
    src = open_source(compared)
    fig = metric_vs_time(src)
    assert "mean over the seeds" in caption(fig) and "min–max" in caption(fig)
    # what the curves rest on, from run.json's held-out support
    assert "Held-out support: seg3d " in caption(fig) and " boxes in its smallest class (" in caption(fig)
    assert re.search(r"det2d \d+ boxes in its smallest class \(\w+\), \d+ frames", caption(fig))
    ax = fig.axes[0]  # seg3d mIoU
    lines = _lines_by_label(ax)
    policy_lines = {lab: ln for lab, ln in lines.items() if "baseline" not in lab}
    assert set(policy_lines) == {f"{SYNC} (mean of 2 seeds)", f"{FEDBUFF} (mean of 2 seeds)"}
    looks = {(str(ln.get_linestyle()), ln.get_marker()) for ln in policy_lines.values()}
    assert len(looks) == 2 and all(m not in ("None", "", None) for _, m in looks)
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2  # one band per policy
    assert any("min–max" in t.get_text() for leg in fig.legends for t in leg.get_texts())
    for aggregation, label in (("sync", SYNC), ("fedbuff", FEDBUFF)):
        finals = []
        for seed in SEEDS:
            m = pq.read_table(_run(compared, aggregation, seed) / "metrics.parquet").to_pandas()
            m = m[(m.task == "seg3d") & (m.metric == "mIoU")].sort_values("sim_time_s")
            finals.append(m.value.iloc[-1])
        mean = policy_lines[f"{label} (mean of 2 seeds)"]
        assert mean.get_ydata()[-1] == pytest.approx(np.mean(finals))
    fig = bytes_over_the_air(src)
    up = _lines_by_label(fig.axes[1])
    assert set(up) == {f"{SYNC} (mean of 2 seeds)", f"{FEDBUFF} (mean of 2 seeds)"}
    for aggregation, label in (("sync", SYNC), ("fedbuff", FEDBUFF)):
        total = [pq.read_table(_run(compared, aggregation, s) / "participation.parquet")
                 .to_pandas().bytes_up.sum() / 1e6 for s in SEEDS]
        assert up[f"{label} (mean of 2 seeds)"].get_ydata()[-1] == pytest.approx(np.mean(total))
        band = [c for c in fig.axes[1].collections if isinstance(c, PolyCollection)]
        top = max(v[:, 1].max() for c in band for p in c.get_paths() for v in [p.vertices])
        assert top >= max(total) - 1e-9


def test_coinciding_curves_are_named_and_stay_visible(compared):
    src = open_source(compared)
    run = next(r for r in src.runs if r.label == SYNC)
    twins = dataclasses.replace(src, runs=[dataclasses.replace(run, label="policy A"),
                                           dataclasses.replace(run, label="policy B")])
    fig = metric_vs_time(twins)
    assert "policy A = policy B" in caption(fig)
    ax = fig.axes[0]
    assert any("policy A = policy B" in t.get_text() for t in ax.texts)
    a, b = (_lines_by_label(ax)[k] for k in ("policy A", "policy B"))
    assert np.array_equal(a.get_ydata(), b.get_ydata())
    assert (a.get_linestyle(), a.get_marker()) != (b.get_linestyle(), b.get_marker())
    assert b.get_zorder() > a.get_zorder()  # the dashed one above: both show


# ------------------------------------------------------------------------------- the new figures

def test_coverage_map_marks_the_cell_sites(compared):
    src = open_source(compared)
    fig = coverage_map(src)
    cells = pq.read_table(recording_dir(compared, 0) / "cells.parquet").to_pandas()
    for ax in fig.axes[:2]:
        offsets = np.vstack([c.get_offsets() for c in ax.collections
                             if isinstance(c, PathCollection) and c.get_zorder() >= 6])
        for x, y in zip(cells.x, cells.y, strict=True):
            assert np.isclose(offsets, (x, y)).all(axis=1).any(), (x, y)
    radio = pq.read_table(recording_dir(compared, 0) / "radio.parquet").to_pandas()
    vehicles = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)
                and c.get_zorder() < 6 and len(c.get_offsets())]
    colours = {tuple(np.round(c, 3)) for col in vehicles for c in col.get_facecolors()}
    assert len(colours) >= radio.serving_cell[radio.serving_cell >= 0].nunique() >= 2


def test_cell_load_stacks_to_the_vehicles_in_the_network(compared):
    src = open_source(compared)
    fig = cell_load(src)
    ax = fig.axes[0]
    radio = pq.read_table(recording_dir(compared, 0) / "radio.parquet").to_pandas()
    cells = pq.read_table(recording_dir(compared, 0) / "cells.parquet").to_pandas()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(cells["id"]) <= set(legend)
    top = max(p.vertices[:, 1].max() for c in ax.collections for p in c.get_paths())
    assert top == pytest.approx(radio.groupby("t").size().max())


def test_handoff_rate_counts_every_handoff_per_seed(compared):
    fig = handoff_rate(open_source(compared))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "handoffs per minute"
    totals = {}
    for patch in ax.patches:
        if isinstance(patch, StepPatch) and "all handoffs" in patch.get_label():
            values, edges, _ = patch.get_data()
            totals[patch.get_label().split(":")[0]] = float((values * np.diff(edges)).sum())
    for seed in SEEDS:
        h = pq.read_table(recording_dir(compared, seed) / "handoffs.parquet").to_pandas()
        assert totals[f"seed {seed}"] == pytest.approx((h.kind == "handoff").sum())


def test_gantt_has_one_row_per_client_that_took_part(compared):
    src = open_source(compared)
    fig = client_gantt(src)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"{SYNC} (seed 0)", f"{FEDBUFF} (seed 0)"]
    for ax, aggregation in zip(panels, ("sync", "fedbuff"), strict=True):
        p = pq.read_table(_run(compared, aggregation) / "participation.parquet").to_pandas()
        clients = sorted(p.client.unique())
        assert [t.get_text() for t in ax.get_yticklabels()] == [f"client {c}" for c in clients]
        phases = p[["t_download_end", "t_compute_end", "t_upload_end"]].notna().to_numpy()
        # completed phases, plus the one a failed attempt stopped in
        expect = int(phases.sum() + (~phases.all(axis=1)).sum())
        bars = [r for r in ax.patches if isinstance(r, Rectangle)]
        assert len(bars) == expect
        first = p.sort_values("selected_at").iloc[0]
        row = clients.index(first.client)
        starts = [r.get_x() for r in bars if abs(r.get_y() + r.get_height() / 2 - row) < 1e-9]
        assert min(starts) == pytest.approx(first.selected_at)  # seconds: a 40-s run
    assert panels[-1].get_xlabel() == "simulated time (s)"


# ------------------------------------------------------------------------------------ skipping

def test_staleness_is_skipped_for_a_sync_run_and_the_report_says_why(compared, tmp_path,
                                                                     monkeypatch):
    sync = _run(compared, "sync")
    reason = render(staleness_histogram, open_source(sync))
    assert isinstance(reason, str) and "synchronous" in reason
    assert staleness_histogram(open_source(sync)) is None
    fig = staleness_histogram(open_source(compared))  # the compare: the FedBuff runs only
    assert [t.get_text().split(":")[0] for t in fig.axes[0].get_legend().get_texts()] == [FEDBUFF]
    assert f"Not drawn (synchronous): {SYNC}" in caption(fig)
    out = tmp_path / "r"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "staleness.png").write_bytes(b"left from an older report")
    keep = {k: ALL_FIGURES[k] for k in ("staleness", "gantt", next(iter(RADIO_FIGURES)))}
    monkeypatch.setattr(report_module, "ALL_FIGURES", keep)  # three figures: fast
    page = write_report(sync, out).read_text(encoding="utf-8")
    drawn, skipped = _page_figures(page)
    assert "staleness" not in drawn and "synchronously" in skipped["staleness"]
    assert not list((out / "figures").glob("staleness.*"))
    assert "gantt" in drawn and (out / "figures" / "gantt.pdf").is_file()


def test_figures_of_empty_tables_are_skipped_with_the_reason(compared, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(_run(compared, "fedbuff"), run)
    info = json.loads((run / "run.json").read_text())
    for name, schema in (("participation", PARTICIPATION_SCHEMA), ("handoffs", HANDOFF_SCHEMA)):
        pq.write_table(pa.Table.from_pylist([], schema=schema), run / f"{name}.parquet")
        # a run whose tables came out empty: its run.json holds their digests
        info["trace_sha256"][name] = hashlib.sha256((run / f"{name}.parquet").read_bytes()).hexdigest()
    (run / "run.json").write_text(json.dumps(info))
    assert len(pd.read_parquet(run / "participation.parquet")) == 0
    src = open_source(run)
    for key in ("participation", "gantt", "staleness", "bytes", "handoff_map", "handoff_rate"):
        make = {**FIGURES, **RADIO_FIGURES}[key][1]
        reason = render(make, src)
        assert isinstance(reason, str), key
        assert ("no client took part" in reason or "no handoff" in reason
                or "handoffs table is empty" in reason), (key, reason)
        assert make(src) is None, key
    assert not isinstance(render(coverage_map, src), str)  # radio samples are still there


# --------------------------------------------------------------------------- headless Chromium

def _chromium() -> str | None:
    """A headless Chromium on this machine: $COSIM_CHROMIUM, a system one, or Playwright's
    download. None here by default: pip ships no browser and Playwright's install step
    downloads one from outside the package registries."""
    names = [os.environ.get("COSIM_CHROMIUM", ""), "chromium-headless-shell", "chromium",
             "chromium-browser", "google-chrome", "headless_shell"]
    found = next((shutil.which(n) for n in names if n and shutil.which(n)), None)
    if found:
        return found
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as pw:
        path = pw.chromium.executable_path
    return path if path and Path(path).is_file() else None


PROBE = """<script>window.addEventListener('load', () => {
  const pre = document.createElement('pre'); pre.id = 'cosim-probe';
  pre.textContent = [...document.images].map(i =>
      `${i.dataset.figure}=${i.complete ? i.naturalWidth : 0}x${i.naturalHeight}`).join(' ');
  document.body.appendChild(pre);
});</script>"""


def test_report_renders_every_figure_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no headless Chromium here (pip ships none; set COSIM_CHROMIUM or install "
                    "chromium-headless-shell)")
    page = (report / "report.html").read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="cosim-probe">([^<]*)</pre>', done.stdout)
    assert found, done.stderr[-2000:]
    sizes = dict(item.split("=") for item in found.group(1).split())
    drawn, _ = _page_figures(page)
    assert set(sizes) == set(drawn)
    for key, size in sizes.items():
        width, height = (int(v) for v in size.split("x"))
        assert width > 0 and height > 0, key


@pytest.mark.parametrize("seeds", [1, 2])
def test_a_curve_of_undefined_scores_draws_without_markers(seeds):
    """A run whose every score is NaN (a task nothing was scored on): its line is drawn empty,
    where matplotlib's spaced markers would fail on it."""
    from cosim.analysis.figure_style import series_styles
    from cosim.analysis.plots import _band_or_line

    t = np.array([0.0, 10.0, 20.0])
    fig, ax = plt.subplots()
    style = series_styles(["random"])["random"]
    _band_or_line(ax, "random", [(t, np.full(3, np.nan))] * seeds, style)
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)
