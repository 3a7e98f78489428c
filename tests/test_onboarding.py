"""cosim onboarding on grid_small: pre-trained once per arriving task, every method from it,
gated and ideal connectivity, a figure and a table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from cosim.cli import app

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

GRID = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
SETS = ["duration_s=60", "learning.enabled=true", "clients.count=3", "scheduling.per_round=2",
        "aggregation.round_deadline_s=10", "learning.data.synthetic.segments=5",
        "learning.data.synthetic.frames=2", "learning.data.clients=3",
        "learning.data.heldout_segments=2", "learning.local.batch_size=2",
        "onboarding.arriving_tasks=[det2d]", "onboarding.methods=[FedAdapt,NTA+CA]",
        "onboarding.rounds=2", "onboarding.pretrain_rounds=2"]


def test_onboarding_study_end_to_end(tmp_path):
    from matplotlib.image import imread

    out = tmp_path / "onb"
    args = ["onboarding", str(GRID), "--out", str(out), "--jobs", "2", "-q"]
    result = CliRunner().invoke(app, [*args, *sum((["--set", s] for s in SETS), [])])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "table.csv")
    assert len(table) == 2 * 2  # methods x connectivity
    assert set(table.method) == {"FedAdapt", "NTA+CA"} and set(table.connectivity) == {"gated", "ideal"}
    assert "| gated | det2d (mAP50) | FedAdapt |" in result.output
    for conn in ("gated", "ideal"):
        assert imread(out / f"fig4_{conn}.png")[..., :3].std() > 0.05
    # once per architecture: FedAdapt's (with the task adapter), NTA's (without)
    pretrained = {p.name: p for p in (out / "pretrained").iterdir()}
    assert sorted(pretrained) == ["det2d-arrives-seed0", "det2d-arrives-seed0-nta"]
    starts = {name: torch.load(p / "global_modules.pt", weights_only=True)
              for name, p in pretrained.items()}
    assert any(k.startswith("task_adapter.") for k in starts["det2d-arrives-seed0"])
    assert not any(k.startswith("task_adapter.") for k in starts["det2d-arrives-seed0-nta"])
    for start in starts.values():
        assert not any(k.startswith("heads.det2d.") for k in start)
    info = json.loads((out / "onboarding.json").read_text())
    assert len(info["runs"]) == 4
    for run in info["runs"]:
        run_info = json.loads((Path(run["path"]) / "run.json").read_text())
        learning = run_info["scenario"]["learning"]
        name = "det2d-arrives-seed0" + ("" if run["method"] == "FedAdapt" else "-nta")
        start = starts[name]
        assert learning["init_modules"] == str(pretrained[name] / "global_modules.pt")
        assert learning["model"]["task_adapter"] == (run["method"] == "FedAdapt")
        assert learning["balancing"]["method"] == "cagrad"
        assert run_info["scenario"]["clients"]["ideal_connectivity"] == (run["connectivity"] == "ideal")
        final = torch.load(Path(run["path"]) / "global_modules.pt", weights_only=True)
        for key in (k for k in start if k.startswith("heads.seg3d.")):
            assert torch.equal(final[key], start[key])  # learnt tasks stay frozen
        metrics = pd.read_parquet(Path(run["path"]) / "metrics.parquet")
        assert set(metrics.task) == {"det2d"} and sorted(set(metrics["round"])) == [0, 1, 2]
    gated = [r for r in info["runs"] if r["connectivity"] == "gated"]
    handoffs = {(Path(r["path"]) / "handoffs.parquet").read_bytes() for r in gated}
    assert len(handoffs) == 1  # every gated method saw the same connectivity
    assert np.isfinite(table.final_mean).all()
    # moved elsewhere, the study is run again from its kept runs (they name the old place)
    moved = tmp_path / "elsewhere" / "onb"
    moved.parent.mkdir()
    out.rename(moved)
    kept = {p: p.stat().st_mtime_ns for p in moved.glob("**/metrics.parquet")}
    args[args.index(str(out))] = str(moved)
    again = CliRunner().invoke(app, [*args, *sum((["--set", s] for s in SETS), [])])
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in moved.glob("**/metrics.parquet")} == kept
    # with other settings, the kept runs are refused before onboarding.json changes
    before = (moved / "onboarding.json").read_bytes()
    changed = CliRunner().invoke(app, [*args, *sum((["--set", s] for s in
                                                    [*SETS, "onboarding.rounds=3"]), [])])
    assert changed.exit_code == 2 and "another scenario" in changed.output, changed.output
    assert (moved / "onboarding.json").read_bytes() == before
    # a file the study did not write, or one it wrote and the user changed, is never replaced
    for name, text in (("notes.txt", "mine"), ("table.csv", "MY TABLE")):
        (moved / name).write_text(text)
        refused = CliRunner().invoke(app, [*args, *sum((["--set", s] for s in SETS), [])])
        assert refused.exit_code == 2 and name in refused.output, refused.output
        assert (moved / name).read_text() == text
        (moved / name).unlink()


def test_a_users_folder_that_looks_like_a_study_is_not_written(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "onboarding.json").write_text(json.dumps(
        {"scenario": "my.yaml", "overrides": [], "seeds": [0], "onboarding": {},
         "status": "complete", "title": "my notes"}))
    (out / "table.csv").write_text("MY TABLE")
    result = CliRunner().invoke(app, ["onboarding", str(GRID), "--out", str(out), "-q",
                                      *sum((["--set", s] for s in SETS), [])])
    assert result.exit_code == 2 and "not a cosim onboarding folder" in result.output, result.output
    assert (out / "table.csv").read_text() == "MY TABLE" and "my notes" in (
        out / "onboarding.json").read_text()


def test_onboarding_needs_learning(tmp_path):
    result = CliRunner().invoke(app, ["onboarding", str(GRID), "--out", str(tmp_path / "o"),
                                      "--set", "learning=null"])
    assert result.exit_code == 2 and "learning" in result.stderr


@pytest.mark.parametrize("twice", ["onboarding.methods=[NTA,NTA]",
                                   "onboarding.arriving_tasks=[det2d,det2d]",
                                   "onboarding.connectivity=[ideal,ideal]"])
def test_a_study_cell_named_twice_is_refused_before_the_folder(tmp_path, twice):
    """One run would be counted twice in the curves and the table."""
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["onboarding", str(GRID), "--out", str(out),
                                      *[a for s in [*SETS, twice] for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and twice.split("=")[0] in lines[0] and "more than once" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("setting", ["learning.init_modules=START",
                                     "learning.frozen_modules=[heads.det2d]",
                                     "learning.balancing.method=gradnorm",
                                     "learning.model.task_adapter=false",
                                     "learning.model.tasks=[seg3d]"])
def test_a_setting_the_study_makes_per_run_is_refused_not_replaced(tmp_path, setting):
    """Each run's start, frozen heads, architecture and balancing come from its method."""
    out, start = tmp_path / "o", tmp_path / "start.pt"
    torch.save({"heads.det2d.weight": torch.zeros(2)}, start)
    result = CliRunner().invoke(app, ["onboarding", str(GRID), "--out", str(out), *[
        a for s in [*SETS, setting.replace("START", str(start))] for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and setting.split("=")[0] in lines[0] and "remove it" in lines[0], lines
    assert not out.exists()


def test_a_data_split_that_leaves_a_client_empty_is_refused_before_the_study_folder(tmp_path):
    """Each seed draws its own data split: one that gives a client no frames (seed 3 here) is
    said in one line before the folder, not after the first seed's runs."""
    out = tmp_path / "o"
    sets = [*SETS, "learning.data.partition=dirichlet", "learning.data.dirichlet_alpha=0.05",
            "learning.data.heldout_segments=1"]
    result = CliRunner().invoke(app, ["onboarding", str(GRID), "--out", str(out), "--seeds", "1,3",
                                      *[a for s in sets for a in ("--set", s)]])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "dirichlet_alpha" in lines[0] and "data seed 3" in lines[0], lines
    assert not out.exists()


def test_an_interrupted_study_is_finished_by_the_same_command(tmp_path, monkeypatch):
    """Stopped after its recordings, onboarding.json says interrupted; the same command in the
    same folder carries on from the kept recordings and completes."""
    import cosim.onboarding as onboarding

    real, stages = onboarding.run_jobs, []

    def stopped_after_recording(jobs, *args, **kwargs):
        stages.append(len(jobs))
        if len(stages) == 2:
            raise KeyboardInterrupt
        return real(jobs, *args, **kwargs)

    out = tmp_path / "onb"
    args = ["onboarding", str(GRID), "--out", str(out), "-q", *sum((["--set", s] for s in SETS), [])]
    monkeypatch.setattr(onboarding, "run_jobs", stopped_after_recording)
    stopped = CliRunner().invoke(app, args)
    assert stopped.exit_code == 130, stopped.output
    assert json.loads((out / "onboarding.json").read_text())["status"] == "interrupted"
    recording = next((out / "recordings").iterdir())
    kept = (recording / "run.json").stat().st_mtime_ns
    monkeypatch.setattr(onboarding, "run_jobs", real)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads((out / "onboarding.json").read_text())["status"] == "complete"
    assert (recording / "run.json").stat().st_mtime_ns == kept
