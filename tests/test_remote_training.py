"""Client training on Ray actors (a local Ray cluster) gives the same traces, bit for bit, as
training in the run's own process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cosim.cli import app

ray = pytest.importorskip("ray")

# A few rounds of every client of grid_small with learning on, clients trained two per pass, so
# that two actors each get chunks; GradNorm, so balancer state has to travel with the clients.
SETTINGS = ["duration_s=60", "aggregation.max_rounds=3", "learning.enabled=true",
            "clients.count=5", "scheduling.per_round=5", "scheduling.policy=all_connected",
            "aggregation.round_deadline_s=15", "learning.data.synthetic.segments=7",
            "learning.data.synthetic.frames=3", "learning.data.clients=5",
            "learning.data.heldout_segments=2", "learning.local.batch_size=2",
            "learning.local.clients_per_pass=2", "learning.balancing.method=gradnorm"]


def _run(scenario: Path, out: Path, extra: list[str]) -> dict[str, str]:
    args = ["run", str(scenario), "--out", str(out), "--quiet"]
    for item in [*SETTINGS, *extra]:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    digests = {}
    for path in sorted(out.glob("*.parquet")):
        table = pq.read_table(path)
        if "wall_time_s" in table.column_names:
            table = table.drop(["wall_time_s"])
        digests[path.name] = hashlib.sha256(str(table.to_pydict()).encode()).hexdigest()
    return digests


def test_ray_actors_train_bit_identically_to_local(grid_small, tmp_path):
    local = _run(grid_small, tmp_path / "local", [])
    remote = _run(grid_small, tmp_path / "ray", ["learning.local.backend=ray",
                                                 "learning.local.ray_actors=2"])
    assert remote == local
    trainer = json.loads((tmp_path / "ray" / "run.json").read_text())["summary"]["learning"]["trainer"]
    assert trainer["backend"] == "ray" and trainer["actors"] == 2 and trainer["passes"] >= 3
    rounds = pq.read_table(tmp_path / "local" / "participation.parquet").to_pandas()
    assert (rounds.outcome == "completed").sum() >= 6  # several passes of two clients were trained
    assert not ray.is_initialized()  # the run shut down the Ray it started
