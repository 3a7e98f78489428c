"""The default hour in float32 and in bfloat16, side by side: wall time, and what each learns.

For each scenario seed, ``cosim run SCENARIO --seed S`` runs once with
``learning.precision=fp32`` and once with ``bf16``, alternated (the first pair fp32 first, the
next bf16 first, ...), each as its own process; the wall time and CPU time of each are measured
here. Then, per task, the headline metric at the end of the hour and its mean over the hour's
evaluations: per seed bf16 minus fp32, against the fp32 seed-to-seed spread (sample standard
deviation over the seeds), and whether bf16 beats the model-free lookup baseline on every seed.

    python bench/precision_hour.py [--seeds 42,1,2] [--out DIR] [--set KEY=VALUE ...]
    python bench/precision_hour.py --profile [--seeds 42] [--precision bf16]   # where time goes

``--profile`` runs one run per seed under py-spy (``pip install py-spy``; sampling at 50 Hz,
every thread) and prints the samples per phase: the training forward, backward and optimiser,
batch assembly, evaluation (and the lookup baseline), the radio and SimPy, SUMO, and the rest.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cosim.names import HEADLINE  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def run(scenario: str, seed: int, precision: str, out: Path, extra: list[str],
        wrap: list[str] | None = None) -> dict:
    """One ``cosim run``; its wall and CPU seconds, and what run.json says."""
    cmd = [*(wrap or []), sys.executable, "-c", "from cosim.cli import main; main()", "run", scenario,
           "--seed", str(seed), "--out", str(out), "--quiet", "--set", f"learning.precision={precision}"]
    for item in extra:
        cmd += ["--set", item]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip()[-800:]}")
    info = json.loads((out / "run.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "info": info}


def headline(out: Path) -> dict[str, tuple[float, float]]:
    """Per task: the headline metric at the last evaluation, and its mean over the evaluations."""
    table = pq.read_table(out / "metrics.parquet").to_pandas()
    table = table[table["client"].isna()] if "client" in table else table
    result = {}
    for task, metric in HEADLINE.items():
        rows = table[(table["task"] == task) & (table["metric"] == metric)].sort_values("sim_time_s")
        if len(rows):
            result[task] = (float(rows["value"].iloc[-1]), float(rows["value"].mean()))
    return result


def compare(args: argparse.Namespace, folder: Path) -> dict:
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: dict[tuple[int, str], dict] = {}
    for i, seed in enumerate(seeds):
        order = PRECISIONS if i % 2 == 0 else PRECISIONS[::-1]
        for precision in order:
            out = folder / f"seed{seed}-{precision}"
            result = run(args.scenario, seed, precision, out, args.set)
            result["metrics"] = headline(out)
            ran = result["info"]["summary"]["learning"]["precision"]
            runs[seed, precision] = result
            print(f"seed {seed} {precision}: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU "
                  f"(ran {ran['precision']}: {ran['reason']})", flush=True)
    print(f"\n{'seed':>5} {'fp32 wall s':>12} {'bf16 wall s':>12} {'bf16/fp32':>10} {'fp32 CPU s':>11} "
          f"{'bf16 CPU s':>11} {'bf16/fp32':>10}")
    for seed in seeds:
        f, b = runs[seed, "fp32"], runs[seed, "bf16"]
        print(f"{seed:>5} {f['wall_s']:>12.1f} {b['wall_s']:>12.1f} {b['wall_s'] / f['wall_s']:>10.2f} "
              f"{f['cpu_s']:>11.1f} {b['cpu_s']:>11.1f} {b['cpu_s'] / f['cpu_s']:>10.2f}")
    rows = equivalence(seeds, runs)
    return {"seeds": seeds, "scenario": args.scenario, "overrides": args.set,
            "runs": {f"{s}-{p}": {k: v for k, v in r.items() if k != "info"} for (s, p), r in runs.items()},
            "lookup": {s: runs[s, "bf16"]["info"]["summary"]["learning"]["lookup_baseline"] for s in seeds},
            "equivalence": rows}


def equivalence(seeds: list[int], runs: dict) -> list[dict]:
    """Per task and statistic: bf16 - fp32 per seed, the fp32 spread over seeds, the lookup."""
    out = []
    print(f"\n{'task (metric)':<20} {'statistic':<22} {'fp32 mean':>9} {'bf16 mean':>9} "
          f"{'bf16-fp32 per seed':>26} {'fp32 sd':>8} {'lookup':>8} {'bf16 > lookup':>13}")
    for task, metric in HEADLINE.items():
        for index, statistic in ((0, "final"), (1, "mean of evaluations")):
            fp32 = [runs[s, "fp32"]["metrics"][task][index] for s in seeds]
            bf16 = [runs[s, "bf16"]["metrics"][task][index] for s in seeds]
            lookup = [runs[s, "bf16"]["info"]["summary"]["learning"]["lookup_baseline"][task][metric]
                      for s in seeds]
            diffs = [b - f for b, f in zip(bf16, fp32, strict=True)]
            spread = statistics.stdev(fp32) if len(fp32) > 1 else float("nan")
            above = all(b > x for b, x in zip(bf16, lookup, strict=True)) if statistic == "final" else None
            print(f"{task + ' (' + metric + ')':<20} {statistic:<22} {statistics.mean(fp32):>9.3f} "
                  f"{statistics.mean(bf16):>9.3f} {' '.join(f'{d:+.3f}' for d in diffs):>26} "
                  f"{spread:>8.3f} {statistics.mean(lookup):>8.3f} {'' if above is None else str(above):>13}")
            out.append({"task": task, "metric": metric, "statistic": statistic, "fp32": fp32, "bf16": bf16,
                        "bf16_minus_fp32": diffs, "fp32_sd": spread, "lookup": lookup,
                        "bf16_above_lookup": above})
    return out


# ---- where the time goes ------------------------------------------------------------------------
PHASES = [  # the first whose marker is in a sample's stack names it (innermost frames first)
    ("evaluation", ("evaluation.py", "lookup.py", "personalisation.py")),
    ("optimiser", ("stacked_optim.py", "torch/optim/")),
    ("backward", ("run_backward", "_engine_run_backward", "autograd/__init__.py", "balancing.py")),
    ("batch assembly", ("_assemble", "collate", "datasets.py", "samples.py", "PrefixCache")),
    ("forward", ("model.py", "batched.py", "local.py")),
    ("radio and SimPy", ("cosim/radio/", "simpy/")),
    ("SUMO", ("cosim/mobility/", "libsumo", "traci")),
]


def phase_of(stack: str) -> str:
    for name, markers in PHASES:
        if any(m in stack for m in markers):
            return name
    return "other (start-up, traces, idle Python)"


def profile(args: argparse.Namespace, folder: Path) -> dict:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    result = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        raw = folder / f"seed{seed}-{args.precision}.pyspy.txt"
        wrap = [spy, "record", "--threads", "--rate", "50", "--format", "raw", "--output", str(raw), "--"]
        out = folder / f"seed{seed}-{args.precision}"
        done = run(args.scenario, seed, args.precision, out, args.set, wrap)
        phases: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            phases[phase_of(stack)] += int(count) / 50.0
        total = sum(phases.values())
        print(f"seed {seed} {args.precision}: {done['wall_s']:.1f} s wall under py-spy; sampled "
              f"thread-seconds (both cores: up to 2 per wall second), {total:.0f} in all:")
        for name, seconds in phases.most_common():
            print(f"  {name:<40} {seconds:>7.1f} s  {100 * seconds / total:>5.1f} %")
        result[seed] = dict(phases)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/sf_downtown.yaml")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--out", type=Path,
                        help="keep the runs and results.json here (default: a temporary folder)")
    parser.add_argument("--set", action="append", default=[], help="an override added to every run")
    parser.add_argument("--profile", action="store_true", help="where one run's time goes (py-spy)")
    parser.add_argument("--precision", default="bf16", choices=PRECISIONS, help="of --profile's run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        result = profile(args, folder) if args.profile else compare(args, folder)
        name = "profile.json" if args.profile else "results.json"
        (folder / name).write_text(json.dumps(result, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
