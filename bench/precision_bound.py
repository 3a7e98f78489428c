"""How far bfloat16 can speed up one batched training pass: its matrix work against the rest.

bf16 speeds up matrix products and convolutions (the CPU's AMX/AVX512-BF16 units, a GPU's
tensor cores); normalisations, activations, casts, concatenations, the optimiser's elementwise
updates and dispatch run about as fast as in fp32. This script profiles one batched pass of K
clients of the default scenario (the path a run's training takes, prefix cache warm) in fp32 and
in bf16 with ``torch.profiler`` (operator self time, no shapes recorded: recording shapes
distorts the small operators), splits each pass's operator time into matrix work and the rest,
and prints the bound that Amdahl's law puts on the bf16 speed-up: fp32 time over bf16's
non-matrix time, the speed-up if bf16's matrix work took no time at all. A target above the
bound needs less non-matrix work (fused kernels), not faster matrix units.

    python bench/precision_bound.py [--k 10] [--threads 1] [--reps 3] [--top 12] [--set KEY=VALUE]

The passes are also timed without the profiler, alternated, ``--reps`` times (medians).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_clients import _path, prepare  # noqa: E402

from cosim.learning.precision import pick_device  # noqa: E402

# Operators whose work is a matrix product or a convolution (forward or backward), and the
# project's own autograd functions that wrap one.
MATRIX_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
              "aten::convolution_backward", "aten::_convolution", "aten::mkldnn_convolution",
              "aten::convolution", "_ConvTransposeSummedBias", "_ConvTransposeSummedBiasBackward")


def is_matrix(name: str) -> bool:
    return name in MATRIX_OPS or "scaled_dot_product" in name or "flash_attention" in name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/sf_downtown.yaml")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the pass")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--top", type=int, default=12, help="non-matrix operators to list")
    parser.add_argument("--set", action="append", default=[], help="scenario override key=value")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device("cpu")
    sc, setups, clients = prepare(args.scenario, args.set, ["fp32", "bf16"], device)
    cfg = sc.learning
    assert cfg is not None
    if args.k > len(clients):
        parser.error(f"--k: the scenario has {len(clients)} clients")
    first = setups["fp32"].model
    start = first.export_modules(first.module_names())
    passes = {p: _path("batched", s, clients[: args.k], start, cfg.local, cfg.balancing, args.k)
              for p, s in setups.items()}
    for run in passes.values():
        run()  # warm the prefix cache, as a run's first round does
    walls: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.reps):
        for precision, run in passes.items():
            t0 = time.perf_counter()
            run()
            walls[precision].append(time.perf_counter() - t0)
    split: dict[str, dict[str, float]] = {}
    rest_ops: dict[str, dict[str, float]] = {}
    for precision, run in passes.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        ops = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
        split[precision] = {"matrix": sum(t for n, t in ops.items() if is_matrix(n)),
                            "rest": sum(t for n, t in ops.items() if not is_matrix(n))}
        rest_ops[precision] = {n: t for n, t in ops.items() if not is_matrix(n)}
    wall = {p: statistics.median(v) for p, v in walls.items()}
    print(f"{cfg.model.name}, K = {args.k} clients, one batched pass, {args.threads} torch thread(s); "
          f"wall medians of {args.reps} alternated: fp32 {wall['fp32']:.2f} s, bf16 {wall['bf16']:.2f} s, "
          f"bf16 {wall['fp32'] / wall['bf16']:.2f}x faster")
    print(f"{'':>6} {'profiled s':>11} {'matrix s':>9} {'rest s':>7} {'rest share':>11}")
    for precision, parts in split.items():
        total = parts["matrix"] + parts["rest"]
        print(f"{precision:>6} {total:>11.2f} {parts['matrix']:>9.2f} {parts['rest']:>7.2f} "
              f"{parts['rest'] / total:>10.0%}")
    fp32_total = sum(split["fp32"].values())
    bf16_total = sum(split["bf16"].values())
    matrix_gain = split["fp32"]["matrix"] / split["bf16"]["matrix"]
    print(f"profiled bf16 speed-up {fp32_total / bf16_total:.2f}x; matrix work {matrix_gain:.2f}x "
          f"faster in bf16; bound with bf16 matrix work at zero: "
          f"{fp32_total / split['bf16']['rest']:.2f}x")
    print("largest non-matrix operators in bf16 (self s; fp32 beside):")
    for name, t in sorted(rest_ops["bf16"].items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {name[:60]:<60} {t:>6.2f}  {rest_ops['fp32'].get(name, 0.0):>6.2f}")


if __name__ == "__main__":
    main()
