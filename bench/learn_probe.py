"""Learning probe: what the scenario's model can learn from its clients' data, trained centrally
(no radio, no federation: every training client's frames pooled, one optimiser), scored on the
held-out segments like a run, beside the model-free lookup baseline. An upper reference for the
federated runs and a fast loop for model and data changes.

    python bench/learn_probe.py scenarios/sf_downtown.yaml --steps 600 --eval-every 200
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from cosim.learning.data.datasets import ClientDataset, SampleCache, open_dataset
from cosim.learning.data.partition import ClientShard, partition
from cosim.learning.grid import Geometry
from cosim.learning.local import evaluate, trainable_modules
from cosim.learning.lookup import LookupBaseline
from cosim.learning.model import M3TModel
from cosim.learning.tasks import task_loss
from cosim.names import HEADLINE, MODALITIES, TASKS
from cosim.scenario_loader import load_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=None)
    args = parser.parse_args()
    sc = load_scenario(args.scenario, args.overrides)
    cfg = sc.learning
    torch.manual_seed(sc.seed)
    model = M3TModel(cfg.model)
    geometry = Geometry(model.image_size, 4 * model.grid, cfg.model.bev_range_m)
    dataset = open_dataset(cfg.data)
    frames, city = dataset.describe()
    parts = partition(frames, city, cfg.data, sc.seed)
    cache = SampleCache(dataset, geometry, cfg.data.cache_frames)
    tasks = [t for t in TASKS if t in cfg.model.tasks]
    train_frames = [f for c in parts.clients for f in c.frames]
    pooled = ClientDataset(ClientShard(-1, tuple(train_frames), tuple(tasks), MODALITIES), cache)
    heldout = ClientDataset(ClientShard(-1, parts.heldout, tuple(tasks), MODALITIES), cache)
    eval_batches = heldout.ordered_batches(8)
    t0 = time.perf_counter()
    baseline = LookupBaseline.fit(pooled.ordered_batches(32), geometry)
    lookup = baseline.evaluate(eval_batches, tasks, cfg.evaluation)
    print(f"{len(train_frames)} training frames, {len(parts.heldout)} held-out; lookup baseline "
          f"({time.perf_counter() - t0:.0f} s): " + _line(lookup))
    names = trainable_modules(model, tasks, list(MODALITIES))
    optimizer = torch.optim.Adam(model.trainable_parameters(names), lr=args.lr or cfg.local.lr)
    state = model.export_modules(names)
    print(f"step 0: {_line(evaluate(model, state, eval_batches, tasks, cfg.evaluation))}")
    generator = torch.Generator().manual_seed(sc.seed)
    step, t0 = 0, time.perf_counter()
    sums = dict.fromkeys(tasks, 0.0)
    while step < args.steps:
        for inputs, targets in pooled.batches(args.batch_size, generator):
            model.train()
            out = model(inputs, tasks=tasks)
            losses = {t: task_loss(t, out[t], targets[t]) for t in tasks}
            optimizer.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            optimizer.step()
            for t in tasks:
                sums[t] += losses[t].item()
            step += 1
            if step % args.eval_every == 0 or step == args.steps:
                metrics = evaluate(model, model.export_modules(names), eval_batches, tasks,
                                   cfg.evaluation)
                loss = " ".join(f"{t}={sums[t] / args.eval_every:.3f}" for t in tasks)
                sums = dict.fromkeys(tasks, 0.0)
                print(f"step {step} ({time.perf_counter() - t0:.0f} s) loss {loss} | {_line(metrics)}",
                      flush=True)
            if step >= args.steps:
                break


def _line(metrics: dict[str, dict[str, float]]) -> str:
    return "  ".join(f"{t} {HEADLINE[t]} {m.get(HEADLINE[t], float('nan')):.3f}"
                     + (f" (mAPH {m['mAPH']:.3f})" if "mAPH" in m else "")
                     for t, m in metrics.items())


if __name__ == "__main__":
    main()
