"""The report's radio figures and statistics table, on small synthetic run folders (no SUMO run:
seconds): with and without the cells' azimuth column, with many cells, and a compare folder."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cosim.analysis import radio_plots
from cosim.analysis.figure_style import caption
from cosim.analysis.radio_plots import RADIO_FIGURES, radio_table
from cosim.analysis.report import write_report
from cosim.analysis.runs import open_source
from cosim.bounded_read import file_sha256
from cosim.names import compare_run_dir, recording_dir
from cosim.trace_schemas import (
    CELL_SCHEMA,
    CELLS,
    HANDOFF_SCHEMA,
    HANDOFFS,
    LINK_WINDOWS,
    MOBILITY,
    MOBILITY_SCHEMA,
    RADIO,
    RADIO_SCHEMA,
    WINDOW_SCHEMA,
)

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

DURATION = 300
NET = """<net version="1.20">
<location netOffset="0.00,0.00" convBoundary="0.00,0.00,400.00,400.00" origBoundary="0,0,400,400"
 projParameter="!"/>
<edge id="e0" from="a" to="b" priority="1"><lane id="e0_0" index="0" speed="13.89" length="400.00"
 shape="0.00,0.00 400.00,0.00"/></edge>
<edge id="e1" from="b" to="c" priority="1"><lane id="e1_0" index="0" speed="13.89" length="400.00"
 shape="400.00,0.00 400.00,400.00"/></edge>
<junction id="a" type="dead_end" x="0.00" y="0.00" incLanes="" intLanes="" shape="0,0"/>
<junction id="b" type="priority" x="400.00" y="0.00" incLanes="e0_0" intLanes="" shape="400,0"/>
<junction id="c" type="dead_end" x="400.00" y="400.00" incLanes="e1_0" intLanes="" shape="400,400"/>
</net>
"""
NEW_RADIO_SUMMARY = {
    "cells": 3, "handoffs": 40, "rlfs": 1, "attaches": 12, "detaches": 3, "ping_pongs": 4,
    "km_driven": 12.345, "moving_vehicle_minutes": 50.5, "vehicle_minutes": 60.0,
    "handoffs_per_km": 3.24, "handoffs_per_moving_vehicle_minute": 0.79,
    "returns_within_s": {"1": 4, "2": 6, "5": 9}, "return_share_within_5s": 0.225,
    "rlf_per_hour": 12.0, "time_of_stay_s": {"p10": 1.5, "p50": 12.25, "p90": 80.0, "n": 36},
    "sinr_db": {"p5": -3.1, "p50": 11.4, "p95": 29.9, "max": None}, "median_link_window_s": 140.0,
}
OLD_RADIO_SUMMARY = {"cells": 3, "handoffs": 40, "rlfs": 1, "ping_pongs": 4,
                     "median_link_window_s": 140.0}


def _write(path: Path, name: str, df: pd.DataFrame, schema: pa.Schema) -> None:
    schema = pa.schema([f for f in schema if f.name in df.columns])
    pq.write_table(pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False),
                   path / f"{name}.parquet")


def _cells(n: int, azimuth: bool) -> pd.DataFrame:
    side = math.ceil(math.sqrt(n))
    i = np.arange(n)
    cells = pd.DataFrame({
        "cell": i, "id": [f"site{k // 3}-{k % 3}" if azimuth else f"c{k}" for k in i],
        "kind": ["macro" if k % 3 == 0 else "small" for k in i], "scenario": "uma",
        "x": 50.0 + 400.0 * (i % side) / max(side - 1, 1), "y": 50.0 + 400.0 * (i // side) / max(side - 1, 1),
        "height_m": 25.0, "tx_power_dbm": 46.0, "antenna_gain_dbi": 17.0, "carrier_ghz": 3.5,
        "bandwidth_mhz": 40.0})
    if azimuth:  # two sectors (east, north) and an omnidirectional small cell
        cells["azimuth_deg"] = [90.0, 0.0, np.nan, *([120.0] * (n - 3))][:n]
        cells["downtilt_deg"] = 6.0
    return cells


def _traces(cells: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """Vehicles driving the L-shaped street at different times, served by the nearest cell."""
    rng = np.random.default_rng(seed)
    mob, rad = [], []
    for v in range(12):
        t0 = 10.0 * v
        t = np.arange(t0, min(t0 + 120, DURATION) + 1, 1.0)
        s = (t - t0) * 7.0
        x, y = np.minimum(s, 400.0), np.clip(s - 400.0, 0, 400.0)
        name = f"veh{v}"
        mob.append(pd.DataFrame({"t": t, "vehicle": name, "x": x, "y": y, "lon": 0.0, "lat": 0.0,
                                 "speed": 7.0, "heading": 90.0, "edge": "e0", "parked": False,
                                 "type": "car"}))
        d = np.hypot(x[:, None] - cells.x.to_numpy(), y[:, None] - cells.y.to_numpy())
        serving = d.argmin(axis=1).astype(np.int32)
        serving[rng.random(len(t)) < 0.05] = -1  # now and then out of coverage
        sinr = np.where(serving >= 0, 30 - 0.08 * d.min(axis=1) + rng.normal(0, 3, len(t)), np.nan)
        rad.append(pd.DataFrame({"t": t, "vehicle": name, "serving_cell": serving,
                                 "rsrp_dbm": -80.0, "sinr_db": sinr.astype(np.float32),
                                 "rate_bps": 1e7, "ul_rate_bps": 1e6}))
    mobility, radio = pd.concat(mob, ignore_index=True), pd.concat(rad, ignore_index=True)
    mobility = mobility.drop(index=mobility.index[::17])  # some radio rows have no position
    handoffs, windows = [], []
    for name, r in radio.groupby("vehicle", sort=False):
        cell, t = r.serving_cell.to_numpy(), r.t.to_numpy()
        change = np.flatnonzero(np.diff(cell) != 0) + 1
        for k in change:
            kind = "handoff" if cell[k - 1] >= 0 and cell[k] >= 0 else "attach" if cell[k] >= 0 else "rlf"
            ping = bool(kind == "handoff" and k % 4 == 0)
            handoffs.append((t[k], name, cell[k - 1], cell[k], kind, 0.05, ping))
        bounds = np.r_[0, change, len(cell)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if cell[a] >= 0:
                end = t[b] if b < len(t) else t[-1]
                windows.append((name, cell[a], t[a], end, end - t[a], 1e7, 1e6, b == len(t)))
        windows.append((name, -1, t[0], t[-1], t[-1] - t[0], 1e7, 1e6, t[-1] >= DURATION))
    handoffs = pd.DataFrame(handoffs, columns=HANDOFF_SCHEMA.names).sort_values("t", kind="stable")
    windows = pd.DataFrame(windows, columns=WINDOW_SCHEMA.names)
    return {MOBILITY: mobility, RADIO: radio, HANDOFFS: handoffs, LINK_WINDOWS: windows}


def _run_json(path: Path, seed: int, net: Path | None, radio_summary: dict | None) -> None:
    info = {"status": "complete", "seed": seed, "sim_time_s": DURATION, "wall_time_s": 1.0,
            "scenario": {"name": "synthetic", "duration_s": DURATION, "learning": None,
                         "scheduling": {"policy": "random"}, "aggregation": {"method": "sync"},
                         "clients": {"count": 0}},
            "versions": {"cosim": "test", "sumo": "test"},
            "inputs": {"net": str(net) if net else None},
            "traces": {f.stem: f.name for f in path.glob("*.parquet")},
            "trace_sha256": {f.stem: file_sha256(f) for f in path.glob("*.parquet")}}
    if radio_summary is not None:
        info["summary"] = {"radio": radio_summary}
    (path / "run.json").write_text(json.dumps(info), encoding="utf-8")


def _make_run(path: Path, *, cells: int = 3, azimuth: bool = True, seed: int = 0,
              net: Path | None = None, radio_summary: dict | None = None, radio: bool = True) -> Path:
    path.mkdir(parents=True)
    cell_table = _cells(cells, azimuth)
    traces = _traces(cell_table, seed)
    _write(path, MOBILITY, traces[MOBILITY], MOBILITY_SCHEMA)
    if radio:
        _write(path, CELLS, cell_table, CELL_SCHEMA)
        for name, schema in ((RADIO, RADIO_SCHEMA), (HANDOFFS, HANDOFF_SCHEMA),
                             (LINK_WINDOWS, WINDOW_SCHEMA)):
            _write(path, name, traces[name], schema)
    _run_json(path, seed, net, radio_summary)
    return path


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("net") / "tiny.net.xml"
    path.write_text(NET, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sector_run(tmp_path_factory, net) -> Path:
    return _make_run(tmp_path_factory.mktemp("runs") / "sectors", net=net, radio_summary=NEW_RADIO_SUMMARY)


def _assert_not_blank(fig, name: str) -> None:
    from matplotlib.image import imread

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=60)
    buffer.seek(0)
    pixels = imread(buffer)[..., :3]
    assert pixels.std() > 0.05, f"{name} is blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, f"{name} is nearly blank"


def _legend(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()] + \
           [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def test_report_has_the_radio_figures_and_table(sector_run, tmp_path):
    from matplotlib.image import imread

    page = write_report(sector_run, tmp_path / "r").read_text(encoding="utf-8")
    for key in RADIO_FIGURES:
        png = tmp_path / "r" / "figures" / f"{key}.png"
        assert png.is_file(), key
        pixels = imread(png)[..., :3]
        assert pixels.std() > 0.05 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, key
    radio = page[page.index("<h2>Radio statistics</h2>"):]
    radio = radio[:radio.index("<h2>", 5)]
    for text in ("handoffs per km", "3.24", "22.5%", "returns A→B→A within 2 s", "<td>6</td>",
                 "time of stay p50 (s)", "12.2", "SINR p95 (dB)", "29.9", "12.3"):
        assert text in radio, text
    assert "SINR max" not in radio  # null in every run: the row is left out
    assert "street network file not found" not in page


@pytest.mark.parametrize("case", ["omni, no azimuth column", "40 cells", "300 cells"])
def test_radio_figures_without_azimuth_and_with_many_cells(tmp_path, net, case):
    many = case != "omni, no azimuth column"
    run = _make_run(tmp_path / "run", cells=int(case.split()[0]) if many else 3, azimuth=False,
                    net=net)
    src = open_source(run)
    for key, (_, make) in RADIO_FIGURES.items():
        fig = make(src)
        assert fig is not None, key
        _assert_not_blank(fig, key)
    load = radio_plots.cell_load(src)
    ax = load.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()] if many else _legend(load)
    assert "c0" in labels and "c1" in labels
    assert bool(ax.collections and type(ax.collections[0]).__name__ == "QuadMesh") == many
    assert radio_table(src) is None  # no summary.radio in run.json
    if case == "300 cells":  # the busiest 40 beside every cell's load; the map without names
        assert len(labels) <= 40 and load.get_size_inches()[1] < 8
        assert load.axes[1].get_title() == "all 300 cells"
        assert sum(p.get_height() for p in load.axes[1].patches) == 300
        cover = radio_plots.coverage_map(src)
        assert not cover.axes[0].texts and "300 cells: sites without names" in caption(cover)


def test_compare_folder_draws_one_line_per_seed(tmp_path, net):
    root = tmp_path / "cmp"
    root.mkdir()
    (root / "compare.json").write_text(json.dumps({"policies": ["random"], "aggregations": ["sync"],
                                                   "seeds": [0, 1]}))
    for seed in (0, 1):
        summary = NEW_RADIO_SUMMARY if seed == 0 else OLD_RADIO_SUMMARY  # an older recording
        _make_run(recording_dir(root, seed), seed=seed, net=net, radio_summary=summary)
        run = compare_run_dir(root, "random", "sync", seed)
        run.mkdir(parents=True)
        shutil.copy(recording_dir(root, seed) / f"{MOBILITY}.parquet", run)  # a run wrote tables
        _run_json(run, seed, net, None)
    src = open_source(root)
    sinr = radio_plots.sinr_cdf(src)
    assert sum("seed 0: median" in t or "seed 1: median" in t for t in _legend(sinr)) == 2
    rate = radio_plots.handoff_rate(src)
    assert {"seed 0: ping-pongs", "seed 1: ping-pongs"} <= {t.split(" (")[0] for t in _legend(rate)}
    table = radio_table(src)
    assert "<th>seed 0</th><th>seed 1</th>" in table
    assert "<td>3.24</td><td>-</td>" in table  # the older recording lacks the key
    page = write_report(root, tmp_path / "r").read_text(encoding="utf-8")
    assert page.count("<h2>Radio statistics</h2>") == 1
    assert {p.stem for p in (tmp_path / "r" / "figures").glob("*.png")} >= set(RADIO_FIGURES)


def test_radio_figures_are_skipped_without_radio_tables(tmp_path):
    run = _make_run(tmp_path / "run", radio=False, radio_summary=None)
    src = open_source(run)
    assert all(make(src) is None for _, make in RADIO_FIGURES.values())
    page = write_report(run, tmp_path / "r").read_text(encoding="utf-8")
    assert "No radio statistics in run.json" in page


def test_sinr_cdf_leaves_out_samples_without_a_serving_cell(sector_run):
    src = open_source(sector_run)
    radio = pq.read_table(sector_run / "radio.parquet").to_pandas()
    connected = radio.sinr_db[radio.serving_cell >= 0].dropna()
    fig = radio_plots.sinr_cdf(src)
    (text,) = _legend(fig)
    assert f"median {np.median(connected):.1f} dB" in text and f"n={len(connected):,}" in text
    line = fig.axes[0].get_lines()[0]
    assert line.get_ydata().max() == pytest.approx(1.0) and fig.axes[0].get_ylim() == (0, 1)


def test_time_of_stay_counts_censored_windows_apart(sector_run):
    windows = pq.read_table(sector_run / "link_windows.parquet").to_pandas()
    dwell = windows[(windows.cell >= 0) & ~windows.censored].duration_s
    censored = int(windows[windows.cell >= 0].censored.sum())
    fig = radio_plots.time_of_stay(open_source(sector_run))
    left = [t.get_text() for t in fig.axes[0].get_legend().get_texts()][0]
    assert f"median {np.median(dwell):.1f} s" in left and f"{censored} censored" in left
    assert fig.axes[0].get_xscale() == "log"
    right = [t.get_text() for t in fig.axes[1].get_legend().get_texts()][0]
    assert f"{int(windows[windows.cell == -1].censored.sum())} censored" in right


def test_coverage_map_joins_positions_exactly_and_draws_boresights(sector_run):
    radio = pq.read_table(sector_run / "radio.parquet").to_pandas()
    mobility = pq.read_table(sector_run / "mobility.parquet").to_pandas()
    pos = radio_plots._positions(radio, mobility)
    assert len(pos) == len(mobility) < len(radio)  # radio rows without a position are left out
    expect = mobility.set_index(["t", "vehicle"]).loc[list(zip(pos.t, pos.vehicle, strict=True))]
    assert np.array_equal(pos.x.to_numpy(), expect.x.to_numpy())
    fig = radio_plots.coverage_map(open_source(sector_run))
    cells = pq.read_table(sector_run / "cells.parquet").to_pandas()
    lines = [ln.get_xydata() for ln in fig.axes[0].get_lines() if len(ln.get_xydata()) == 2]
    east = [xy for xy in lines if np.allclose(xy[0], (cells.x[0], cells.y[0]))]
    north = [xy for xy in lines if np.allclose(xy[0], (cells.x[1], cells.y[1]))]
    assert east and all(xy[1, 0] > xy[0, 0] and np.isclose(xy[1, 1], xy[0, 1]) for xy in east)
    assert north and all(xy[1, 1] > xy[0, 1] and np.isclose(xy[1, 0], xy[0, 0]) for xy in north)
    assert not any(np.allclose(xy[0], (cells.x[2], cells.y[2])) for xy in lines)  # omni: no line
    assert "sector boresight" in _legend(fig)


def test_handoff_rate_bars_add_up_to_the_handoffs(sector_run):
    handoffs = pq.read_table(sector_run / "handoffs.parquet").to_pandas()
    moves = handoffs[handoffs.kind == "handoff"]
    fig = radio_plots.handoff_rate(open_source(sector_run))
    ax = fig.axes[0]
    regular, ping = (c.patches for c in ax.containers)
    total = sum(p.get_height() * p.get_width() for p in (*regular, *ping))  # per min x min
    assert total == pytest.approx(len(moves))
    assert sum(p.get_height() * p.get_width() for p in ping) == pytest.approx(moves.ping_pong.sum())
    assert ax.get_ylabel() == "handoffs per minute"
    assert all(float(v).is_integer() for v in ax.get_yticks())
