"""A run's traces do not depend on how many runs share the machine: `cosim compare --jobs N`
gives each worker cores / N torch threads and OMP_NUM_THREADS changes torch's default, but the
scenario fixes the threads a run computes with, so the bytes are the same."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cosim.compare_job import RunJob, run_one
from cosim.scenario_loader import ScenarioSpec

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
GRID = REPO / "scenarios" / "grid_small.yaml"
LEARNING = ("duration_s=40", "aggregation.max_rounds=2", "learning.enabled=true", "clients.count=3",
            "scheduling.per_round=2", "aggregation.round_deadline_s=10",
            "learning.data.synthetic.segments=5", "learning.data.synthetic.frames=4",
            "learning.data.clients=3", "learning.data.heldout_segments=2",
            "learning.local.batch_size=4", "learning.precision=fp32")


def _traces(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.glob("*.parquet"))}


def test_compare_jobs_do_not_change_a_runs_traces(tmp_path):
    before = torch.get_num_threads()
    try:
        spec = ScenarioSpec.read(GRID, LEARNING)
        runs = [run_one(RunJob(spec, str(tmp_path / f"threads{n}"), n)) for n in (1, 2)]
    finally:
        torch.set_num_threads(before)
    assert _traces(Path(runs[0])) == _traces(Path(runs[1]))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: torch's default is one thread")
def test_omp_num_threads_does_not_change_a_runs_traces(tmp_path):
    digests = []
    for n in ("1", str(os.cpu_count())):
        out = tmp_path / f"omp{n}"
        cmd = [sys.executable, "-m", "cosim.cli", "run", str(GRID), "--out", str(out), "-q",
               *[a for o in LEARNING for a in ("--set", o)]]
        done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": n}, capture_output=True,
                              text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        digests.append(_traces(out))
    assert digests[0] == digests[1]
