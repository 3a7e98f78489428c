"""`cosim compare --jobs 2` stops when told: SIGTERM or SIGINT to the compare ends its running
runs as interruptions (resumable) and returns at once, queued runs never start; a compare killed
outright (SIGKILL) takes its workers with it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
GRID = REPO / "scenarios" / "grid_small.yaml"
LONG = ["--set", "duration_s=7200", "--set", "learning.enabled=true"]  # recordings run first


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _all_gone(pids: list[int], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    return not any(_alive(p) for p in pids)


def _start(out: Path) -> tuple[subprocess.Popen, list[Path]]:
    """A compare whose two workers are each inside a recording run."""
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "compare", str(GRID), "--policies",
                             "random,availability_aware", "--seeds", "0,1,2,3", "--jobs", "2", "-q",
                             "--out", str(out), *LONG], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        running = [p for p in out.glob("recordings/*.partial")
                   if (p / "mobility.parquet.part").exists()]
        if len(running) == 2:
            return proc, running
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the compare's workers never started their runs")


def _statuses(runs: list[Path]) -> list[str]:
    return [json.loads((r / "run.json").read_text())["status"] for r in runs]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_compare_and_its_running_runs_at_once(tmp_path, sig):
    proc, running = _start(tmp_path / "cmp")
    workers = _children(proc.pid)
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=150)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err  # the SUMO children see their pipe close: no error
    assert time.monotonic() - t0 < 120  # the queued recordings never ran
    assert _all_gone(workers, 10)  # the workers, and multiprocessing's resource tracker
    assert _statuses(running) == ["interrupted", "interrupted"]
    assert len(list((tmp_path / "cmp").glob("recordings/*"))) == 2  # nothing else started


def test_a_killed_compare_takes_its_workers_with_it(tmp_path):
    proc, running = _start(tmp_path / "cmp")
    workers = _children(proc.pid)
    assert workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert _all_gone(workers, 120)
    assert _statuses(running) == ["interrupted", "interrupted"]


def test_a_module_in_the_working_folder_does_not_run_in_compare_workers(tmp_path):
    """Workers start as `python -c ...`, which would put the working folder first on their path
    before they import multiprocessing: a multiprocessing.py there must not run in them."""
    marker = tmp_path / "hijacked"
    (tmp_path / "multiprocessing.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nraise ImportError('hijacked')\n")
    cosim = Path(sys.executable).with_name("cosim")  # the console script, as a user runs it
    if not cosim.is_file():
        pytest.skip("cosim is not installed as a console script here")
    done = subprocess.run([str(cosim), "compare", str(GRID), "--policies", "random,availability_aware",
                           "--seeds", "0", "--jobs", "2", "-q", "--out", str(tmp_path / "cmp"),
                           "--set", "duration_s=20", "--set", "learning.enabled=true",
                           "--set", "learning.data.synthetic.segments=4",
                           "--set", "learning.data.synthetic.frames=2",
                           "--set", "learning.data.clients=2", "--set", "clients.count=2",
                           "--set", "learning.data.heldout_segments=2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def test_data_synth_workers_die_with_a_killed_parent(tmp_path):
    """SIGKILL leaves the parent no chance to stop its pool: the kernel ends the workers."""
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "data", "synth", "--out",
                             str(tmp_path / "s"), "--segments", "8", "--frames", "40"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and not workers:
        workers = _children(proc.pid)
        time.sleep(0.2)
    assert workers, "the pool never started"
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
        for w in workers:  # reap them if they became ours (they are not: init adopts them)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(w, os.WNOHANG)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and Path(f"/proc/{w}/stat").read_text().split()[2] != "Z"]
    assert not alive, f"workers {alive} outlived their parent"
