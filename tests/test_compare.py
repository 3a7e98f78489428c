"""cosim compare: a grid of runs on one recorded connectivity per seed, summarised."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from cosim.cli import app

LEARNING = ["duration_s=40", "learning.enabled=true", "clients.count=3", "scheduling.per_round=2",
            "aggregation.round_deadline_s=10", "learning.data.synthetic.segments=5",
            "learning.data.synthetic.frames=2", "learning.data.clients=3",
            "learning.data.heldout_segments=2", "learning.local.batch_size=2"]


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def test_compare_two_policies_two_seeds(grid_small, tmp_path):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(out), "--policies",
                                      "availability_aware,random", "--seeds", "0,1", "--jobs", "2",
                                      "-q", *_sets(LEARNING)])
    assert result.exit_code == 0, result.output
    summary = pq.read_table(out / "summary.parquet").to_pandas()
    assert len(summary) == 4
    assert list(zip(summary.policy, summary.seed, strict=True)) == [
        ("availability_aware", 0), ("availability_aware", 1), ("random", 0), ("random", 1)]
    assert (summary.aggregation == "sync").all() and (summary.status == "complete").all()
    # the same connectivity for every policy of a seed, different between seeds
    per_seed = summary.groupby("seed").connectivity_digest.nunique()
    assert (per_seed == 1).all()
    assert summary.connectivity_digest.nunique() == 2
    for seed in (0, 1):
        runs = [Path(p) for p in summary[summary.seed == seed].run_dir]
        handoffs = [(r / "handoffs.parquet").read_bytes() for r in runs]
        assert handoffs[0] == handoffs[1]
    # the policies did act differently on it
    assert summary.attempts.gt(0).all()
    assert summary.final_seg3d.notna().all()
    assert {"time_to_target_seg3d_s", "dropped_deadline", "bytes_up", "mean_staleness",
            "participation_rate", "completion_rate", "wall_time_s"} <= set(summary.columns)
    csv = (out / "summary.csv").read_text().splitlines()
    assert len(csv) == 5 and csv[0].startswith("policy,aggregation,seed")
    info = json.loads((out / "compare.json").read_text())
    assert info["seeds"] == [0, 1] and info["connectivity_identical_per_seed"]
    assert "availability_aware" in result.output and "±" in result.output


def test_compare_rejects_bad_grids(grid_small, tmp_path):
    for args in (["--policies", "best"], ["--seeds", "a,b"], ["--aggregations", "fedmagic"]):
        result = CliRunner().invoke(app, ["compare", str(grid_small), "--out",
                                          str(tmp_path / "c"), *args, *_sets(LEARNING)])
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().startswith("error: ") and "\n" not in result.stderr.strip()
    result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "learning" in result.stderr
    assert not (tmp_path / "c").exists()
