"""OUT.partial is never deleted behind a user's back: an earlier attempt is resumed or given up
explicitly, a folder cosim did not write is never touched, a complete run is never recomputed, a
run.json status is read, not trusted, and outputs that cannot be closed fail the command."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.run_folder import read_status

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
GRID = REPO / "scenarios" / "grid_small.yaml"
QUICK = ["--set", "duration_s=30", "--set", "learning=null"]


def _cosim(*args: str):
    return CliRunner().invoke(app, list(args))


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(result) -> str:
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("complete") / "run"
    result = _cosim("run", str(GRID), "--out", str(out), "-q", *QUICK)
    assert result.exit_code == 0, result.output
    return out


def _left_behind(complete_run: Path, where: Path, status: str) -> Path:
    """A copy of a run as an attempt left it at ``where`` (OUT.partial), with ``status``."""
    subprocess.run(["cp", "-r", str(complete_run), str(where)], check=True)
    info = json.loads((where / "run.json").read_text())
    (where / "run.json").write_text(json.dumps({**info, "status": status, "pid": 1}))
    return where


@pytest.mark.parametrize("status", ["interrupted", "failed", "complete"])
def test_an_earlier_attempt_in_partial_is_not_deleted_by_a_new_run(complete_run, tmp_path, status):
    partial = _left_behind(complete_run, tmp_path / "r.partial", status)
    (partial / "checkpoint").mkdir()  # a resumable attempt's training journal
    before = _digest(partial)
    result = _cosim("run", str(GRID), "--out", str(tmp_path / "r"), "-q", *QUICK)
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert "r.partial" in line and "--resume" in line and "--overwrite" in line
    assert _digest(partial) == before and not (tmp_path / "r").exists()


def test_overwrite_gives_up_an_earlier_attempt(complete_run, tmp_path):
    _left_behind(complete_run, tmp_path / "r.partial", "interrupted")
    result = _cosim("run", str(GRID), "--out", str(tmp_path / "r"), "-q", "--overwrite", *QUICK)
    assert result.exit_code == 0, result.output
    assert read_status(tmp_path / "r")[0] == "complete" and not (tmp_path / "r.partial").exists()


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("kind", ["user_folder", "user_file", "foreign_entry_in_attempt"])
def test_what_a_user_put_at_partial_is_never_touched(complete_run, tmp_path, kind, overwrite):
    partial = tmp_path / "thesis.partial"
    if kind == "user_folder":
        partial.mkdir()
        (partial / "ch1.tex").write_text("x")
    elif kind == "user_file":
        partial.write_text("notes")
    else:
        _left_behind(complete_run, partial, "interrupted")
        (partial / "notes.txt").write_text("mine")
    before = _digest(partial) if partial.is_dir() else partial.read_bytes()
    result = _cosim("run", str(GRID), "--out", str(tmp_path / "thesis"), "-q", *QUICK,
                    *(["--overwrite"] if overwrite else []))
    assert result.exit_code == 2, result.output
    assert "thesis.partial" in _one_line(result)
    assert (_digest(partial) if partial.is_dir() else partial.read_bytes()) == before


def test_resume_refuses_a_complete_run_left_in_partial(complete_run, tmp_path):
    partial = _left_behind(complete_run, tmp_path / "done.partial", "complete")
    before = _digest(partial)
    result = _cosim("run", "--resume", str(partial))
    assert result.exit_code == 2
    assert "complete: nothing to resume" in _one_line(result)
    assert _digest(partial) == before and not (tmp_path / "done").exists()


def test_resume_beside_a_complete_run_replaces_it_only_with_overwrite(complete_run, tmp_path):
    out = tmp_path / "r"
    subprocess.run(["cp", "-r", str(complete_run), str(out)], check=True)
    _left_behind(complete_run, tmp_path / "r.partial", "interrupted")
    before = _digest(out)
    refused = _cosim("run", "--resume", str(tmp_path / "r.partial"))
    assert refused.exit_code == 2 and "--overwrite" in _one_line(refused)
    assert _digest(out) == before
    done = _cosim("run", "--resume", str(tmp_path / "r.partial"), "--overwrite", "-q")
    assert done.exit_code == 0, done.output
    assert read_status(out)[0] == "complete" and not (tmp_path / "r.partial").exists()


@pytest.mark.parametrize("status", ["complete\x1b[2J\rok", "finished", 7, None])
def test_a_status_cosim_never_writes_reads_as_unknown(complete_run, tmp_path, status):
    run = _left_behind(complete_run, tmp_path / "r", "complete")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": status}))
    assert read_status(run)[0] == "unknown"
    listed = _cosim("status", str(run))
    assert "\x1b" not in listed.output and "unknown" in listed.output


def test_a_running_run_whose_pid_was_given_to_a_younger_process_is_crashed(complete_run, tmp_path):
    run = _left_behind(complete_run, tmp_path / "r.partial", "running")
    younger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.1)
        info = json.loads((run / "run.json").read_text())
        info.update(pid=younger.pid, host=os.uname().nodename, started_at="2020-01-01T00:00:00+00:00")
        (run / "run.json").write_text(json.dumps(info))
        assert read_status(run)[0] == "crashed"
        info["started_at"] = "2999-01-01T00:00:00+00:00"  # the process is older: it is the writer
        (run / "run.json").write_text(json.dumps(info))
        assert read_status(run)[0] == "running"
    finally:
        younger.kill()
        younger.wait()


def test_traces_that_cannot_be_closed_fail_the_command(tmp_path, monkeypatch):
    import cosim.traces as traces

    real = traces.TraceSet.close

    def a_part_vanished(self, complete):  # a table's part file removed while the run went on
        raise FileNotFoundError(2, "No such file or directory", "radio.parquet.part")

    monkeypatch.setattr(traces.TraceSet, "close", a_part_vanished)
    result = _cosim("run", str(GRID), "--out", str(tmp_path / "r"), "-q", *QUICK)
    monkeypatch.setattr(traces.TraceSet, "close", real)
    assert result.exit_code == 1, result.output
    assert _one_line(result).startswith("error: closing the traces")
    assert not (tmp_path / "r").exists()
    assert read_status(tmp_path / "r.partial")[0] == "failed"


@pytest.mark.parametrize("where", ["report/my_notes.txt", "my_analysis.parquet", "checkpoint/backup.pt",
                                   "export-csv/notes.md", "report/figures/draft.tex"])
def test_overwrite_keeps_a_run_whose_own_folders_hold_a_users_file(complete_run, tmp_path, where):
    out = tmp_path / "r"
    subprocess.run(["cp", "-r", str(complete_run), str(out)], check=True)
    mine = out / where
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text("mine")
    result = _cosim("run", str(GRID), "--out", str(out), "-q", "--overwrite", *QUICK)
    assert result.exit_code == 2, result.output
    assert where in _one_line(result) and mine.read_text() == "mine"


def test_a_forged_run_json_does_not_make_a_users_partial_folder_cosims(tmp_path):
    partial = tmp_path / "r.partial"
    partial.mkdir()
    (partial / "run.json").write_text(json.dumps({"status": "interrupted", "pid": 1}))
    (partial / "mine.parquet").write_text("mine")
    result = _cosim("run", str(GRID), "--out", str(tmp_path / "r"), "-q", "--overwrite", *QUICK)
    assert result.exit_code == 2, result.output
    assert (partial / "mine.parquet").read_text() == "mine"


@pytest.mark.parametrize("where", ["export-csv/mine.csv", "report/figures/my.png"])
def test_a_users_file_named_like_cosims_in_a_report_or_export_is_kept(complete_run, tmp_path, where):
    out = tmp_path / "r"
    subprocess.run(["cp", "-r", str(complete_run), str(out)], check=True)
    assert _cosim("export", str(out), "--format", "csv").exit_code == 0
    assert _cosim("report", str(out)).exit_code == 0
    mine = out / where
    mine.write_text("mine")
    result = _cosim("run", str(GRID), "--out", str(out), "-q", "--overwrite", *QUICK)
    assert result.exit_code == 2, result.output
    assert where in _one_line(result) and mine.read_text() == "mine"


RUN_JSON_DAMAGE = {
    "random_bytes": lambda info: bytes(random.Random(0).getrandbits(8) for _ in range(2000)),
    "not_an_object": lambda info: b"[1, 2]",
    "no_scenario": lambda info: json.dumps({k: v for k, v in info.items() if k != "scenario"}),
    "scenario_null": lambda info: json.dumps({**info, "scenario": None}),
    "scenario_a_list": lambda info: json.dumps({**info, "scenario": [1, 2]}),
    "scenario_file_a_number": lambda info: json.dumps({**info, "scenario_file": 123}),
    "seed_a_string": lambda info: json.dumps({**info, "seed": "1"}),
    "scenario_learning_a_number": lambda info: json.dumps(
        {**info, "scenario": {**info["scenario"], "learning": 7}}),
    "sim_time_nan": lambda info: json.dumps({**info, "sim_time_s": math.nan}),
    "name_a_lone_surrogate": lambda info: json.dumps(  # valid JSON, no text to write back
        {**info, "scenario": {**info["scenario"], "name": "\ud800\x1b[31m"}}),
    "wall_time_negative": lambda info: json.dumps({**info, "wall_time_s": -5.0}),
    "wall_time_a_string": lambda info: json.dumps({**info, "wall_time_s": "long"}),
}


@pytest.mark.parametrize(("summary", "field"), [
    ({"learning": {"rounds": "many"}}, "summary.learning.rounds"),
    ({"learning": {"rounds": -3}}, "summary.learning.rounds"),
    ({"learning": {"lookup_baseline": {"det2d": {"mAP50": "high"}}}},
     "summary.learning.lookup_baseline"),
    ({"learning": {"lookup_baseline": [1, 2]}}, "summary.learning.lookup_baseline"),
])
def test_a_run_summary_a_study_reads_is_checked(complete_run, tmp_path, summary, field):
    """A compare's summary row takes rounds and the lookup baseline from run.json: a value that
    is not one is named, not written into the table."""
    from cosim.analysis.summary import summarise_run
    from cosim.errors import InputError

    run = _left_behind(complete_run, tmp_path / "r", "complete")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "summary": summary}))
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        summarise_run(run)


@pytest.mark.parametrize("how", sorted(RUN_JSON_DAMAGE))
def test_a_damaged_run_json_is_one_line_everywhere_and_hides_no_other_run(complete_run, tmp_path,
                                                                          how):
    """resume, export, report and a new run into the folder: exit 2, one line (naming run.json
    where the command needs what is damaged), the folder unchanged; status lists every run, the
    damaged one as unreadable."""
    partial = _left_behind(complete_run, tmp_path / "r.partial", "interrupted")
    _left_behind(complete_run, tmp_path / "other.partial", "interrupted")
    info = json.loads((partial / "run.json").read_text())
    damage = RUN_JSON_DAMAGE[how](info)
    (partial / "run.json").write_bytes(damage if isinstance(damage, bytes) else damage.encode())
    before = _digest(partial)
    for args in (["run", "--resume", str(partial)], ["export", str(partial)],
                 ["report", str(partial)], ["run", str(GRID), "--out", str(tmp_path / "r"), *QUICK]):
        result = _cosim(*args)
        assert result.exit_code == 2, (args, result.output)
        line = _one_line(result)  # what each command needs of run.json, or that it is partial
        assert not line.startswith("error: internal"), args
        assert any(word in line for word in ("run.json", "not complete", "--out")), args
        assert _digest(partial) == before
    listed = _cosim("status", str(tmp_path))
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert any("other.partial" in x and x.startswith("interrupted") for x in lines), listed.output
    if how != "no_scenario":  # status reads only the status; the rest is not cosim's writing
        assert any("r.partial" in x and "unreadable" in x for x in lines), listed.output


def test_a_damaged_run_json_is_refused_by_the_api(complete_run, tmp_path):
    from cosim.api import load_run
    from cosim.errors import InputError

    run = _left_behind(complete_run, tmp_path / "r", "complete")
    (run / "run.json").write_bytes(b"\xff\xfe" * 100)
    with pytest.raises(InputError, match="run.json"):
        load_run(run)


@pytest.mark.parametrize("pid", [2**70, 2**22 + 1, 0, -1, "4242", 1.5])
def test_a_pid_no_process_can_have_reads_as_unknown_and_is_refused(complete_run, tmp_path, pid):
    """A run.json pid beyond any system's, or 0 or negative (process groups to os.kill), is not
    what cosim writes: the folder lists as unknown (the others still listed), and a run, an
    overwrite or a resume there is refused in one line, the attempt left as it was."""
    listed_too = _left_behind(complete_run, tmp_path / "good", "complete")
    partial = _left_behind(complete_run, tmp_path / "r.partial", "running")
    info = json.loads((partial / "run.json").read_text())
    (partial / "run.json").write_text(json.dumps({**info, "pid": pid, "host": os.uname().nodename}))
    before = _digest(partial)
    assert read_status(partial)[0] == "unknown"
    listed = _cosim("status", str(tmp_path))
    assert listed.exit_code == 0, listed.output
    assert f"unknown     {partial}" in listed.output and f"complete    {listed_too}" in listed.output
    for args in (["run", str(GRID), "--out", str(tmp_path / "r"), "-q", *QUICK],
                 ["run", str(GRID), "--out", str(tmp_path / "r"), "-q", "--overwrite", *QUICK],
                 ["run", "--resume", str(partial), "-q"]):
        result = _cosim(*args)
        assert result.exit_code == 2, result.output
        assert "pid" in _one_line(result), result.output
    assert _digest(partial) == before and not (tmp_path / "r").exists()


def test_init_is_never_a_runs_writer(complete_run, tmp_path):
    run = _left_behind(complete_run, tmp_path / "r.partial", "running")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "pid": 1, "host": os.uname().nodename}))
    assert read_status(run)[0] == "crashed"


CONTROLS = ["\x1b]0;title\x07", "\n", "\r", "\x1b[2J", "\x9b31m", "\x07", "\u2028", "\x00",
            "\u202e", "\u2067"]  # the last two: a right-to-left override, an isolate


@pytest.mark.parametrize("control", CONTROLS)
def test_status_shows_what_run_json_says_and_never_lets_the_terminal_obey_it(
        complete_run, tmp_path, control):
    """Every run.json field status prints (host, heartbeat, error) and the folder's name are
    shown with control characters escaped: one line per run, nothing a terminal acts on."""
    name = f"a{control}run".replace("\x00", "")  # a name holds anything but NUL and /
    running = _left_behind(complete_run, tmp_path / name, "running")
    info = json.loads((running / "run.json").read_text())
    (running / "run.json").write_text(json.dumps({
        **info, "pid": os.getpid(), "host": f"h{control}second line",
        "heartbeat_at": f"now{control}", "started_at": "2999-01-01T00:00:00+00:00"}))
    failed = _left_behind(complete_run, tmp_path / "b", "failed")
    info = json.loads((failed / "run.json").read_text())
    (failed / "run.json").write_text(json.dumps({**info, "error": f"bad{control}injected"}))
    listed = _cosim("status", str(tmp_path))
    assert listed.exit_code == 0, listed.output
    lines = listed.output.split("\n")
    assert len(lines) == 3 and lines[2] == "", listed.output  # two runs, two lines
    assert all(c not in line for line in lines[:2] for c in CONTROLS), lines
    assert "second line" in lines[0] and "injected" in lines[1], listed.output


@pytest.mark.parametrize("where", ["notes.txt", "report/mine.txt"])
def test_a_file_put_into_the_run_being_replaced_while_the_new_one_runs_is_kept(
        complete_run, tmp_path, monkeypatch, where):
    """--overwrite replaces the earlier run when the new one completes: a user's file put into
    it meanwhile keeps it (the new run stays complete in OUT.partial), never deleted."""
    from cosim.run_folder import RunFolder

    out = _left_behind(complete_run, tmp_path / "r", "complete")
    finish = RunFolder.finish

    def user_writes_then_finish(self, complete, restore=False):
        (out / where).parent.mkdir(exist_ok=True)
        (out / where).write_text("mine")
        return finish(self, complete, restore)

    monkeypatch.setattr(RunFolder, "finish", user_writes_then_finish)
    result = _cosim("run", str(GRID), "--out", str(out), "-q", "--overwrite", *QUICK)
    assert (out / where).read_text() == "mine", result.output
    assert result.exit_code == 0 and "was not replaced" in result.output, result.output
    assert read_status(tmp_path / "r.partial")[0] == "complete"
    assert not [p for p in tmp_path.iterdir() if ".replaced-" in p.name]


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_out_that_is_a_link_is_refused_and_left_as_it_is(complete_run, tmp_path, overwrite):
    """Replacing the link's run would set the user's link aside under a hidden name."""
    target = _left_behind(complete_run, tmp_path / "real", "complete")
    link = tmp_path / "lv"
    link.symlink_to(target)
    before = _digest(target)
    result = _cosim("run", str(GRID), "--out", str(link), "-q", *QUICK,
                    *(["--overwrite"] if overwrite else []))
    assert result.exit_code == 2 and "is a link" in _one_line(result), result.output
    assert link.is_symlink() and _digest(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lv", "real"]


def test_status_says_when_a_run_holds_files_cosim_did_not_write(complete_run, tmp_path):
    """Such a run is never replaced, and those files are not its results: said beside its state."""
    run = _left_behind(complete_run, tmp_path / "r", "complete")
    (run / "plain.edg.xml").write_text("<edges/>")
    listed = _cosim("status", str(run))
    assert listed.exit_code == 0, listed.output
    assert "complete" in listed.output and "1 file(s) cosim did not write: plain.edg.xml" in \
        listed.output


@pytest.mark.parametrize("into", ["out", "partial"])
def test_a_replay_inside_the_folder_a_run_replaces_is_refused(complete_run, tmp_path, into):
    """Replaying OUT's own mobility with --overwrite (or an attempt's in OUT.partial) would
    replace the file the run reads: refused naming the field, and both folders stay as they were."""
    out = tmp_path / "r"
    holder = _left_behind(complete_run, out if into == "out" else tmp_path / "r.partial",
                          "complete" if into == "out" else "interrupted")
    before = _digest(holder)
    result = _cosim("run", str(GRID), "--out", str(out), "--overwrite", "-q", *QUICK,
                    "--set", f"mobility.replay={holder / 'mobility.parquet'}")
    line = _one_line(result)
    assert result.exit_code == 2 and "mobility.replay" in line and "copy it elsewhere" in line, line
    assert _digest(holder) == before and sorted(p.name for p in tmp_path.iterdir()) == [holder.name]


def test_status_into_a_reader_that_leaves_early_ends_quietly(tmp_path):
    """`cosim status | head -1`: the reader closes the pipe; status ends as a shell tool does
    (exit 141, SIGPIPE's), with nothing on stderr, never an internal error."""
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"status": "complete"}')
    child = subprocess.Popen([sys.executable, "-m", "cosim.cli", "status", "runs"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # before the child writes: its write meets a closed pipe
    err = child.stderr.read().decode()
    assert child.wait() == 141 and err == "", err


def test_an_earlier_run_that_cannot_be_removed_whole_is_said(complete_run, tmp_path, monkeypatch):
    """A file the system keeps (immutable, busy) leaves part of the replaced run: a warning
    names where, instead of a hidden folder left unsaid."""
    import shutil

    import cosim.run_folder

    out = _left_behind(complete_run, tmp_path / "r", "complete")
    real = shutil.rmtree

    def keeps_the_replaced(path, *args, **kwargs):
        if ".replaced-" not in str(path):
            real(path, *args, **kwargs)

    monkeypatch.setattr(cosim.run_folder.shutil, "rmtree", keeps_the_replaced)
    result = _cosim("run", str(GRID), "--out", str(out), "--overwrite", "-q", *QUICK)
    assert result.exit_code == 0, result.output
    left = [p for p in tmp_path.iterdir() if ".replaced-" in p.name]
    assert len(left) == 1 and f"warning: {left[0]}" in result.output, result.output
    assert "could not be removed whole" in result.output


def test_status_calls_a_run_whose_trace_was_deleted_damaged(complete_run, tmp_path):
    """Its readers refuse it (a trace without its file): status never calls it complete."""
    run = _left_behind(complete_run, tmp_path / "r", "complete")
    (run / "radio.parquet").unlink()
    listed = _cosim("status", str(run))
    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith("damaged") and "gone: radio.parquet" in listed.output, \
        listed.output


def test_status_looks_for_runs_outside_the_kernels_virtual_file_systems(complete_run, tmp_path):
    """/proc's entries come and go (a zombie's fail to list): status of /proc, or of a folder
    linking into it, finds no runs there and never fails "internal"."""
    listed = _cosim("status", "/proc")
    assert listed.exit_code == 2 and "no run folders" in listed.output, listed.output
    _left_behind(complete_run, tmp_path / "r", "complete")
    (tmp_path / "proc").symlink_to("/proc")
    listed = _cosim("status", str(tmp_path))
    assert listed.exit_code == 0 and listed.output.count("\n") == 1, listed.output


def test_an_empty_folder_given_as_out_takes_the_complete_run(tmp_path):
    """An empty --out is a place for the run: it ends there, not beside it in OUT.partial."""
    out = tmp_path / "empty"
    out.mkdir()
    result = _cosim("run", str(GRID), "--out", str(out), "-q", *QUICK)
    assert result.exit_code == 0 and "not replaced" not in result.output, result.output
    assert read_status(out)[0] == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_a_file_put_into_an_empty_out_while_the_run_runs_is_kept(tmp_path, monkeypatch):
    from cosim.run_folder import RunFolder

    out = tmp_path / "empty"
    out.mkdir()
    finish = RunFolder.finish

    def user_writes_then_finish(self, complete, restore=False):
        (out / "notes.txt").write_text("mine")
        return finish(self, complete, restore)

    monkeypatch.setattr(RunFolder, "finish", user_writes_then_finish)
    result = _cosim("run", str(GRID), "--out", str(out), "-q", *QUICK)
    assert result.exit_code == 0 and "was not replaced" in result.output, result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert read_status(tmp_path / "empty.partial")[0] == "complete"


def test_a_mount_point_as_out_is_refused_before_the_run(tmp_path, monkeypatch):
    """A complete run takes its folder's place by a rename, which a mount point refuses (EBUSY):
    said first, not after the run."""
    out = tmp_path / "mounted"
    out.mkdir()
    real = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == out or real(p))
    line = _one_line(_cosim("run", str(GRID), "--out", str(out), "-q", *QUICK))
    assert "--out" in line and "mount point" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mounted"] and not any(out.iterdir())


def test_overwrite_never_deletes_through_a_mount_inside_the_earlier_run(complete_run, tmp_path,
                                                                        private_mounts):
    """A user's folder mounted at the earlier run's report/ is no file of the run: --overwrite
    is refused in one line before the run, and the mounted folder keeps everything."""
    run = _left_behind(complete_run, tmp_path / "r", "complete")
    (run / "report").mkdir(exist_ok=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    command = shlex.join([sys.executable, "-m", "cosim.cli", "run", str(GRID), "--out", str(run),
                          "--overwrite", "-q", *QUICK])
    done = subprocess.run(["unshare", "-m", "sh", "-c",
                           f'mount --bind "{mine}" "{run}/report" && {command}'],
                          capture_output=True, text=True)
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "report (a mount point)" in lines[0], lines
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "r"]


def test_a_bind_mount_on_the_same_file_system_is_a_mount_point(tmp_path, private_mounts):
    """os.path.ismount sees only a change of device; the mount table sees a bind mount too."""
    folder = tmp_path / "bound"
    folder.mkdir()
    probe = ("from pathlib import Path; from cosim.run_folder import mount_point; "
             f"print(mount_point(Path({str(folder)!r})), mount_point(Path({str(tmp_path)!r})))")
    done = subprocess.run(["unshare", "-m", "sh", "-c", f'mount --bind "{folder}" "{folder}" && '
                           f'"{sys.executable}" -c "{probe}"'], capture_output=True, text=True)
    assert done.stdout.split() == ["True", "False"], done.stderr
