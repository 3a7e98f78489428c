"""cosim export: every format round-trips to the original tables."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cosim.analysis.export import _nan_as_null, read_exported
from cosim.cli import app
from cosim.runner import run_scenario
from cosim.scenario_loader import load_scenario

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    out = tmp_path_factory.mktemp("export") / "run"
    run_scenario(load_scenario(path, ["duration_s=60", "learning=null"]), source=path, out=out, quiet=True)
    return out


@pytest.mark.parametrize("fmt, suffix", [("csv", ".csv"), ("json", ".jsonl"),
                                         ("parquet", ".parquet")])
def test_export_round_trips(run_dir, tmp_path, fmt, suffix):
    out = tmp_path / fmt
    result = CliRunner().invoke(app, ["export", str(run_dir), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    originals = sorted(run_dir.glob("*.parquet"))
    assert {p.stem for p in originals} == {"cells", "radio", "handoffs", "link_windows", "mobility"}
    schemas = json.loads((out / "schema.json").read_text())
    for path in originals:
        original = pq.read_table(path)
        back = read_exported(out / f"{path.stem}{suffix}", original.schema)
        assert back.num_rows == original.num_rows > 0
        expected = _nan_as_null(original) if fmt == "json" else original
        assert back.equals(expected), path.stem
        assert [c["name"] for c in schemas[path.stem]] == original.column_names
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_nan_becomes_null_in_json():
    import pyarrow as pa

    table = pa.table({"x": [1.0, float("nan")]})
    assert pc.is_null(_nan_as_null(table).column("x")).to_pylist() == [False, True]


def test_export_refuses_bad_input(run_dir, tmp_path):
    bad = CliRunner().invoke(app, ["export", str(run_dir), "--format", "xlsx"])
    assert bad.exit_code == 2 and "--format" in bad.stderr
    missing = CliRunner().invoke(app, ["export", str(tmp_path)])
    assert missing.exit_code == 2 and "run.json" in missing.stderr
