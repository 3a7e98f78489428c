"""No run is lost: --out is refused or replaced only by a complete run, runs are locked, dead runs
are reported as crashed, signals end runs cleanly, a full disk fails with one line, progress is
shown off a terminal, and an interrupted compare resumes to the same bytes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.run_folder import RunFolder, read_status

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
GRID = REPO / "scenarios" / "grid_small.yaml"
QUICK = ["--set", "duration_s=30", "--set", "learning=null"]


def _cosim(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(result) -> str:
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("earlier") / "run"
    result = _cosim("run", str(GRID), "--out", str(out), "-q", *QUICK)
    assert result.exit_code == 0, result.output
    return out


def test_an_earlier_run_is_refused_without_overwrite(earlier):
    before = _digest(earlier)
    result = _cosim("run", str(GRID), "--out", str(earlier), "-q", *QUICK)
    assert result.exit_code == 2
    assert "--overwrite" in _one_line(result) and "earlier run" in result.output
    assert _digest(earlier) == before
    assert not Path(str(earlier) + ".partial").exists()


def test_a_folder_that_is_not_a_run_is_never_overwritten(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my thesis")
    result = _cosim("run", str(GRID), "--out", str(folder), "--overwrite", "-q", *QUICK)
    assert result.exit_code == 2 and "not a cosim run folder" in _one_line(result)
    assert (folder / "notes.txt").read_text() == "my thesis"


@pytest.mark.parametrize("where", ["file", "read-only"])
def test_an_unwritable_out_is_bad_input(tmp_path, where):
    if where == "file":
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "run"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        out = ro / "run"
    result = _cosim("run", str(GRID), "--out", str(out), "-q", *QUICK)
    assert result.exit_code == 2, result.output
    assert _one_line(result).startswith("error: --out:")


def test_overwrite_never_deletes_files_cosim_did_not_write(earlier, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(earlier, out)
    (out / "my_notes.txt").write_text("keep me")
    result = _cosim("run", str(GRID), "--out", str(out), "--overwrite", "-q", *QUICK)
    assert result.exit_code == 2 and "files cosim did not write (my_notes.txt)" in _one_line(result)
    assert (out / "my_notes.txt").read_text() == "keep me"


def test_a_read_only_filesystem_is_bad_input(tmp_path, monkeypatch):
    """As root the permission check passes; the filesystem still refuses (EROFS) at mkdir."""
    real = Path.mkdir

    def read_only(self, *args, **kwargs):
        if tmp_path in self.parents or self == tmp_path / "ro":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    result = _cosim("run", str(GRID), "--out", str(tmp_path / "ro" / "run"), "-q", *QUICK)
    assert result.exit_code == 2, result.output
    assert _one_line(result) == f"error: --out: cannot write in {tmp_path / 'ro'}: Read-only file system"


def test_overwrite_replaces_only_when_the_new_run_completes(earlier, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(earlier, out)
    before = _digest(out)
    # late bad input (a held-out count larger than the segments): found after the folder check
    bad = _cosim("run", str(GRID), "--out", str(out), "--overwrite", "-q", "--set",
                 "duration_s=30", "--set", "learning.enabled=true", "--set", "clients.count=2",
                 "--set", "learning.data.synthetic.segments=2", "--set",
                 "learning.data.heldout_segments=5")
    assert bad.exit_code != 0
    assert _digest(out) == before  # the earlier run is untouched
    good = _cosim("run", str(GRID), "--out", str(out), "--overwrite", "-q", "--set",
                  "duration_s=20", "--set", "learning=null")
    assert good.exit_code == 0, good.output
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete" and info["scenario"]["duration_s"] == 20
    assert not Path(str(out) + ".partial").exists()
    assert not list(tmp_path.glob(".run.*"))  # no lock or replaced folder left behind


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    out = tmp_path / "run"
    first = RunFolder(out)
    first.open()
    try:
        result = _cosim("run", str(GRID), "--out", str(out), "-q", *QUICK)
        assert result.exit_code == 2 and "another cosim run is writing" in _one_line(result)
    finally:
        first.finish(complete=False)
    result = _cosim("run", str(GRID), "--out", str(out), "-q", *QUICK)  # the lock is free now
    assert result.exit_code == 0, result.output


def test_run_json_names_its_writer_and_beats(tmp_path):
    out = tmp_path / "run"
    result = _cosim("run", str(GRID), "--out", str(out), "-q", *QUICK)
    assert result.exit_code == 0
    info = json.loads((out / "run.json").read_text())
    assert info["pid"] > 0 and info["host"] and info["heartbeat_at"]
    assert read_status(out)[0] == "complete"


def test_plain_progress_lines_off_a_terminal(tmp_path):
    result = _cosim("run", str(GRID), "--out", str(tmp_path / "r"), *QUICK,
                    env={"COSIM_PROGRESS_EVERY_S": "0"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(x.startswith("progress: warm-up: SUMO") for x in lines)
    ticks = [x for x in lines if x.startswith("progress: sim ")]
    assert len(ticks) >= 10  # a line per tick at period 0
    last = ticks[-1]
    for field in ("sim 00:00:30 of 00:00:30 (100%)", "elapsed ", "eta 0:00:00", "speed-up x",
                  "vehicles "):
        assert field in last, last
    quiet = _cosim("run", str(GRID), "--out", str(tmp_path / "q"), "-q", *QUICK,
                   env={"COSIM_PROGRESS_EVERY_S": "0"})
    assert "progress:" not in quiet.output


class _DiskFull:
    name = "disk_full"

    def __init__(self, engine):
        self.engine = engine

    def attach(self, engine):
        def fill():
            yield engine.env.timeout(3)
            raise OSError(errno.ENOSPC, "No space left on device", "mobility.parquet.part")

        engine.env.process(fill())


def test_a_full_disk_fails_with_one_line_and_a_failed_run_json(tmp_path, monkeypatch):
    import cosim.runner as runner
    from cosim.run_folder import DiskFullError
    from cosim.scenario_loader import load_scenario

    real = runner._write_run_json
    calls = {"n": 0}

    def full_at_the_end(run_dir, info):  # the final run.json cannot be written either
        calls["n"] += 1
        if info["status"] != "running":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(run_dir, info)

    monkeypatch.setattr(runner, "_write_run_json", full_at_the_end)
    out = tmp_path / "run"
    with pytest.raises(DiskFullError, match="the disk is full writing mobility.parquet.part"):
        runner.run_scenario(load_scenario(GRID, ["duration_s=30", "learning=null"]), source=GRID,
                            out=out, quiet=True, extra_layers=[_DiskFull])
    info = json.loads((Path(str(out) + ".partial") / "run.json").read_text())
    assert info["status"] == "failed" and "disk is full" in info["error"]
    assert not out.exists()


def test_a_full_disk_keeps_what_resume_needs_in_run_json(tmp_path, monkeypatch):
    """The final run.json cannot be written: the one written before stays whole, rewritten in
    place as failed with the scenario; once there is room, the run resumes to completion."""
    import cosim.runner as runner

    real = runner.write_atomically

    def full_at_the_end(path, data, tmp=None):
        if path.name == "run.json" and b'"running"' not in data:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, tmp)

    monkeypatch.setattr(runner, "write_atomically", full_at_the_end)
    with pytest.raises(runner.DiskFullError):
        runner.run_scenario(runner_scenario(), source=GRID, out=tmp_path / "r", quiet=True,
                            extra_layers=[_DiskFull])
    partial = tmp_path / "r.partial"
    info = json.loads((partial / "run.json").read_text())
    assert info["status"] == "failed" and "disk is full" in info["error"] and info["scenario"]
    monkeypatch.setattr(runner, "write_atomically", real)
    resumed = _cosim("run", "--resume", str(partial), "-q")
    assert resumed.exit_code == 0, resumed.output
    assert read_status(tmp_path / "r")[0] == "complete"


def runner_scenario():
    from cosim.scenario_loader import load_scenario

    return load_scenario(GRID, ["duration_s=30", "learning=null"])


class _TorchDiskFull(_DiskFull):
    def attach(self, engine):
        def fill():
            yield engine.env.timeout(3)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 8 vs 4")

        engine.env.process(fill())


def test_a_full_disk_under_torch_save_is_one_line(tmp_path, monkeypatch):
    import cosim.runner as runner

    class NoRoom:
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(runner.os, "statvfs", lambda path: NoRoom())
    with pytest.raises(runner.DiskFullError, match="the disk is full writing a model file"):
        runner.run_scenario(runner_scenario(), source=GRID, out=tmp_path / "r", quiet=True,
                            extra_layers=[_TorchDiskFull])
    assert json.loads((tmp_path / "r.partial" / "run.json").read_text())["status"] == "failed"


def test_an_atomic_write_that_fails_keeps_the_previous_content(tmp_path, monkeypatch):
    import cosim.run_folder as run_folder

    target = tmp_path / "train-000000.pt"
    target.write_bytes(b"before")

    def no_room(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_folder.os, "fsync", no_room)
    with pytest.raises(OSError) as raised:
        run_folder.write_atomically(target, b"after")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert target.read_bytes() == b"before" and list(tmp_path.iterdir()) == [target]


def test_the_cli_says_disk_full_in_one_line(monkeypatch, tmp_path):
    import cosim.runner as runner

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "radio.parquet.part")

    monkeypatch.setattr(runner, "TraceSet", full)
    result = _cosim("run", str(GRID), "--out", str(tmp_path / "r"), "-q", *QUICK)
    assert result.exit_code == 1
    assert _one_line(result).startswith("error: the disk is full writing radio.parquet.part")
    status = json.loads((tmp_path / "r.partial" / "run.json").read_text())["status"]
    assert status == "failed"


def _sumo_processes_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and (b"sumo" in Path(args[0].decode()).name.encode()
                            or b"cosim.mobility.pipeline" in args):
            found.append(int(entry.name))
    return found


def _start_run(out: Path, backend: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cosim.cli", "run", str(GRID), "--out", str(out), "-q",
         "--set", "duration_s=36000", "--set", "learning=null", "--set",
         f"mobility.backend={backend}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)


def _wait_running(proc: subprocess.Popen, partial: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (partial / "mobility.parquet.part").exists():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the run did not start")


# random instants, drawn once (seeded) so that a failure can be repeated
_DELAYS = random.Random(20261124).sample([x / 10 for x in range(2, 20)], 3)


@pytest.mark.parametrize(("sig", "delay", "backend"), [
    (signal.SIGINT, _DELAYS[0], "libsumo"), (signal.SIGTERM, _DELAYS[1], "traci"),
    (signal.SIGKILL, _DELAYS[2], "libsumo")])
def test_signals_at_random_instants(tmp_path, earlier, sig, delay, backend):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(earlier, out)
    before = _digest(out)
    partial = Path(str(out) + ".partial")
    proc = _start_run(tmp_path / "run2", backend)  # a second run beside the earlier one
    _wait_running(proc, Path(str(tmp_path / "run2") + ".partial"))
    time.sleep(delay)
    assert proc.poll() is None, "the run ended before the signal: lengthen it"
    children = _sumo_processes_of(proc.pid)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{c}").exists() for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if Path(f"/proc/{c}").exists()], "SUMO outlived the run"
    assert _digest(out) == before and not partial.exists()  # the earlier run is untouched
    state, info = read_status(tmp_path / "run2.partial")
    if sig == signal.SIGKILL:
        assert state == "crashed" and info["pid"] == proc.pid
        listed = _cosim("status", str(tmp_path))
        assert f"crashed     {tmp_path / 'run2.partial'}" in listed.output
        assert f"complete    {out}" in listed.output
        report = _cosim("report", str(tmp_path / "run2.partial"))
        assert report.exit_code == 2 and "the run is crashed, not complete" in _one_line(report)
    else:
        assert proc.returncode == 130, err
        assert err.decode().strip().splitlines()[-1] == "interrupted"
        assert state == "interrupted"
    assert not (tmp_path / "run2").exists()


COMPARE = ["--set", "duration_s=40", "--set", "aggregation.max_rounds=3", "--set",
           "learning.enabled=true", "--set", "clients.count=3", "--set", "scheduling.per_round=2",
           "--set", "aggregation.round_deadline_s=10", "--set",
           "learning.data.synthetic.segments=5", "--set", "learning.data.synthetic.frames=2",
           "--set", "learning.data.clients=3", "--set", "learning.data.heldout_segments=2",
           "--set", "learning.local.batch_size=2"]


def _traces(folder: Path) -> dict[str, str]:
    return {k: v for k, v in _digest(folder).items()
            if k.endswith(".parquet") and not k.startswith("summary")}


def test_compare_refuses_resumes_and_overwrites(tmp_path):
    args = ["compare", str(GRID), "--policies", "random,availability_aware", "-q", *COMPARE]
    fresh = _cosim(*[a for a in args if a != "-q"], "--out", str(tmp_path / "a"),
                   env={"COSIM_PROGRESS_EVERY_S": "0"})
    assert fresh.exit_code == 0, fresh.output
    # off a terminal: a line per finished run, and the running run's simulated time
    assert "compare: 3 of 3 runs done" in fresh.output
    assert "runs done; running: random-sync-seed0 " in fresh.output
    again = _cosim(*args, "--out", str(tmp_path / "a"))
    assert again.exit_code == 2 and "--resume" in _one_line(again)

    # an interruption: one run never finished, the compare never summarised
    b = tmp_path / "b"
    assert _cosim(*args, "--out", str(b)).exit_code == 0
    run = b / "runs" / "random-sync-seed0"
    run.rename(Path(str(run) + ".partial"))
    info = json.loads((Path(str(run) + ".partial") / "run.json").read_text())
    (Path(str(run) + ".partial") / "run.json").write_text(json.dumps({**info, "status": "running"}))
    (b / "summary.parquet").unlink()
    kept = b / "runs" / "availability_aware-sync-seed0" / "run.json"
    mtime = kept.stat().st_mtime_ns

    other = _cosim(*args, "--out", str(b), "--resume", "--set", "clients.count=2")
    assert other.exit_code == 2 and "other settings" in _one_line(other)
    resumed = _cosim(*args, "--out", str(b), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert kept.stat().st_mtime_ns == mtime  # a complete run is kept, not run again
    assert _traces(b) == _traces(tmp_path / "a")  # byte-identical to the uninterrupted compare
    assert not Path(str(run) + ".partial").exists()

    over = _cosim(*args, "--out", str(b), "--overwrite")
    assert over.exit_code == 0, over.output
    assert kept.stat().st_mtime_ns != mtime and _traces(b) == _traces(tmp_path / "a")


def test_a_module_in_the_working_folder_does_not_run_in_the_sumo_child(tmp_path, monkeypatch):
    """The pipelined SUMO child imports pyarrow: a pyarrow.py in the working folder is not it."""
    marker = tmp_path / "hijacked"
    (tmp_path / "pyarrow.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.chdir(tmp_path)
    result = _cosim("run", str(GRID), "--out", str(tmp_path / "r"), "-q", *QUICK,
                    "--set", "mobility.pipeline=true")
    assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_library_warnings_go_to_the_run_folder_not_the_terminal(tmp_path):
    import warnings

    class _Warns:
        name = "warns"

        def __init__(self, engine):
            pass

        def attach(self, engine):
            def warn():
                yield engine.env.timeout(1)
                warnings.warn("a library complains", UserWarning, stacklevel=1)

            engine.env.process(warn())

    from cosim.runner import run_scenario
    from cosim.scenario_loader import load_scenario

    sc = load_scenario(GRID, ["duration_s=5", "learning=null"])
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        result = run_scenario(sc, source=GRID, out=tmp_path / "r", quiet=True, extra_layers=[_Warns])
    assert result.status == "complete" and result.info["library_warnings"] == 1
    assert "UserWarning: a library complains" in (tmp_path / "r" / "warnings.log").read_text()


def test_special_files_are_refused_not_read(tmp_path):
    """A FIFO as the scenario or as a run.json, and /dev/zero as the scenario: one line and exit
    2 (or "unknown" for status), at once; none of them is opened for reading."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    run = tmp_path / "r"
    run.mkdir()
    os.mkfifo(run / "run.json")

    def cosim(*args):
        return subprocess.run([sys.executable, "-m", "cosim.cli", *args], capture_output=True,
                              text=True, timeout=120)

    for scenario in (fifo, Path("/dev/zero")):
        result = cosim("validate", str(scenario))
        assert result.returncode == 2 and "not a regular file" in result.stderr, result.stderr
    status = cosim("status", str(run))
    assert status.returncode == 0 and "unknown" in status.stdout, status.stdout + status.stderr
    resumed = cosim("run", "--resume", str(run))
    assert resumed.returncode == 2, resumed.stderr


@pytest.mark.parametrize("out", ["/", "x" * 300, "deep/" + "y" * 252])
def test_an_impossible_destination_is_bad_input(tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    for command in (["run", str(GRID), *QUICK], ["compare", str(GRID)]):
        result = _cosim(*command, "--out", out, "-q")
        assert result.exit_code == 2, (command, result.output)
        assert _one_line(result).startswith("error: --out: ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("special", ["fifo", "dev_zero", "folder"])
@pytest.mark.parametrize("field", ["mobility.additional", "mobility.replay", "learning.init_modules",
                                   "learning.model.checkpoint", "radio.channel.buildings"])
def test_every_input_file_of_a_scenario_is_a_regular_file(tmp_path, special, field):
    """Any file a scenario names: a FIFO, a device or a folder is one line and exit 2, at once."""
    import os

    path = {"fifo": tmp_path / "pipe", "dev_zero": Path("/dev/zero"), "folder": tmp_path / "dir"}[special]
    if special == "fifo":
        os.mkfifo(path)
    elif special == "folder":
        path.mkdir()
    value = f"[{path}]" if field == "mobility.additional" else str(path)
    result = _cosim("validate", str(GRID), "--set", "learning.enabled=true", "--set", f"{field}={value}")
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert field.split(".")[-1] in line and ("not a regular file" in line or "not found" in line), line


def test_a_full_disk_before_the_first_run_json_leaves_no_empty_folder(tmp_path, monkeypatch):
    """Nothing could be written: the staging folder cosim made is empty, is no run (status
    cannot list it), and is removed; the error line says the disk is full."""
    import cosim.runner as runner
    from cosim.run_folder import DiskFullError

    def full(path, data, tmp=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner, "write_atomically", full)
    with pytest.raises(DiskFullError, match="disk is full") as caught:
        runner.run_scenario(runner_scenario(), source=GRID, out=tmp_path / "r", quiet=True)
    assert list(tmp_path.iterdir()) == [] and "partial" not in str(caught.value)


def test_a_full_disk_under_any_command_is_one_line(tmp_path, private_mounts):
    """data synth into a 64 kB file system: exit 1 and the line a run gives, not an internal
    error (a private mount namespace holds the small file system)."""
    small = tmp_path / "small"
    small.mkdir()
    command = (f'mount -t tmpfs -o size=64k tmpfs "{small}" && "{sys.executable}" -m cosim.cli '
               f'data synth --out "{small}/ds" --segments 6 --frames 4')
    done = subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True)
    lines = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("progress:")]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: the disk is full writing"), lines
    assert f"{small}/ds" in lines[0], lines  # the file, or the folder being filled
