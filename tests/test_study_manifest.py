"""A compare's or onboarding's folder knows its own files by its manifest: each file at its top
with its SHA-256, and the files it was writing when it stopped (a kill between writing a table
and listing it leaves the study resumable)."""

from __future__ import annotations

import json
from pathlib import Path

from cosim.destinations import foreign_in_study, study_writes, write_study_manifest

RUNS = ("recordings", "runs")


def _study(tmp_path: Path) -> Path:
    out = tmp_path / "cmp"
    (out / "runs").mkdir(parents=True)
    (out / "compare.json").write_text("{}")
    write_study_manifest(out, "compare")
    return out


def test_a_file_the_study_was_writing_when_it_stopped_is_its_own(tmp_path):
    out = _study(tmp_path)
    write_study_manifest(out, "compare", pending=["pairs.csv"])  # as study_writes begins
    (out / "pairs.csv").write_text("half a tab")  # killed here
    assert foreign_in_study(out, "compare", RUNS) == []
    with study_writes(out, "compare", ["pairs.csv"]):
        (out / "pairs.csv").write_text("the whole table")
    assert "pending" not in json.loads((out / ".cosim-output.json").read_text())
    (out / "pairs.csv").write_text("MY EDIT")
    assert foreign_in_study(out, "compare", RUNS) == ["pairs.csv"]


def test_only_what_a_run_leaves_is_taken_for_the_studys_runs(tmp_path):
    out = _study(tmp_path)
    (out / "runs" / ".r.lock").write_text("")  # a crashed run's lock
    (out / "runs" / "x.partial").mkdir()  # a run stopped before its run.json
    assert foreign_in_study(out, "compare", RUNS) == []
    fake = out / "runs" / "fake"
    fake.mkdir()
    (fake / "run.json").write_text(json.dumps({"status": "complete"}))
    (fake / "ch1.tex").write_text("thesis")
    (out / "runs" / ".y.lock").write_text("mydata")
    assert foreign_in_study(out, "compare", RUNS) == ["runs/.y.lock", "runs/fake/ch1.tex"]


def test_another_studys_or_no_manifest_is_no_study(tmp_path):
    out = _study(tmp_path)
    assert foreign_in_study(out, "onboarding", RUNS) is None
    (out / ".cosim-output.json").unlink()
    assert foreign_in_study(out, "compare", RUNS) is None
