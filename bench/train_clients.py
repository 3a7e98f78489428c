"""Sequential vs batched local updates, measured side by side in one process.

For K clients of the default scenario (sf_downtown's model, data and local settings), the same K
local updates from the same start state run (a) one after another through ``local_update`` and
(b) as one batched pass (``cosim/learning/batched.py``) and (c) as batched passes on ``--workers``
threads with ``--worker-threads`` torch threads each (``learning.local.backend: threads``: the K
clients split into one pass per worker; fewer clients than workers train in this thread); the
three are timed alternately, ``--reps`` times, and the ratios of the medians to (a) are printed
per K. The batched paths' frozen-prefix cache is
warmed first, as it is after a run's first round. Also prints the largest parameter difference
between (a) and (b) (float32; tests check 1e-5 in float64).

    python bench/train_clients.py [--ks 1,5,10,20] [--reps 3] [--epochs 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cosim.learning.balancing import GradientBalancer
from cosim.learning.batched import ClientJob, PrefixCache, batched_local_updates
from cosim.learning.data.datasets import ClientDataset, SampleCache, open_dataset
from cosim.learning.data.grid import Geometry
from cosim.learning.data.partition import partition
from cosim.learning.federated.remote import ThreadTrainer
from cosim.learning.federated.training import LocalTrainer, TrainJob
from cosim.learning.local import local_update
from cosim.learning.model import M3TModel
from cosim.learning.precision import pick_device
from cosim.scenario_loader import load_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/sf_downtown.yaml")
    parser.add_argument("--ks", default="1,5,10,20")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2, help="worker threads of (c)")
    parser.add_argument("--worker-threads", type=int, default=1, help="torch threads per worker of (c)")
    parser.add_argument("--set", action="append", default=[], help="scenario override key=value")
    args = parser.parse_args()
    sc = load_scenario(args.scenario, args.set)
    threaded_sc = load_scenario(args.scenario, [*args.set, "learning.local.backend=threads",
                                                f"learning.local.workers={args.workers}",
                                                f"learning.local.threads={args.worker_threads}",
                                                f"learning.local.epochs={args.epochs}"])
    cfg = sc.learning
    local = cfg.local.model_copy(update={"epochs": args.epochs})
    device = pick_device(args.device)
    torch.manual_seed(0)
    model = M3TModel(cfg.model).to(device)
    geometry = Geometry(model.image_size, 4 * model.grid, cfg.model.bev_range_m)
    dataset = open_dataset(cfg.data)
    frames, city = dataset.describe()
    shards = partition(frames, city, cfg.data, sc.seed).clients
    cache = SampleCache(dataset, geometry, cfg.data.cache_frames)
    clients = [ClientDataset(s, cache) for s in shards]
    for c in clients:  # decode every sample once: both paths read from memory
        for i in range(len(c)):
            c[i]
    start = model.export_modules(model.module_names())
    prefix = PrefixCache()
    local_trainer = LocalTrainer(model, clients, local, cfg.balancing, ())
    local_trainer.prefix = prefix  # the worker threads share it
    threaded = ThreadTrainer(threaded_sc, local_trainer)
    print(f"model {cfg.model.name}, PEFT {cfg.model.peft.method}, {local.epochs} epoch(s) of "
          f"batch {local.batch_size}, balancing {cfg.balancing.method}, device {device}, "
          f"threads {torch.get_num_threads()}")
    print(f"threads: {args.workers} workers x {args.worker_threads} torch thread(s), one pass per worker")
    print(f"{'K':>3} {'sequential s':>13} {'batched s':>10} {'speed-up':>9} {'threads s':>10} "
          f"{'speed-up':>9} {'max |diff|':>11}")
    for k in [int(x) for x in args.ks.split(",")]:
        if k > len(clients):
            print(f"{k:>3} (the scenario has {len(clients)} clients)")
            continue
        chosen = clients[:k]

        def sequential(chosen=chosen):
            return [local_update(model, start, c, local, cfg.balancing, seed=i, count_flops=False,
                                 balancer=GradientBalancer(cfg.balancing, c.tasks))[0]
                    for i, c in enumerate(chosen)]

        def batched(chosen=chosen):
            jobs = [ClientJob(start, c, i, GradientBalancer(cfg.balancing, c.tasks))
                    for i, c in enumerate(chosen)]
            return [m for m, _ in batched_local_updates(model, jobs, local, cfg.balancing, prefix=prefix)]

        def on_threads(k=k):
            threaded.local.balancers.clear()  # fresh balancers, as the other two paths
            return [u.modules for u in threaded.train([TrainJob(i, start, i) for i in range(k)])]

        batched()  # warm the prefix cache (a run's first round does this)
        times = {"sequential": [], "batched": [], "threads": []}
        outputs = {}
        for _ in range(args.reps):
            for name, fn in (("sequential", sequential), ("batched", batched), ("threads", on_threads)):
                _sync(device)
                t0 = time.perf_counter()
                outputs[name] = fn()
                _sync(device)
                times[name].append(time.perf_counter() - t0)
        diff = max(float((a[key] - b[key]).abs().max()) for a, b in
                   zip(outputs["sequential"], outputs["batched"], strict=True) for key in a
                   if "running_" not in key and "num_batches" not in key)
        seq, bat, thr = (statistics.median(times[n]) for n in ("sequential", "batched", "threads"))
        print(f"{k:>3} {seq:>13.2f} {bat:>10.2f} {seq / bat:>8.2f}x {thr:>10.2f} {seq / thr:>8.2f}x "
              f"{diff:>11.2e}", flush=True)
    threaded.close()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
