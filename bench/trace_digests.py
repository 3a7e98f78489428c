"""Trace digests of a fixed set of runs: record them before a refactor, check them after.

A refactor must change no behaviour. This runs a fixed set of scenarios (grid_small with learning
on and a 600 s sf_downtown, each with sync, FedAsync, FedBuff and hierarchical aggregation, plus a
few cases that exercise other branches) through the ``cosim`` command line and hashes every
Parquet trace each run writes. The hash is over the file's bytes, except for metrics.parquet, which
held wall-clock time (``metrics.wall_time_s``, now in run.json) in earlier versions: for that table
the hash is over the Arrow IPC bytes of the table without that column, so digests recorded before
and after the move compare.

    python bench/trace_digests.py record bench/digests/before_core_reshape.json [--only NAME ...]
    python bench/trace_digests.py check  bench/digests/before_core_reshape.json [--only NAME ...] [--set K=V]

``check`` exits 1 and names every table whose digest differs. Every case runs in fp32 (the
embedded scenarios' ``precision: auto`` would pick bf16 on a machine with bfloat16 units):
digests recorded before the setting existed still compare.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
WALL_CLOCK_COLUMNS = {"metrics": ["wall_time_s"]}
# Columns added later that stay null unless a feature is on (metrics.client/model: per-client
# rows of learning.personalisation): dropped when entirely null, so older digests still compare.
NULL_UNLESS_USED = {"metrics": ["client", "model"]}

GRID = "scenarios/grid_small.yaml"
SF = "scenarios/sf_downtown.yaml"
# grid_small has no learning section: turn it on with short rounds so each method does several.
GRID_LEARNING = ["learning.enabled=true", "learning.data.frame_stride=4",
                 "aggregation.eval_every_rounds=1", "learning.precision=fp32"]
# Whole aggregation sections (not just the method), so the same overrides mean the same thing
# whether the settings of other methods are allowed in the section or not.
GRID_AGGREGATION = {
    "sync": "{method: sync, round_deadline_s: 20, eval_every_rounds: 1}",
    "fedasync": "{method: fedasync, round_deadline_s: 20, eval_every_rounds: 2}",
    "fedbuff": "{method: fedbuff, round_deadline_s: 20, buffer_size: 3, eval_every_rounds: 1}",
    "hierarchical": "{method: hierarchical, edge_period_s: 15, cloud_every: 2, eval_every_rounds: 1}",
}
# The asynchronous methods train every arrival: cap the model versions (the run still spans its
# whole duration, so mobility and radio traces cover it) to keep each case to minutes.
SF_AGGREGATION = {
    "sync": None,  # the scenario's own section
    "fedasync": "{method: fedasync, round_deadline_s: 120, eval_every_rounds: 10, max_rounds: 20, "
                "end_run_at_max_rounds: false}",
    "fedbuff": "{method: fedbuff, round_deadline_s: 120, eval_every_rounds: 2, max_rounds: 4, "
               "end_run_at_max_rounds: false}",
    "hierarchical": "{method: hierarchical, eval_every_rounds: 1, max_rounds: 2, "
                    "end_run_at_max_rounds: false}",
}


def cases() -> dict[str, tuple[str, list[str]]]:
    out: dict[str, tuple[str, list[str]]] = {}
    for method, section in GRID_AGGREGATION.items():
        out[f"grid_small-{method}"] = (GRID, [*GRID_LEARNING, f"aggregation={section}"])
    for method, section in SF_AGGREGATION.items():
        extra = [] if section is None else [f"aggregation={section}"]
        out[f"sf_downtown-{method}"] = (SF, ["duration_s=600", "learning.precision=fp32", *extra])
    # Branches the four above do not reach: Oort reads the losses clients report, ideal
    # connectivity has no radio, the MoE adapter has an auxiliary loss, GradNorm/CAGrad balance.
    out["grid_small-fedbuff-oort"] = (GRID, [*GRID_LEARNING, f"aggregation={GRID_AGGREGATION['fedbuff']}",
                                             "scheduling.policy=oort"])
    out["grid_small-ideal-sync"] = (GRID, [*GRID_LEARNING, f"aggregation={GRID_AGGREGATION['sync']}",
                                           "clients.ideal_connectivity=true", "radio=null",
                                           "scheduling.policy=all_connected"])
    out["grid_small-moe-cagrad"] = (GRID, [*GRID_LEARNING, f"aggregation={GRID_AGGREGATION['sync']}",
                                           "learning.model.peft.method=moe_adapter",
                                           "learning.balancing.method=cagrad"])
    out["grid_small-lora-gradnorm-fedasync"] = (
        GRID, [*GRID_LEARNING, f"aggregation={GRID_AGGREGATION['fedasync']}",
               "learning.model.peft.method=lora", "learning.balancing.method=gradnorm"])
    return out


def table_digest(path: Path) -> str:
    name = path.name.removesuffix(".parquet")
    if name not in WALL_CLOCK_COLUMNS and name not in NULL_UNLESS_USED:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    table = pq.read_table(path)
    drop = [c for c in WALL_CLOCK_COLUMNS.get(name, []) if c in table.column_names]
    drop += [c for c in NULL_UNLESS_USED.get(name, [])
             if c in table.column_names and table[c].null_count == table.num_rows]
    table = table.drop(drop)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def run_case(scenario: str, overrides: list[str], out: Path) -> dict[str, str]:
    cmd = [sys.executable, "-c", "from cosim.cli import main; main()", "run", str(ROOT / scenario),
           "--out", str(out), "--quiet"]
    for item in overrides:
        cmd += ["--set", item]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{scenario} {overrides}: exit {done.returncode}: {done.stderr.strip()[-800:]}")
    info = json.loads((out / "run.json").read_text())
    if info["status"] != "complete":
        raise SystemExit(f"{out}: run ended {info['status']}")
    return {p.name: table_digest(p) for p in sorted(out.glob("*.parquet"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("verb", choices=["record", "check"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    parser.add_argument("--set", action="append", default=[], dest="extra",
                        help="an override added to every case (e.g. to check one code path)")
    args = parser.parse_args()
    recorded = json.loads(args.file.read_text()) if args.file.is_file() else {}
    chosen = {k: v for k, v in cases().items() if not args.only or k in args.only}
    if args.verb == "check" and not args.only:  # what the file holds (cases added later are new)
        for name in sorted(set(chosen) - set(recorded)):
            print(f"{name}: not in {args.file}, skipped")
        chosen = {k: v for k, v in chosen.items() if k in recorded}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (scenario, overrides) in chosen.items():
            t0 = time.perf_counter()
            digests = run_case(scenario, [*overrides, *args.extra], Path(tmp) / name)
            wall = time.perf_counter() - t0
            if args.verb == "record":
                recorded[name] = digests
                args.file.parent.mkdir(parents=True, exist_ok=True)
                args.file.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
                print(f"{name}: {len(digests)} tables recorded ({wall:.0f} s)", flush=True)
                continue
            want = recorded.get(name)
            if want is None:
                failures.append(f"{name}: nothing recorded")
                continue
            bad = sorted(t for t in set(want) | set(digests) if want.get(t) != digests.get(t))
            status = "identical" if not bad else "DIFFERENT: " + ", ".join(bad)
            print(f"{name}: {len(digests)} tables {status} ({wall:.0f} s)", flush=True)
            failures += [f"{name}: {t}" for t in bad]
    if args.verb == "check" and failures:
        raise SystemExit("differs: " + "; ".join(failures))
    elif args.verb == "check":
        print(f"all {len(chosen)} runs: every Parquet trace identical to {args.file}")


if __name__ == "__main__":
    main()
