"""Client training on worker processes and on Ray actors (a local Ray cluster) gives the same
traces, bit for bit, as training in the run's own process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cosim.cli import app

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

# A few rounds of every client of grid_small with learning on, clients trained two per pass, so
# that two actors each get chunks; GradNorm, so balancer state has to travel with the clients.
SETTINGS = ["duration_s=60", "aggregation.max_rounds=3", "learning.enabled=true",
            "clients.count=5", "scheduling.per_round=5", "scheduling.policy=all_connected",
            "aggregation.round_deadline_s=15", "learning.data.synthetic.segments=7",
            "learning.data.synthetic.frames=3", "learning.data.clients=5",
            "learning.data.heldout_segments=2", "learning.local.batch_size=2",
            "learning.local.clients_per_pass=2", "learning.balancing.method=gradnorm",
            "learning.local.threads=1"]


def _run(scenario: Path, out: Path, extra: list[str]) -> dict[str, str]:
    args = ["run", str(scenario), "--out", str(out), "--quiet"]
    for item in [*SETTINGS, *extra]:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    digests = {}
    for path in sorted(out.glob("*.parquet")):
        digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    grid_small = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    out = tmp_path_factory.mktemp("local") / "run"
    return grid_small, out, _run(grid_small, out, [])


@pytest.mark.parametrize("backend", ["processes", "ray"])
def test_workers_train_bit_identically_to_local(local_run, tmp_path, backend):
    if backend == "ray":
        ray = pytest.importorskip("ray")
    grid_small, local_out, local = local_run
    remote = _run(grid_small, tmp_path / backend, [f"learning.local.backend={backend}",
                                                   "learning.local.workers=2"])
    assert remote == local
    trainer = json.loads((tmp_path / backend / "run.json").read_text())["summary"]["learning"]["trainer"]
    assert trainer["backend"] == backend and trainer.get("workers", trainer.get("actors")) == 2
    assert trainer["passes"] >= 3
    rounds = pq.read_table(local_out / "participation.parquet").to_pandas()
    assert (rounds.outcome == "completed").sum() >= 6  # several passes of two clients were trained
    if backend == "ray":
        assert not ray.is_initialized()  # the run shut down the Ray it started
