"""Sequential vs batched local updates, in float32 and bfloat16, measured side by side in one
process.

For K clients of the default scenario (sf_downtown's model, data and local settings), the same K
local updates from the same start state run (a) one after another through ``local_update``, (b)
as one batched pass (``cosim/learning/batched.py``) and (c) as batched passes on ``--workers``
threads with ``--worker-threads`` torch threads each (``learning.local.backend: threads``: the K
clients split into one pass per worker; fewer clients than workers train in this thread), each
in every precision asked for (``learning.precision``: a model per precision, the same start
weights). All are timed alternately, ``--reps`` times; the medians are printed per K with the
batched paths' speed-up over (a) of the same precision, and bf16's speed-up over fp32 on the same
path. The batched paths' frozen-prefix cache is warmed first, as it is after a run's first round.
Also prints, per precision, the largest parameter difference between (a) and (b).

    python bench/train_clients.py [--ks 1,5,10,20] [--reps 3] [--epochs 1] [--precisions fp32,bf16]
                                  [--device auto|cpu|cuda] [--paths sequential,batched,threads]
                                  [--json FILE]

``--paths`` times a subset (the parameter difference needs sequential and batched); ``--json``
writes every median, speed-up and difference (and on CUDA the peak GPU memory per K and
precision, ``torch.cuda.max_memory_allocated``) to FILE.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from cosim.learning.balancing import GradientBalancer
from cosim.learning.batched import ClientJob, PrefixCache, batched_local_updates
from cosim.learning.data.datasets import ClientDataset, SampleCache, open_dataset
from cosim.learning.data.partition import partition
from cosim.learning.federated.remote import ThreadTrainer
from cosim.learning.federated.training import LocalTrainer, TrainJob
from cosim.learning.grid import Geometry
from cosim.learning.local import local_update
from cosim.learning.model import M3TModel
from cosim.learning.precision import pick_device, resolve
from cosim.scenario import Scenario
from cosim.scenario_loader import load_scenario

PATHS = ("sequential", "batched", "threads")


@dataclass
class Setup:
    """One precision's model, its prefix cache and its thread trainer."""

    model: M3TModel
    prefix: PrefixCache
    threaded: ThreadTrainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/sf_downtown.yaml")
    parser.add_argument("--ks", default="1,5,10,20")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--workers", type=int, default=2, help="worker threads of (c)")
    parser.add_argument("--worker-threads", type=int, default=1, help="torch threads per worker of (c)")
    parser.add_argument("--set", action="append", default=[], help="scenario override key=value")
    parser.add_argument("--paths", default=",".join(PATHS), help="which of " + ", ".join(PATHS))
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args()
    paths = tuple(p for p in PATHS if p in args.paths.split(","))
    if not paths or set(args.paths.split(",")) - set(PATHS):
        parser.error(f"--paths: give some of {', '.join(PATHS)}")
    device = pick_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda: no CUDA device is available (torch {torch.__version__})")
    sc, setups, clients = prepare(args.scenario, args.set, args.precisions.split(","), device,
                                  args.epochs, args.workers, args.worker_threads)
    cfg = sc.learning
    local = cfg.local.model_copy(update={"epochs": args.epochs})
    precisions = list(setups)
    start = next(iter(setups.values())).model.export_modules(next(iter(setups.values())).model.module_names())
    print(f"model {cfg.model.name}, PEFT {cfg.model.peft.method}, {local.epochs} epoch(s) of "
          f"batch {local.batch_size}, balancing {cfg.balancing.method}, device {device}, "
          f"threads {torch.get_num_threads()}, precisions {', '.join(precisions)}")
    print(f"threads: {args.workers} workers x {args.worker_threads} torch thread(s), one pass per worker")
    header = f"{'K':>3} {'precision':>9} " + " ".join(f"{p + ' s':>13}" for p in paths)
    header += "".join(f" {p + '/seq':>11}" for p in paths[1:] if "sequential" in paths)
    header += f" {'max |diff|':>11}"
    if len(precisions) > 1:
        header += " " + " ".join(f"{p + ' ' + precisions[0] + '/' + prec:>24}" for prec in precisions[1:]
                                 for p in paths)
    print(header)
    rows: list[dict] = []
    for k in [int(x) for x in args.ks.split(",")]:
        if k > len(clients):
            print(f"{k:>3} (the scenario has {len(clients)} clients)")
            continue
        chosen = clients[:k]
        fns = {(prec, path): _path(path, setups[prec], chosen, start, local, cfg.balancing, k)
               for prec in precisions for path in paths}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for prec in precisions:
            if "batched" in paths:
                fns[prec, "batched"]()  # warm the prefix cache (a run's first round does this)
        times: dict[tuple[str, str], list[float]] = {key: [] for key in fns}
        outputs = {}
        for _ in range(args.reps):
            for key, fn in fns.items():
                _sync(device)
                t0 = time.perf_counter()
                outputs[key] = fn()
                _sync(device)
                times[key].append(time.perf_counter() - t0)
        med = {key: statistics.median(v) for key, v in times.items()}
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        for prec in precisions:
            diff = float("nan")
            if {"sequential", "batched"} <= set(paths):
                diff = max(float((a[key] - b[key]).abs().max()) for a, b in
                           zip(outputs[prec, "sequential"], outputs[prec, "batched"], strict=True)
                           for key in a if "running_" not in key and "num_batches" not in key)
            line = f"{k:>3} {prec:>9} " + " ".join(f"{med[prec, p]:>13.2f}" for p in paths)
            speedups = {p: med[prec, "sequential"] / med[prec, p] for p in paths[1:] if "sequential" in paths}
            line += "".join(f" {x:>10.2f}x" for x in speedups.values()) + f" {diff:>11.2e}"
            vs_first = ({p: med[precisions[0], p] / med[prec, p] for p in paths}
                        if prec != precisions[0] else {})
            line += "".join(f" {x:>23.2f}x" for x in vs_first.values())
            print(line, flush=True)
            rows.append({"k": k, "precision": prec, "median_s": {p: med[prec, p] for p in paths},
                         "times_s": {p: times[prec, p] for p in paths}, "speedup_over_sequential": speedups,
                         f"speedup_of_{prec}_over_{precisions[0]}": vs_first or None,
                         "max_abs_diff_sequential_batched": diff, "peak_gpu_bytes_all_precisions": peak})
    for s in setups.values():
        s.threaded.close()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "scenario": args.scenario, "model": cfg.model.name, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "epochs": local.epochs,
            "batch_size": local.batch_size, "reps": args.reps, "paths": list(paths),
            "workers": args.workers, "worker_threads": args.worker_threads, "set": args.set,
            "rows": rows}, indent=1) + "\n")


def prepare(scenario: str, sets: list[str], precisions: list[str], device: torch.device, epochs: int = 1,
            workers: int = 2, worker_threads: int = 1
            ) -> tuple[Scenario, dict[str, Setup], list[ClientDataset]]:
    """The scenario, a model per precision (the same start weights) with its prefix cache and
    thread trainer, and the clients' datasets with every sample decoded once."""
    sc = load_scenario(scenario, sets)
    threaded_sc = load_scenario(scenario, [*sets, "learning.local.backend=threads",
                                           f"learning.local.workers={workers}",
                                           f"learning.local.threads={worker_threads}",
                                           f"learning.local.epochs={epochs}"])
    cfg = sc.learning
    assert cfg is not None  # the benchmarks' scenarios train
    local = cfg.local.model_copy(update={"epochs": epochs})
    setups: dict[str, Setup] = {}
    clients: list[ClientDataset] = []
    for precision in (resolve(p, device).name for p in precisions):
        torch.manual_seed(0)  # the same start weights in every precision
        model = M3TModel(cfg.model).to(device)
        model.set_precision(precision)
        if not clients:
            geometry = Geometry(model.image_size, 4 * model.grid, cfg.model.bev_range_m)
            dataset = open_dataset(cfg.data)
            frames, city = dataset.describe()
            shards = partition(frames, city, cfg.data, sc.seed).clients
            cache = SampleCache(dataset, geometry, cfg.data.cache_frames)
            clients = [ClientDataset(s, cache) for s in shards]
            for c in clients:  # decode every sample once: every path reads from memory
                for i in range(len(c)):
                    c[i]
        trainer = LocalTrainer(model, clients, local, cfg.balancing, ())
        setups[precision] = Setup(model, trainer.prefix, ThreadTrainer(
            threaded_sc.learning, threaded_sc.seeds(), trainer))
    return sc, setups, clients


def _path(path: str, setup: Setup, chosen: list[ClientDataset], start, local, balancing, k: int):
    if path == "sequential":
        return lambda: [local_update(setup.model, start, c, local, balancing, seed=i, count_flops=False,
                                     balancer=GradientBalancer(balancing, c.tasks))[0]
                        for i, c in enumerate(chosen)]
    if path == "batched":
        def batched():
            jobs = [ClientJob(start, c, i, GradientBalancer(balancing, c.tasks))
                    for i, c in enumerate(chosen)]
            out = batched_local_updates(setup.model, jobs, local, balancing, prefix=setup.prefix)
            return [m for m, _ in out]
        return batched

    def on_threads():
        setup.threaded.local.balancers.clear()  # fresh balancers, as the other two paths
        return [u.modules for u in setup.threaded.train([TrainJob(i, start, i) for i in range(k)])]
    return on_threads


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
