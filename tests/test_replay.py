"""Replay: a recorded mobility trace drives the radio exactly as SUMO did."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.runner import run_scenario
from cosim.scenario_loader import load_scenario


def _run(path: Path, out: Path, *overrides: str):
    """grid_small without its learning section: replay is about mobility and radio."""
    sc = load_scenario(path, ["learning=null", *overrides])
    return run_scenario(sc, source=path, out=out, quiet=True)


def test_replay_equals_live(grid_small, tmp_path):
    live = _run(grid_small, tmp_path / "live", "mobility.warmup_s=20")
    replay = _run(grid_small, tmp_path / "replay", "mobility.warmup_s=20",
                  f"mobility.replay={tmp_path / 'live'}")
    assert replay.info["layers"]["mobility"].startswith("replay of")
    assert "sumo.log" not in {p.name for p in (tmp_path / "replay").iterdir()}
    tables = sorted(p.name for p in (tmp_path / "live").glob("*.parquet"))
    assert {"mobility.parquet", "radio.parquet", "handoffs.parquet",
            "link_windows.parquet"} <= set(tables)
    assert pq.read_table(tmp_path / "live" / "handoffs.parquet").num_rows > 0
    for name in tables:
        assert (tmp_path / "live" / name).read_bytes() == (tmp_path / "replay" / name).read_bytes(), name
    assert live.info["summary"]["radio"] == replay.info["summary"]["radio"]


def test_replay_of_a_sparse_trace_is_refused(grid_small, tmp_path):
    _run(grid_small, tmp_path / "live", "output.mobility_period_s=2", "duration_s=30")
    result = CliRunner().invoke(app, ["run", str(grid_small), "--out", str(tmp_path / "r"),
                                      "--set", "learning=null",
                                      "--set", f"mobility.replay={tmp_path / 'live'}",
                                      "--set", "duration_s=30"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "mobility.replay" in line and "every SUMO step" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("problem", ["short", "corrupt", "missing", "not_a_trace"])
def test_bad_replay_input_is_one_line(grid_small, tmp_path, problem):
    trace = tmp_path / "mobility.parquet"
    if problem == "short":
        _run(grid_small, tmp_path / "live", "duration_s=30")
        trace = tmp_path / "live" / "mobility.parquet"
    elif problem == "corrupt":
        trace.write_bytes(b"PAR1 this is not parquet")
    elif problem == "not_a_trace":
        pq.write_table(pq.read_table(_any_parquet(grid_small, tmp_path)).select([0]), trace)
    result = CliRunner().invoke(app, ["run", str(grid_small), "--out", str(tmp_path / "r"),
                                      "--set", "learning=null",
                                      "--set", f"mobility.replay={trace}"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and "mobility.replay" in line
    assert not (tmp_path / "r").exists()


def _any_parquet(grid_small: Path, tmp_path: Path) -> Path:
    _run(grid_small, tmp_path / "other", "duration_s=10")
    return tmp_path / "other" / "cells.parquet"
