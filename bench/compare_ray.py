"""cosim compare on Ray: a local Ray instance of 1 worker vs 2 workers, timed in one process.

The grid: scenarios/grid_small.yaml (learning on, its tiny federation), policies
availability_aware and random, aggregation sync, seeds 0 and 1: 2 recordings, then 4 replays, each
a Ray task in a fresh worker process (``run_compare(..., backend="ray")``, as ``cosim compare
--backend ray --jobs N`` runs it). A short discarded compare first fills the build and data caches
(in a fresh cache folder), so neither timing pays for them. With N workers each run gets
cores // N torch threads, as in the CLI. Prints the wall time of each and the ratio 1 worker / 2
workers (this machine may be shared: compare the ratio, not absolute times).

    python bench/compare_ray.py [--duration 60] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from cosim.compare import CompareGrid, run_compare
from cosim.scenario_loader import ScenarioSpec

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
POLICIES = ("availability_aware", "random")


def timed(out: Path, grid: CompareGrid, overrides: list[str], workers: int) -> tuple[float, float]:
    """The compare's wall time, and its replays' mean own wall time (summary's wall_time_s)."""
    t0 = time.perf_counter()
    summary = run_compare(ScenarioSpec.read(SCENARIO, overrides), grid, out, workers, backend="ray")
    wall = time.perf_counter() - t0
    return wall, float(summary.to_pandas().wall_time_s.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="simulated seconds per run")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    grid = CompareGrid(POLICIES, ("sync",), seeds)
    overrides = [f"duration_s={args.duration:g}", "learning.enabled=true"]
    with tempfile.TemporaryDirectory(prefix="bench-compare-ray-") as scratch:
        os.environ.setdefault("COSIM_CACHE_DIR", str(Path(scratch) / "cache"))
        timed(Path(scratch) / "warm", CompareGrid(POLICIES[:1], ("sync",), seeds),
              ["duration_s=10", "learning.enabled=true"], 2)
        walls = {n: timed(Path(scratch) / f"ray-{n}", grid, overrides, n) for n in (1, 2)}
    runs = len(seeds) * (1 + len(POLICIES))
    print(f"grid_small, {args.duration:g} s simulated, {len(seeds)} recordings + "
          f"{len(seeds) * len(POLICIES)} replays ({runs} Ray tasks), {os.cpu_count()} cores, load "
          f"average {os.getloadavg()[0]:.1f} at the end")
    cores = os.cpu_count() or 1
    for n, (wall, per_run) in walls.items():
        threads = max(1, cores // n)
        print(f"  local Ray, {n} worker{'s' if n > 1 else ' '}: {wall:6.1f} s wall ({threads} torch "
              f"thread{'s' if threads > 1 else ''} per run; a replay takes {per_run:.1f} s on average)")
    print(f"  ratio 1 worker / 2 workers: {walls[1][0] / walls[2][0]:.2f}x")


if __name__ == "__main__":
    main()
