"""cosim compare --backend ray: the same summary as the local backend; one-line errors without Ray."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_compare import LEARNING, _sets
from typer.testing import CliRunner

import cosim.compare
from cosim.cli import app
from cosim.compare_job import RunJob
from cosim.scenario_loader import ScenarioSpec

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

GRID_SMALL = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
GRID = ["--policies", "availability_aware,random", "--seeds", "0", "--jobs", "2", "-q"]
WALL_CLOCK = ["wall_time_s"]  # differs run to run, whatever the backend


def _compare(out: Path, *extra: str) -> list[str]:
    """Run compare through the CLI; the run folders in the order on_done reported them."""
    real = cosim.compare.run_compare
    finished: list[str] = []

    def spy(*args, on_done, **kwargs):
        def record(run: str) -> None:
            finished.append(run)
            on_done(run)

        return real(*args, on_done=record, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cosim.compare, "run_compare", spy)
        result = CliRunner().invoke(app, ["compare", str(GRID_SMALL), "--out", str(out), *GRID,
                                          *extra, *_sets(LEARNING)])
    assert result.exit_code == 0, result.output
    return finished


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    ray = pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("compare-ray")
    local = _compare(root / "local")
    on_ray = _compare(root / "ray", "--backend", "ray")
    assert not ray.is_initialized()  # compare started its Ray instance, so it shut it down
    return root, local, on_ray


def test_ray_backend_gives_the_local_summary(both):
    root, _, _ = both
    tables = {b: pd.read_parquet(root / b / "summary.parquet") for b in ("local", "ray")}
    for backend, table in tables.items():
        assert len(table) == 2 and (table.status == "complete").all()
        assert all(Path(p).parent == root / backend / "runs" for p in table.run_dir)
        table["run_dir"] = [Path(p).name for p in table.run_dir]
    columns = [c for c in tables["local"].columns if c not in WALL_CLOCK]
    assert columns == [c for c in tables["ray"].columns if c not in WALL_CLOCK]
    pd.testing.assert_frame_equal(tables["local"][columns], tables["ray"][columns], check_exact=True)
    csv = {b: pd.read_csv(root / b / "summary.csv").drop(columns=[*WALL_CLOCK, "run_dir"])
           for b in tables}
    pd.testing.assert_frame_equal(csv["local"], csv["ray"], check_exact=True)
    for backend in tables:
        assert json.loads((root / backend / "compare.json").read_text())["backend"] == backend


def test_ray_backend_records_before_replaying_and_reports_each_run(both):
    root, local, on_ray = both
    for backend, finished in (("local", local), ("ray", on_ray)):
        assert finished[0] == str(root / backend / "recordings" / "seed-0")
        assert sorted(finished[1:]) == [str(root / backend / "runs" / f"{p}-sync-seed0")
                                        for p in ("availability_aware", "random")]


def test_a_failing_ray_worker_names_its_run_and_keeps_a_ray_it_did_not_start(tmp_path):
    ray = pytest.importorskip("ray")
    from cosim.errors import InputError
    from cosim.ray_backend import RayRunner

    (tmp_path / "file").write_text("")
    tiny = ScenarioSpec.read(GRID_SMALL, ["learning=null", "duration_s=5"])
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        with RayRunner(jobs=1) as runner:
            with pytest.raises(InputError, match=r"missing\.yaml: duration_s: .*\(run .*bad-scenario\)"):
                runner.run([RunJob(ScenarioSpec({"name": "x"}, tmp_path / "missing.yaml"),
                                   str(tmp_path / "bad-scenario"), 1)], None)
            out = tmp_path / "file" / "run"  # a folder under a file: bad input, named as such
            with pytest.raises(InputError, match=re.escape(f"is a file, not a folder (run {out})")):
                runner.run([RunJob(tiny, str(out), 1)],
                           None)
            out = tmp_path / "run"  # zero torch threads: an internal failure in the worker
            with pytest.raises(RuntimeError, match=re.escape(f"run {out} failed in a Ray worker: ")):
                runner.run([RunJob(tiny, str(out), 0)],
                           None)
        assert ray.is_initialized()
    finally:
        ray.shutdown()


def test_backend_ray_without_ray_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(app, ["compare", str(GRID_SMALL), "--out", str(tmp_path / "c"),
                                      "--backend", "ray", *_sets(LEARNING)])
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and 'pip install -e ".[ray]"' in line
    assert "Traceback" not in result.output and not (tmp_path / "c").exists()


def test_ray_address_needs_the_ray_backend(tmp_path):
    result = CliRunner().invoke(app, ["compare", str(GRID_SMALL), "--out", str(tmp_path / "c"),
                                      "--ray-address", "auto", *_sets(LEARNING)])
    assert result.exit_code == 2 and result.stderr.strip() == "error: --ray-address: only with --backend ray"
