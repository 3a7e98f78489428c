"""The default hour (sf_downtown) replayed from a recorded mobility trace, in this process: wall
time, rounds, final headline metrics against the model-free lookup baseline, and on CUDA the peak
GPU memory (``torch.cuda.max_memory_allocated``) of the whole run.

    python bench/gpu/hour.py --trace BUNDLE/trace --out RESULT.json [--run-dir DIR]
                             [--duration-s 3600] [--png FILE] [--set KEY=VALUE ...]

``--trace`` is the folder ``bench/gpu/bundle.py`` writes (``mobility.parquet`` and
``sf_downtown.net.xml``): the run reads the built network instead of building it (netconvert is
SUMO's) and replays the trace (``mobility.replay``), so no SUMO is needed. ``--set`` items go to
the scenario (the model, its checkpoint, the data, ``learning.local.device``, the precision).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from precision_hour import headline  # noqa: E402

from cosim.names import HEADLINE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "sf_downtown.yaml"))
    parser.add_argument("--trace", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the results (JSON)")
    parser.add_argument("--run-dir", type=Path, help="the run's folder (default: beside --out)")
    parser.add_argument("--duration-s", type=float, default=3600.0)
    parser.add_argument("--png", type=Path, help="the headline metrics over the hour (PNG)")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    trace = args.trace.resolve()
    for need in ("mobility.parquet", "sf_downtown.net.xml"):
        if not (trace / need).is_file():
            raise SystemExit(f"error: {trace / need} is missing: build the bundle with bench/gpu/bundle.py")
    import torch

    from cosim.api import run

    run_dir = args.run_dir or args.out.with_name(args.out.stem + "-run")
    overrides = ["mobility.plain=null", f"mobility.net={trace / 'sf_downtown.net.xml'}",
                 f"mobility.replay={trace / 'mobility.parquet'}", f"duration_s={args.duration_s:g}",
                 *args.set]
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    print(f"replaying {args.duration_s:g} s of sf_downtown ({' '.join(args.set)}) ...", flush=True)
    t0 = time.perf_counter()
    done = run(args.scenario, out=run_dir, overrides=overrides, overwrite=True)
    wall = time.perf_counter() - t0
    info = done.info
    learning = info["summary"]["learning"]
    lookup = learning["lookup_baseline"]
    metrics = headline(run_dir)
    result = {
        "wall_s": wall, "run_wall_time_s": info.get("wall_time_s"), "sim_time_s": info.get("sim_time_s"),
        "rounds": learning["rounds"], "model_version": learning.get("model_version"),
        "precision": learning["precision"], "trainer": learning["trainer"],
        "model": info["scenario"]["learning"]["model"]["name"],
        "deployed_model": info["scenario"]["learning"]["deployed_model"],
        "device": info["scenario"]["learning"]["local"]["device"],
        "cuda_device": torch.cuda.get_device_name() if cuda else None,
        "peak_gpu_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "headline": {t: {"metric": m, "final": metrics.get(t, (None, None))[0],
                         "mean_over_evaluations": metrics.get(t, (None, None))[1],
                         "lookup": lookup.get(t, {}).get(m)} for t, m in HEADLINE.items()},
        "evaluation_wall_s": learning.get("evaluation_wall_s"), "versions": info["versions"],
        "torch_threads": info.get("torch_threads"), "overrides": overrides, "run_dir": str(run_dir),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{wall:.1f} s wall, {result['rounds']} rounds, {result['precision']['precision']}"
          + (f", peak GPU memory {result['peak_gpu_bytes'] / 2**30:.2f} GiB" if cuda else ""))
    for task, h in result["headline"].items():
        final = "-" if h["final"] is None else f"{h['final']:.3f}"
        look = "-" if h["lookup"] is None else f"{h['lookup']:.3f}"
        print(f"  {task} ({h['metric']}): final {final}, lookup {look}")
    if args.png:
        plot(run_dir, args.png)


def plot(run_dir: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyarrow.parquet as pq

    table = pq.read_table(run_dir / "metrics.parquet").to_pandas()
    table = table[table["client"].isna()] if "client" in table else table
    fig, axes = plt.subplots(1, len(HEADLINE), figsize=(4 * len(HEADLINE), 3))
    for ax, (task, metric) in zip(axes, HEADLINE.items(), strict=True):
        rows = table[(table["task"] == task) & (table["metric"] == metric)].sort_values("sim_time_s")
        ax.plot(rows["sim_time_s"], rows["value"], marker="o")
        ax.set_title(f"{task} ({metric})")
        ax.set_xlabel("simulated s")
    fig.tight_layout()
    fig.savefig(png, dpi=80)


if __name__ == "__main__":
    main()
