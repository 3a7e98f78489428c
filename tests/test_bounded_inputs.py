"""Inputs that look like files or traces but would hang, exhaust memory or be silently wrong:
kernel virtual files, sparse giants, traces declaring millions of rows, traces shifted or thinned
against their own run.json, oracle windows without provenance, integers beyond Python's limits,
and `--out .`. Each is exit 2 and one line, before any run folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cosim.cli import app

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
GRID = REPO / "scenarios" / "grid_small.yaml"
QUICK = ["duration_s=20", "learning=null"]


def _refused(tmp_path: Path, *sets: str, scenario: Path = GRID) -> str:
    out = tmp_path / "r"
    result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(out), "-q",
                                      *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1, result.output
    assert not out.exists() and not (tmp_path / "r.partial").exists()
    return lines[0]


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "live"
    result = CliRunner().invoke(app, ["run", str(GRID), "--out", str(out), "-q",
                                      *[a for s in ("duration_s=40", "learning=null") for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("field", ["mobility.additional", "radio.channel.buildings",
                                   "learning.model.checkpoint", "mobility.replay"])
def test_a_kernel_virtual_file_is_refused_unread(tmp_path, field):
    link = tmp_path / "innocent.xml"
    link.symlink_to("/proc/self/status")
    value = f"[{link}]" if field == "mobility.additional" else str(link)
    line = _refused(tmp_path, *QUICK, f"{field}={value}")
    assert "virtual file" in line


PATH_FIELDS = ["mobility.additional", "mobility.replay", "mobility.sumocfg", "radio.channel.buildings",
               "learning.init_modules", "learning.model.checkpoint", "learning.data.root",
               "scheduling.oracle_windows"]


@pytest.mark.parametrize("field", PATH_FIELDS)
@pytest.mark.parametrize("shape", ["loop", "too_long"])
def test_a_link_loop_or_an_over_long_path_is_one_line(tmp_path, field, shape):
    if shape == "loop":
        (tmp_path / "a").symlink_to(tmp_path / "b")
        (tmp_path / "b").symlink_to(tmp_path / "a")
        target = str(tmp_path / "a")
    else:  # every component legal, the whole beyond the system's limit
        target = str(tmp_path / "/".join(["d" * 200] * 30))
    value = f"[{target}]" if field == "mobility.additional" else target
    line = _refused(tmp_path, *QUICK, f"{field}={value}")
    assert field in line and ("loop of symbolic links" in line or "too long" in line), line


def test_a_sparse_giant_is_refused_by_its_size(tmp_path):
    big = tmp_path / "big.add.xml"
    with big.open("wb") as f:
        f.truncate(9 * 2**30)  # sparse: no disk used
    line = _refused(tmp_path, *QUICK, f"mobility.additional=[{big}]")
    assert "bytes, more than any input" in line


def test_a_trace_declaring_more_rows_than_a_replay_holds_is_refused(tmp_path, recording, monkeypatch):
    import cosim.mobility.replay as replay

    monkeypatch.setattr(replay, "MAX_TRACE_ROWS", 10)
    line = _refused(tmp_path, *QUICK, f"mobility.replay={recording}")
    assert "declares" in line and "rows" in line


@pytest.mark.parametrize("shift", [100.0, 1e9])
def test_a_trace_shifted_by_whole_steps_is_refused(tmp_path, recording, shift):
    folder = tmp_path / "shifted"
    shutil.copytree(recording, folder)
    table = pq.read_table(folder / "mobility.parquet")
    pq.write_table(table.set_column(0, "t", pc.add(table.column("t"), shift)), folder / "mobility.parquet")
    line = _refused(tmp_path, *QUICK, f"mobility.replay={folder}")
    assert "run.json says the run lasted" in line
    (folder / "run.json").unlink()  # without it, the run's own span decides
    line = _refused(tmp_path, *QUICK, f"mobility.replay={folder}")
    assert "after the run's" in line


def test_a_thinned_trace_beside_its_original_run_json_is_refused(tmp_path, recording):
    folder = tmp_path / "thinned"
    shutil.copytree(recording, folder)
    table = pq.read_table(folder / "mobility.parquet")
    keep = pc.equal(pc.bit_wise_and(pc.cast(table.column("t"), pa.int64()), 1), 0)
    pq.write_table(table.filter(keep), folder / "mobility.parquet")  # every 2 s; run.json says 1 s
    line = _refused(tmp_path, *QUICK, f"mobility.replay={folder}")
    assert "every SUMO step" in line


ORACLE = ["learning.enabled=true", "duration_s=20", "scheduling.policy=oracle",
          "learning.data.synthetic.segments=4", "learning.data.synthetic.frames=2",
          "learning.data.clients=2", "clients.count=2", "learning.data.heldout_segments=2"]


@pytest.fixture(scope="module")
def oracle_recording(tmp_path_factory) -> Path:
    """A run of ORACLE's connectivity (same seed, length, traffic, radio and clients)."""
    out = tmp_path_factory.mktemp("rec") / "oracle"
    sets = ("duration_s=20", "clients.count=2", "learning=null")
    result = CliRunner().invoke(app, ["run", str(GRID), "--out", str(out), "-q",
                                      *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    return out


def _resealed(folder: Path) -> None:
    """run.json given the windows' new SHA-256: a folder forged to look like a run's own."""
    from cosim.bounded_read import file_sha256

    info = json.loads((folder / "run.json").read_text())
    info["trace_sha256"]["link_windows"] = file_sha256(folder / "link_windows.parquet")
    (folder / "run.json").write_text(json.dumps(info))


def _edit_run_json(folder: Path, edit) -> None:
    info = json.loads((folder / "run.json").read_text())
    edit(info)
    (folder / "run.json").write_text(json.dumps(info))


PROVENANCE = {  # what is done to a copy of the recording's folder, and what the refusal says
    "no_run_json": (lambda f: (f / "run.json").unlink(), "run.json beside"),
    "run_json_of_a_seed_only": (lambda f: (f / "run.json").write_text('{"seed": 1}'), "status: missing"),
    "seed_true": (lambda f: _edit_run_json(f, lambda i: i["seeds"].update(connectivity=True)),
                  "not an integer"),
    "seed_as_float": (lambda f: _edit_run_json(f, lambda i: i["seeds"].update(connectivity=1.0)),
                      "not an integer"),
    "another_seed": (lambda f: _edit_run_json(f, lambda i: i["seeds"].update(connectivity=2)),
                     "connectivity seed 2"),
    "not_complete": (lambda f: _edit_run_json(f, lambda i: i.update(status="interrupted")),
                     "not complete"),
    "no_sha256": (lambda f: _edit_run_json(f, lambda i: i.pop("trace_sha256")), "trace_sha256"),
    "another_demand": (lambda f: _edit_run_json(
        f, lambda i: i["scenario"]["mobility"]["demand"].update(period_s=1.5)),
        "mobility.demand.period_s differs"),
    "another_length": (lambda f: _edit_run_json(f, lambda i: i["scenario"].update(duration_s=40.0)),
                       "duration_s differs"),
    "another_radio": (lambda f: _edit_run_json(
        f, lambda i: i["scenario"]["radio"]["cells"][0].update(tx_power_dbm=20)),
        "radio.cells differs"),
    "no_cells": (lambda f: (f / "cells.parquet").unlink(), "no cells.parquet"),
    "no_mobility": (lambda f: (f / "mobility.parquet").unlink(), "no mobility.parquet"),
    "edited_under_another_name": (lambda f: (f / "link_windows.parquet").rename(f / "w.parquet"),
                                  "of another name"),
}


@pytest.mark.parametrize("case", sorted(PROVENANCE))
def test_oracle_windows_not_of_a_complete_run_of_this_connectivity_are_refused(
        tmp_path, oracle_recording, case):
    folder = tmp_path / "w"
    shutil.copytree(oracle_recording, folder)
    edit, says = PROVENANCE[case]
    edit(folder)
    windows = folder / ("w.parquet" if case == "edited_under_another_name" else "link_windows.parquet")
    line = _refused(tmp_path, *ORACLE, f"scheduling.oracle_windows={windows}")
    assert "scheduling.oracle_windows" in line and says in line, line


@pytest.mark.parametrize("case", ["vehicles_renamed", "times_shifted_past_the_run",
                                  "ends_past_the_recording", "times_before_zero", "cell_not_in_the_recording",
                                  "times_shifted_within_the_run", "negative_rate", "infinite_rate"])
def test_oracle_windows_about_other_vehicles_times_or_cells_are_refused(tmp_path, oracle_recording, case):
    """Windows in their run's folder, but whose content is not that run's future: the SHA-256
    in run.json tells any change; a folder whose run.json was given the edited windows' SHA-256
    still has its vehicles, times, cells and rates checked."""
    folder = tmp_path / "w"
    shutil.copytree(oracle_recording, folder)
    table = pq.read_table(folder / "link_windows.parquet")
    column, value = {
        "vehicles_renamed": ("vehicle", pc.binary_join_element_wise("zz", table["vehicle"], "")),
        "times_shifted_past_the_run": ("start", pc.add(table["start"], 1e6)),
        "times_before_zero": ("start", pc.subtract(table["start"], 50.0)),
        "cell_not_in_the_recording": ("cell", pa.array([99] * table.num_rows, pa.int32())),
        "times_shifted_within_the_run": ("start", pc.add(table["start"], 5.0)),
        "ends_past_the_recording": ("end", pc.add(table["end"], 1e300)),
        "negative_rate": ("mean_rate_bps", pc.negate(table["mean_rate_bps"])),
        "infinite_rate": ("min_rate_bps", pc.multiply(table["min_rate_bps"], float("inf"))),
    }[case]
    if case in ("times_shifted_past_the_run", "times_shifted_within_the_run"):
        shift = 1e6 if case == "times_shifted_past_the_run" else 5.0
        table = table.set_column(table.schema.get_field_index("end"), "end", pc.add(table["end"], shift))
    table = table.set_column(table.schema.get_field_index(column), column, value)
    pq.write_table(table, folder / "link_windows.parquet")
    if case != "times_shifted_within_the_run":
        _resealed(folder)
    line = _refused(tmp_path, *ORACLE, f"scheduling.oracle_windows={folder / 'link_windows.parquet'}")
    assert "scheduling.oracle_windows" in line
    said = {"vehicles_renamed": "not in its run's mobility trace",
            "times_shifted_past_the_run": "after this run", "times_before_zero": "before the run's 0 s",
            "cell_not_in_the_recording": "cell 99 is not among",
            "times_shifted_within_the_run": "changed since its run wrote it",
            "ends_past_the_recording": "of the run that recorded it",
            "negative_rate": "column 'mean_rate_bps'", "infinite_rate": "column 'min_rate_bps'"}[case]
    assert said in line, line


def test_oracle_windows_of_a_complete_run_of_this_connectivity_are_accepted(tmp_path, oracle_recording):
    result = CliRunner().invoke(app, ["validate", str(GRID), *[a for s in (
        *ORACLE, f"scheduling.oracle_windows={oracle_recording / 'link_windows.parquet'}")
        for a in ("--set", s)]])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("where", ["file", "set"])
def test_an_integer_beyond_pythons_conversion_limit_is_bad_input(tmp_path, where):
    digits = "9" * 5000
    if where == "file":
        scenario = tmp_path / "s.yaml"
        scenario.write_text(GRID.read_text().replace("\nseed: 1\n", f"\nseed: {digits}\n", 1))
        line = _refused(tmp_path, *QUICK, scenario=scenario)
    else:
        line = _refused(tmp_path, *QUICK, f"seed={digits}")
    assert "not a usable value" in line


@pytest.mark.parametrize("out", [".", ""])
def test_the_working_folder_as_out_is_refused_when_not_empty(tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["run", str(GRID), "--out", out, "-q",
                                      *[a for s in QUICK for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    assert "not empty" in result.output and (tmp_path / "notes.txt").read_text() == "mine"


def test_a_staging_name_as_out_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["run", str(GRID), "--out", str(tmp_path / "x.partial"), "-q",
                                      *[a for s in QUICK for a in ("--set", s)]])
    assert result.exit_code == 2 and "staging" in result.output
    assert not (tmp_path / "x.partial").exists()


def test_a_hex_integer_of_thousands_of_digits_is_bad_input(tmp_path):
    line = _refused(tmp_path, *QUICK, "clients.count=0x" + "f" * 5000)
    assert "clients.count" in line and "bits" in line


DEEP = "/".join(["d" * 200] * 30)  # every name fits NAME_MAX, the path is past PATH_MAX


@pytest.mark.parametrize("command", ["run", "compare", "onboarding"])
def test_an_out_path_past_the_path_limit_is_bad_input(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    args = [command, str(GRID), "--out", DEEP] + (["-q", *[a for s in QUICK for a in ("--set", s)]]
                                                  if command == "run" else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "--out" in lines[0] and "too long" in lines[0], result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["/", "", DEEP, "x.partial.partial", "/tmp/.partial"])
def test_a_resume_path_naming_no_run_folder_is_bad_input(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "--resume", path])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "--resume" in lines[0], result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["pretrain", "--out", "{tmp}/x.pt", "--model", "no-such-clip"],
    ["pretrain", "--out", "{tmp}/x.pt", "--steps", "99999999999999999999"],
    ["data", "synth", "--out", "{tmp}/s", "--frames", "99999999999"],
    ["data", "synth", "--out", "{tmp}/s", "--segments", "99999999999"],
], ids=["unknown_model", "steps", "frames", "segments"])
def test_command_sizes_and_names_are_refused_before_any_work(tmp_path, args):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cosim.cli", *[a.format(tmp=tmp_path) for a in args]],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout.strip(), done.stderr
    assert list(tmp_path.iterdir()) == []


def test_thread_counts_beyond_any_machine_are_refused(tmp_path):
    line = _refused(tmp_path, *QUICK, "learning.enabled=true", "learning.local.threads=2000")
    assert "learning.local.threads" in line
