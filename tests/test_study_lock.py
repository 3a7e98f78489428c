"""One study at a time writes a compare or onboarding folder: a second one there is refused while
the first holds it, whatever it is told (--overwrite, --resume), and `cosim status` tells a study
that is running from one whose process is gone."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app

REPO = Path(__file__).resolve().parent.parent
GRID = REPO / "scenarios" / "grid_small.yaml"
STUDIES = {
    "compare": ("compare", str(GRID), "--set", "learning.enabled=true", "--set", "duration_s=30",
                "--policies", "random", "--seeds", "0", "--out"),
    "onboarding": ("onboarding", str(GRID), "--set", "learning.enabled=true", "--out"),
}


@contextlib.contextmanager
def _held(folder: Path):
    """Hold ``folder`` as a running study does: the system's lock on the folder itself."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # the scenario's grid and data are checked before the folder
@pytest.mark.parametrize(("study", "flag"), [("compare", None), ("compare", "--overwrite"),
                                             ("compare", "--resume"), ("onboarding", None)])
def test_a_study_is_refused_while_another_holds_its_folder(tmp_path, study, flag):
    """Refused before any progress line. (onboarding has no --overwrite or --resume: the same
    command finishes an earlier one.)"""
    out = tmp_path / "s"
    out.mkdir()
    with _held(out):
        result = CliRunner().invoke(app, [*STUDIES[study], str(out), *([flag] if flag else [])])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert f"another cosim {study} is writing" in lines[0], lines
    assert _listing(out) == {}


def _study(folder: Path, marker: str, status: str) -> Path:
    folder.mkdir()
    (folder / marker).write_text(json.dumps({"status": status}))
    return folder


@pytest.mark.parametrize("marker", ["compare.json", "onboarding.json"])
def test_status_tells_a_running_study_from_one_whose_process_is_gone(tmp_path, marker):
    gone = _study(tmp_path / "gone", marker, "running")
    live = _study(tmp_path / "live", marker, "running")
    _study(tmp_path / "done", marker, "complete")
    _study(tmp_path / "odd", marker, "finished?")
    kind = marker.removesuffix(".json")
    with _held(live):
        result = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: (line.split()[0], line.split()[2]) for line in result.output.splitlines()}
    assert lines == {str(gone): ("crashed", f"({kind})"), str(live): ("running", f"({kind})"),
                     str(tmp_path / "done"): ("complete", f"({kind})"),
                     str(tmp_path / "odd"): ("unknown", f"({kind})")}


def test_status_calls_a_study_that_has_written_nothing_yet_running(tmp_path):
    """In a study's first seconds its folder holds no record yet, only its lock."""
    starting = tmp_path / "cmp"
    starting.mkdir()
    with _held(starting):
        result = CliRunner().invoke(app, ["status", str(starting)])
    assert result.exit_code == 0, result.output
    assert result.output.split()[:2] == ["running", str(starting)], result.output
    assert CliRunner().invoke(app, ["status", str(starting)]).exit_code == 2  # let go: nothing


@pytest.mark.parametrize("command", [["report"], ["export", "--format", "csv"]])
def test_a_folder_being_written_is_not_read_half_way(tmp_path, command):
    """A run replaced by `run --overwrite` when it completes, or a study running there, could
    change or vanish while report or export reads it: refused in one line, nothing written."""
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text('{"status": "complete", "seed": 0, "scenario": {"name": "s"}}')
    lock = tmp_path / ".r.lock"
    lock.write_bytes(b"cosim run lock\n")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(app, [command[0], str(run), *command[1:]])
    finally:
        os.close(fd)
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "a cosim run is writing this folder now" in lines[0], lines
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]


def test_a_study_being_written_is_not_reported_half_way(tmp_path):
    study = _study(tmp_path / "c", "compare.json", "complete")
    with _held(study):
        result = CliRunner().invoke(app, ["report", str(study)])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "a cosim compare or onboarding is writing this folder now" in lines[0], lines
    assert sorted(p.name for p in study.iterdir()) == ["compare.json"]
