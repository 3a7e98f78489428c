"""Engine pieces the task-onboarding study needs: a saved global model to start from, frozen
modules, evaluation of chosen tasks, and ideal connectivity."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from cosim.cli import app
from cosim.runner import run_scenario
from cosim.scenario_loader import load_scenario

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

GRID = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
BASE = ["duration_s=40", "learning.enabled=true", "clients.count=3", "scheduling.per_round=3",
        "scheduling.policy=all_connected", "aggregation.round_deadline_s=10",
        "learning.data.synthetic.segments=5", "learning.data.synthetic.frames=2",
        "learning.data.clients=3", "learning.data.heldout_segments=2",
        "learning.local.batch_size=2"]


def _run(out: Path, *extra: str):
    return run_scenario(load_scenario(GRID, [*BASE, *extra]), source=GRID, out=out, quiet=True)


@pytest.fixture(scope="module")
def three_task_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("onb") / "pre"
    result = _run(out, "learning.model.tasks=[seg3d,det3d,pan2d]", "clients.ideal_connectivity=true",
                  "aggregation.max_rounds=2")
    assert result.status == "complete"
    return out


def test_ideal_connectivity_completes_every_selected_client(three_task_run):
    p = pq.read_table(three_task_run / "participation.parquet").to_pandas()
    assert len(p) == 2 * 3 and (p.outcome == "completed").all()
    assert (p.t_download_end == p.selected_at).all()  # nothing on the air
    assert (p.vehicle.str.startswith("client")).all()
    info = json.loads((three_task_run / "run.json").read_text())
    assert info["status"] == "complete" and info["sim_time_s"] < 40  # ends at max_rounds
    state = torch.load(three_task_run / "global_modules.pt", weights_only=True)
    assert any(k.startswith("heads.pan2d.") for k in state)
    assert not any(k.startswith("heads.det2d.") for k in state)


def test_onboarding_starts_from_the_saved_model_and_keeps_frozen_modules(three_task_run, tmp_path):
    saved = torch.load(three_task_run / "global_modules.pt", weights_only=True)
    frozen = ["heads.seg3d", "heads.det3d", "heads.pan2d"]
    result = _run(tmp_path / "onb", f"learning.init_modules={three_task_run / 'global_modules.pt'}",
                  f"learning.frozen_modules=[{','.join(frozen)}]", "learning.model.task_adapter=false",
                  "clients.ideal_connectivity=true", "aggregation.max_rounds=2",
                  "learning.evaluation.tasks=[det2d]")
    assert result.info["summary"]["learning"]["init_modules_skipped"] == ["task_adapter"]
    final = torch.load(tmp_path / "onb" / "global_modules.pt", weights_only=True)
    for key, value in saved.items():
        if key.startswith(tuple(f"{f}." for f in frozen)):
            assert torch.equal(final[key], value), f"{key} changed although frozen"
    changed = [k for k in saved if k.startswith("peft.") and not torch.equal(final[k], saved[k])]
    assert changed, "the modality adapters were fine-tuned"
    assert not any(k.startswith("task_adapter.") for k in final)
    metrics = pq.read_table(tmp_path / "onb" / "metrics.parquet").to_pandas()
    assert set(metrics.task) == {"det2d"} and metrics["round"].max() == 2
    part = pq.read_table(tmp_path / "onb" / "participation.parquet").to_pandas()
    full = _run(tmp_path / "full", "clients.ideal_connectivity=true", "aggregation.max_rounds=1")
    assert full.status == "complete"
    full_bytes = pq.read_table(tmp_path / "full" / "participation.parquet").column("bytes_up")
    assert part.bytes_up.iloc[0] < full_bytes[0].as_py()  # frozen heads are not uploaded


@pytest.mark.parametrize("override, field", [
    ("learning.frozen_modules=[heads.flow]", "frozen_modules"),
    ("learning.init_modules=missing.pt", "learning.init_modules"),
])
def test_bad_onboarding_input_is_one_line(override, field):
    result = CliRunner().invoke(app, ["validate", str(GRID), *sum((["--set", o] for o in BASE), []),
                                      "--set", override])
    assert result.exit_code == 2 and field in result.stderr


def test_a_corrupt_module_file_is_one_line(tmp_path):
    bad = tmp_path / "global_modules.pt"
    bad.write_bytes(b"not a torch file")
    result = CliRunner().invoke(app, ["run", str(GRID), "--out", str(tmp_path / "r"),
                                      *sum((["--set", o] for o in BASE), []),
                                      "--set", f"learning.init_modules={bad}"])
    assert result.exit_code == 2, result.output
    assert "learning.init_modules" in result.stderr and "\n" not in result.stderr.strip()
