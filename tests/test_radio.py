"""The radio layer on real SUMO runs: a straight road between two cells, and grid_small."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cosim.cli import app
from cosim.runner import run_scenario
from cosim.scenario_loader import load_scenario

ROAD = {
    "nodes": '<nodes><node id="a" x="0" y="0"/><node id="b" x="1000" y="0"/></nodes>',
    "edges": '<edges><edge id="ab" from="a" to="b" numLanes="1" speed="13.89"/></edges>',
    "routes": ('<routes><vType id="car" maxSpeed="13.89" accel="10" decel="10" sigma="0"/>'
               '<vehicle id="v0" type="car" depart="0" departSpeed="max">'
               '<route edges="ab"/></vehicle></routes>'),
}


def _straight_road(tmp_path: Path) -> Path:
    for name, text in ROAD.items():
        (tmp_path / f"road.{name}.xml").write_text(text)
    cell = {"height_m": 10, "tx_power_dbm": 30, "antenna_gain_dbi": 0, "carrier_ghz": 3.5,
            "bandwidth_mhz": 20, "scenario": "umi"}
    scenario = {
        "name": "road", "seed": 3, "duration_s": 90,
        "mobility": {"plain": {"nodes": "road.nodes.xml", "edges": "road.edges.xml"},
                     "routes": ["road.routes.xml"]},
        "radio": {"cells": [{"id": "west", "x": 0, "y": 30, **cell},
                            {"id": "east", "x": 1000, "y": 30, **cell}],
                  "channel": {"model": "free_space", "shadowing": False,
                              "penetration_mean_db": 0, "penetration_std_db": 0},
                  "interference": {"activity": "fixed"},
                  "trace_period_s": 0.1},
    }
    path = tmp_path / "road.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


class _Probe:
    """Asks the radio for the vehicle's open window at a time inside a SUMO step."""

    name = "probe"

    def __init__(self, engine):
        self.seen = {}

    def attach(self, engine):
        def probe():
            yield engine.env.timeout(30.45)
            self.seen = engine.layer("radio").open_window("v0")

        engine.env.process(probe())


def test_straight_drive_between_two_cells(tmp_path):
    path = _straight_road(tmp_path)
    probe = {}

    def factory(engine):
        probe["p"] = _Probe(engine)
        return probe["p"]

    result = run_scenario(load_scenario(path), source=path, out=tmp_path / "run", quiet=True,
                          extra_layers=[factory])
    assert result.status == "complete"
    h = pd.read_parquet(tmp_path / "run" / "handoffs.parquet")
    assert list(h.kind) == ["attach", "handoff", "detach"]
    ho = h[h.kind == "handoff"].iloc[0]
    assert (ho.from_cell, ho.to_cell, ho.ping_pong) == (0, 1, False)
    # Where the east cell's RSRP first beats the west cell's by the 3 dB A3 offset
    # (free space: 20 log10(d_west / d_east) = 3 dB), from the 3D distances.
    xs = np.linspace(400, 800, 40001)
    d_w = np.sqrt(xs**2 + 30**2 + 8.5**2)
    d_e = np.sqrt((1000 - xs) ** 2 + 30**2 + 8.5**2)
    x_a3 = xs[np.argmax(20 * np.log10(d_w / d_e) > 3.0)]
    mob = pd.read_parquet(tmp_path / "run" / "mobility.parquet")
    x_ho = np.interp(ho.t, mob.t, mob.x)
    # past the A3 point by at most what the L3 filter lag and the time-to-trigger take
    assert x_a3 <= x_ho <= x_a3 + 13.89 * 1.0
    # one connected window across the handoff, partitioned by two cell windows
    w = pd.read_parquet(tmp_path / "run" / "link_windows.parquet").sort_values(["cell", "start"])
    any_w = w[w.cell == -1]
    assert len(any_w) == 1 and not any_w.censored.any()
    cells = w[w.cell >= 0]
    assert list(cells.cell) == [0, 1]
    assert cells.duration_s.sum() == pytest.approx(any_w.duration_s.iloc[0])
    assert cells.start.iloc[1] == pytest.approx(ho.t) == pytest.approx(cells.end.iloc[0])
    r = pd.read_parquet(tmp_path / "run" / "radio.parquet")
    window = probe["p"].seen
    so_far = r[(r.t >= window["start"] - 1e-9) & (r.t <= 30.4 + 1e-9)]
    assert window["elapsed_s"] == pytest.approx(30.45 - window["start"])
    assert window["mean_rate_bps"] == pytest.approx(so_far.rate_bps.mean(), rel=1e-9)
    # co-channel neighbour: 0 dB at the midpoint, -3 dB at the A3 point, then better again
    assert r.sinr_db.min() > -3.5 and (r.rate_bps > 0).all()


def _grid_with_radio(tmp_path: Path, name: str, *overrides: str):
    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    sc = load_scenario(path, ["learning=null", "radio.trace_period_s=0.1", *overrides])
    return run_scenario(sc, source=path, out=tmp_path / name, quiet=True)


def test_link_windows_partition_connected_time_exactly(tmp_path):
    _grid_with_radio(tmp_path, "g")
    run = tmp_path / "g"
    radio = pd.read_parquet(run / "radio.parquet")
    windows = pd.read_parquet(run / "link_windows.parquet")
    connected_s = (radio.serving_cell >= 0).groupby(radio.vehicle).sum() * 0.1
    any_w = windows[windows.cell == -1].groupby("vehicle").duration_s.sum()
    cell_w = windows[windows.cell >= 0].groupby("vehicle").duration_s.sum()
    vehicles = sorted(connected_s[connected_s > 0].index)
    assert len(vehicles) > 10
    assert np.allclose(any_w.loc[vehicles], connected_s.loc[vehicles], atol=1e-6)
    assert np.allclose(cell_w.loc[vehicles], connected_s.loc[vehicles], atol=1e-6)
    # windows of one vehicle never overlap
    for _, g in windows[windows.cell == -1].groupby("vehicle"):
        g = g.sort_values("start")
        assert (g.start.values[1:] >= g.end.values[:-1] - 1e-9).all()
    h = pd.read_parquet(run / "handoffs.parquet")
    assert (h.kind == "handoff").sum() > 0 and (h.kind == "attach").sum() > 10
    assert not h.duplicated().any()
    summary = json.loads((run / "run.json").read_text())["summary"]["radio"]
    assert summary["handoffs"] == (h.kind == "handoff").sum()
    assert summary["attaches"] == (h.kind == "attach").sum()
    assert summary["completed_link_windows"] == ((windows.cell == -1) & ~windows.censored).sum()
    cells = pd.read_parquet(run / "cells.parquet")
    assert list(cells.id) == ["west", "east", "rsu-center"]


@pytest.mark.slow
def test_radio_traces_are_deterministic(tmp_path):
    _grid_with_radio(tmp_path, "a")
    _grid_with_radio(tmp_path, "b")
    _grid_with_radio(tmp_path, "c", "seed=5")
    for table in ("radio", "handoffs", "link_windows", "cells", "mobility"):
        a = (tmp_path / "a" / f"{table}.parquet").read_bytes()
        assert a == (tmp_path / "b" / f"{table}.parquet").read_bytes(), table
    assert (tmp_path / "a" / "radio.parquet").read_bytes() != (tmp_path / "c" / "radio.parquet").read_bytes()


class _Uploader:
    """A stand-in for the learning layer: every 5 s, each connected vehicle uploads 2 MB."""

    name = "uploader"

    def __init__(self, engine):
        self.results = []

    def attach(self, engine):
        radio = engine.layer("radio")
        env = engine.env
        self.windows = []
        predictor = radio.history_predictor()

        def one(vehicle):
            self.results.append((yield radio.transfer(vehicle, 2_000_000, "up", timeout_s=30)))

        def rounds():
            while True:
                yield env.timeout(5.0)
                for vehicle in engine.layer("mobility").current.ids[:6]:
                    env.process(one(str(vehicle)))
                    window = radio.open_window(str(vehicle))
                    self.windows.append((env.now, window, predictor.remaining_s(str(vehicle), env.now)))

        env.process(rounds())


def test_transfers_through_the_live_radio(tmp_path):
    holder = {}

    def factory(engine):
        holder["u"] = _Uploader(engine)
        return holder["u"]

    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    run_scenario(load_scenario(path, ["learning=null"]), source=path, out=tmp_path / "u", quiet=True,
                 extra_layers=[factory])
    results = holder["u"].results
    assert len(results) > 20
    ok = [r for r in results if r.ok]
    assert len(ok) > 10
    peak_rate = 7.4 * 40e6 * 0.2  # max spectral efficiency x uplink share of the macro
    for r in ok:
        assert r.t_end - r.t_start >= 8 * 2_000_000 / peak_rate - 1e-9
        assert r.bytes_moved == pytest.approx(2_000_000)
    for r in results:
        assert r.reason in (None, "left_network", "radio_link_failure", "out_of_coverage", "timeout")
    live = [(t, w, p) for t, w, p in holder["u"].windows if w is not None]
    assert len(live) > 10
    for t, w, remaining in live:
        assert w["start"] <= t and w["elapsed_s"] == pytest.approx(t - w["start"])
        assert w["mean_rate_bps"] > 0 and remaining >= 0


@pytest.mark.parametrize("override, field", [
    ("radio.cells.0.bandwidth_mhz=-20", "radio.cells.0.bandwidth_mhz"),
    ("radio.step_s=0.3", "step_s"),
    ("radio.cells.0.scenario=rma", "radio.cells.0.scenario"),
    ("radio.handoff.ttt=0.1", "radio.handoff.ttt"),
])
def test_bad_radio_input_is_one_line(override, field):
    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    result = CliRunner().invoke(app, ["validate", str(path), "--set", override])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and field in line


def test_hex_sites_far_from_every_road_are_left_out(grid_small):
    """A lattice much wider than the 600 m grid: only the sites within the given distance of an
    edge stay (checked against a brute-force point-to-segment distance), named as before."""
    import sumolib

    from cosim.mobility.build import network_file, prepare_inputs
    from cosim.radio.cells import build_cells, hex_sites

    lattice = ["radio.cells={hex: {isd_m: 200, rings: 4, center: [300, 300], sectors: 1, "
               "max_road_distance_m: 150}}"]
    sc = load_scenario(grid_small, lattice)
    net = sumolib.net.readNet(str(network_file(prepare_inputs(sc.mobility, sc.seed, sc.duration_s))))
    cells = build_cells(sc.radio, net)
    segments = [(np.array(a), np.array(b)) for e in net.getEdges()
                for a, b in zip(e.getShape(), e.getShape()[1:], strict=False)]

    def road_distance(p):
        best = math.inf
        for a, b in segments:
            t = np.clip(np.dot(p - a, b - a) / max(np.dot(b - a, b - a), 1e-12), 0, 1)
            best = min(best, float(np.linalg.norm(p - (a + t * (b - a)))))
        return best

    sites = hex_sites((300.0, 300.0), 200.0, 4)
    kept = [f"macro{i}" for i, s in enumerate(sites) if road_distance(np.array(s)) <= 150.0]
    assert 0 < len(kept) < len(sites) and list(cells.ids) == kept


def test_hex_and_intersection_generators(sf_downtown):
    import sumolib

    from cosim.mobility.build import network_file, prepare_inputs
    from cosim.radio.cells import build_cells

    sc = load_scenario(sf_downtown)
    net = network_file(prepare_inputs(sc.mobility, sc.seed, sc.duration_s))
    cells = build_cells(sc.radio, sumolib.net.readNet(str(net)))
    kinds = list(cells.kind)
    assert kinds.count("macro") == 21 and kinds.count("small") == 12  # 7 sites x 3 sectors
    macro = np.flatnonzero(np.array(kinds) == "macro")
    sites = np.unique(np.stack([cells.x[macro], cells.y[macro]], axis=1), axis=0)
    assert len(sites) == 7
    centre = sites[np.argmin(np.hypot(*(sites - sites.mean(0)).T))]
    d = np.hypot(*(sites - centre).T)
    assert np.allclose(np.sort(d)[1:], 500.0)  # a ring at the inter-site distance
    for site in sites:  # three sectors per site, boresights 120 degrees apart
        at = macro[(cells.x[macro] == site[0]) & (cells.y[macro] == site[1])]
        assert sorted(cells.azimuth_deg[at]) == [60.0, 180.0, 300.0]
    assert np.isnan(cells.azimuth_deg[np.array(kinds) == "small"]).all()  # small cells: omni
    small = np.flatnonzero(np.array(kinds) == "small")
    xy = np.stack([cells.x[small], cells.y[small]], axis=1)
    gaps = [math.dist(p, q) for i, p in enumerate(xy) for q in xy[i + 1:]]
    assert min(gaps) >= 250.0
