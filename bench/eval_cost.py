"""What evaluating every round costs: the same run evaluated every round and every Nth round,
side by side.

``cosim compare`` evaluates every round (its curves need the resolution). Each pair runs the
scenario twice as separate processes, alternated (ABBA), once with
``aggregation.eval_every_rounds=1`` and once with ``=N``; the wall-time difference divided by
the every-round run's wall time is the share of it that the extra evaluations cost (the N-th
round evaluations that both do are a further ~1/N of that). Background evaluation
(``learning.evaluation.background``) is as the scenario sets it.

    python bench/eval_cost.py [--scenario scenarios/sf_downtown.yaml] [--pairs 2] [--every 5]
                              [--set duration_s=1800 ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(scenario: str, every: int, out: Path, extra: list[str]) -> tuple[float, dict]:
    cmd = [sys.executable, "-c", "from cosim.cli import main; main()", "run", scenario, "--out",
           str(out), "--quiet", "--set", f"aggregation.eval_every_rounds={every}"]
    for item in extra:
        cmd += ["--set", item]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip()[-800:]}")
    return wall, json.loads((out / "run.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/sf_downtown.yaml")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], dest="extra")
    args = parser.parse_args()
    walls: dict[int, list[float]] = {1: [], args.every: []}
    evaluations: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            order = (1, args.every) if pair % 2 == 0 else (args.every, 1)
            for every in order:
                wall, info = run(args.scenario, every, Path(tmp) / f"p{pair}-e{every}", args.extra)
                walls[every].append(wall)
                evaluations[every] = len(info["summary"]["learning"]["evaluation_wall_s"])
                print(f"pair {pair}: every {every} round(s): {wall:.1f} s wall, "
                      f"{evaluations[every]} evaluations", flush=True)
    mean = {k: sum(v) / len(v) for k, v in walls.items()}
    extra = mean[1] - mean[args.every]
    per = extra / max(evaluations[1] - evaluations[args.every], 1)
    share = per * evaluations[1] / mean[1]
    print(f"every round: {mean[1]:.1f} s; every {args.every}: {mean[args.every]:.1f} s "
          f"(means of {args.pairs}); {extra:.1f} s for {evaluations[1] - evaluations[args.every]} "
          f"more evaluations = {per:.2f} s each; all {evaluations[1]} evaluations of the "
          f"every-round run: {share:.1%} of its wall time")


if __name__ == "__main__":
    main()
