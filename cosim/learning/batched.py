"""K clients' local updates in one pass over the frozen backbone (``stacking``), each with its own
start state, batches, optimiser, gradient balancing, tasks and modalities.

What each client computes is what ``local.local_update`` computes for it alone:
- its batches come from the same shuffled order (a DataLoader over its indices with the same
  seeded generator);
- a client without a modality gets zeros in that input's rows, and the context that modality
  would add to its fused features is masked out; a client without a task has that task's loss
  masked out and that head left as it was;
- its loss is its own tasks' losses on its own rows (losses are computed per client, so a
  focal loss's normalisation by positives does not mix clients);
- GradNorm and CAGrad act on the client's per-task gradients of its shared modules (rows of the
  stacked per-task gradients), with its own balancer;
- its optimiser's moments and step count are its own (``stacked_optim``); a step updates only
  the clients that had a batch in it.

The frozen lower blocks of the image and text towers (below the first PEFT block) give the same
output in every epoch and round, so their output is computed once per frame and cached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

import torch
from torch.func import vmap

from cosim.learning.balancing import GradientBalancer, cagrad_direction
from cosim.learning.data.samples import collate
from cosim.learning.local import ClientData, LocalStats, trainable_modules
from cosim.learning.model import M3TModel
from cosim.learning.stacked_optim import StackedOptimizer
from cosim.learning.stacking import ClientStack, stacked_run
from cosim.learning.tasks import SPECS, task_loss
from cosim.names import INPUT_MODALITY
from cosim.scenario import BalancingConfig, LocalTrainingConfig


@dataclass
class ClientJob:
    """One client's local update: start state, data (indexable samples), seed and balancer."""

    start: dict[str, torch.Tensor]
    data: ClientData  # and, where frames have names, frame_key(i) (for the prefix cache)
    seed: int
    balancer: GradientBalancer


class PrefixCache:
    """The frozen lower-block outputs per frame (image and text), computed once."""

    def __init__(self) -> None:
        self.rows: dict[object, dict[str, torch.Tensor]] = {}

    @property
    def nbytes(self) -> int:
        """Memory the cached prefixes hold (bfloat16 in bf16 runs: half of float32's)."""
        return sum(v.numel() * v.element_size() for row in list(self.rows.values()) for v in row.values())

    def get(self, model: M3TModel, keys: list, inputs: dict) -> dict[str, torch.Tensor]:
        """The prefixes of the batch's frames (``keys``, one per row of ``inputs``)."""
        for i, key in enumerate(keys):
            if key in self.rows:
                continue
            # one frame at a time: a frame's prefix is then the same bits whichever batch (or
            # Ray actor) first meets it, so runs do not depend on who filled the cache
            one = {k: v[i: i + 1] for k, v in inputs.items() if k in ("image", "text")}
            self.rows[key] = {k: v[0] for k, v in model.encode_prefix(one).items()}
        names = self.rows[keys[0]].keys()
        return {n: torch.stack([self.rows[key][n] for key in keys]) for n in names}


def batched_local_updates(model: M3TModel, jobs: list[ClientJob], cfg: LocalTrainingConfig,
                          balancing: BalancingConfig, frozen: Collection[str] = (),
                          prefix: PrefixCache | None = None
                          ) -> list[tuple[dict[str, torch.Tensor], LocalStats]]:
    """Train the jobs' clients together; return each one's modules and stats (in job order)."""
    device = next(model.parameters()).device
    plan = _Plan(model, jobs, frozen)
    stack = ClientStack(model, plan.stacked_names, [j.start for j in jobs], device)
    trainable = {k: p for k, p in stack.params.items() if plan.module[k] in plan.trained}
    optimizer = StackedOptimizer(cfg, trainable)
    generators = [torch.Generator().manual_seed(j.seed) for j in jobs]
    first_means: list[dict[str, float]] = []  # per client, task losses of the first epoch
    last_means: list[dict[str, float]] = []
    steps = [0] * len(jobs)
    weights: list[dict[str, float]] = [{} for _ in jobs]
    model.train()
    fixed = [model.get_module(n) for n in frozen if n in model.module_names()]
    for module in fixed:
        module.eval()
    for epoch in range(cfg.epochs):
        sums: list[dict[str, float | torch.Tensor]] = [dict.fromkeys(j.data.tasks, 0.0) for j in jobs]
        counts = [0] * len(jobs)
        loaders = [iter(j.data.index_batches(cfg.batch_size, g))
                   for j, g in zip(jobs, generators, strict=True)]
        while True:
            batch = [next(it, None) for it in loaders]
            if all(b is None for b in batch):
                break
            for rows in _groups_by_size(batch):
                indices = cast("list[list[int]]", [batch[k] for k in rows])  # rows with a batch
                losses = _step(model, plan, stack, optimizer, jobs, rows, indices, cfg, balancing,
                               device, prefix, weights)
                for k, idx in zip(rows, indices, strict=True):
                    steps[k] += 1
                    counts[k] += len(idx)
                    for t, v in losses[k].items():
                        sums[k][t] = sums[k][t] + v.double() * len(idx)
        means = [{t: float(s) / max(c, 1) for t, s in sm.items()} for sm, c in zip(sums, counts, strict=True)]
        if epoch == 0:
            first_means = means
        last_means = means
    out = []
    for k, job in enumerate(jobs):
        names = plan.names[k]
        n = len(job.data)
        stats = LocalStats(dict.fromkeys(job.data.tasks, n), first_means[k], last_means[k], 0.0,
                           names, steps[k], weights[k])
        out.append((stack.export(k, names), stats))
    return out


class _Plan:
    """Which modules and tasks the stacked pass covers, and which modules each client trains."""

    def __init__(self, model: M3TModel, jobs: list[ClientJob], frozen: Collection[str]):
        self.names = [[n for n in trainable_modules(model, list(j.data.tasks), list(j.data.modalities),
                                                    frozen)
                       if any(key.startswith(n + ".") for key in j.start)] for j in jobs]
        self.trained = {n for names in self.names for n in names}
        self.tasks = [t for t in SPECS if any(t in j.data.tasks for j in jobs)]
        used_frozen = [n for n in frozen if n in model.module_names()
                       and n.startswith("heads.") and n.split(".")[1] in self.tasks]
        order = model.module_names()
        self.stacked_names = [n for n in order if n in self.trained or n in used_frozen]
        self.shared = [n for n in self.stacked_names if n in self.trained and not n.startswith("heads.")]
        self.module = {f"{n}.{key}": n for n in self.stacked_names
                       for key, _ in model.get_module(n).named_parameters()}  # parameter -> module


def _groups_by_size(batch: list) -> list[list[int]]:
    """Clients with a batch this step, grouped by its size (rows of one pass share a size)."""
    sizes: dict[int, list[int]] = {}
    for k, b in enumerate(batch):
        if b is not None:
            sizes.setdefault(len(b), []).append(k)
    return [sizes[s] for s in sorted(sizes, reverse=True)]


def _step(model, plan, stack, optimizer, jobs, rows, indices, cfg, balancing, device, prefix, weights
          ) -> dict[int, dict[str, torch.Tensor]]:
    tasks = [t for t in plan.tasks if any(t in jobs[c].data.tasks for c in rows)]  # this pass's
    inputs, targets, present, task_mask = _assemble(model, tasks, jobs, rows, indices, device, prefix)
    sub = _SubStack(stack, rows)
    with sub.run():
        out = model(inputs, tasks=tasks, present=present)  # in the model's precision
    k, b = len(rows), len(indices[0])
    per_task = {t: _client_losses(t, out[t], targets[t], k, b) for t in tasks}  # (K,) each
    for p in stack.params.values():
        p.grad = None
    losses = {t: per_task[t] * task_mask[t] for t in tasks}
    _backward(plan, tasks, sub, jobs, rows, losses, balancing, weights)
    stepping = set(rows)
    optimizer.step({key: [c in stepping and plan.module[key] in plan.names[c] for c in range(stack.k)]
                    for key in optimizer.params})
    # the losses stay on the device (no sync per step); the epoch's means are read at its end
    return {client: {t: per_task[t][j].detach() for t in jobs[client].data.tasks}
            for j, client in enumerate(rows)}


def _backward(plan, tasks, sub, jobs, rows, losses, balancing, weights) -> None:
    """Gradients of every client's loss, balanced per client as ``GradientBalancer`` does."""
    client_tasks = [[t for t in tasks if t in jobs[c].data.tasks] for c in rows]
    shared_keys = [key for key in sub.params if plan.module[key] in plan.shared]
    shared = [sub.params[key] for key in shared_keys]
    balanced = balancing.method != "sum" and shared and any(len(ts) >= 2 for ts in client_tasks)
    if not balanced:
        sum(losses[t].sum() for t in tasks).backward()
        for j, c in enumerate(rows):
            weights[c] = dict.fromkeys(client_tasks[j], 1.0)
        return
    grads = {t: _flat_rows([g for g in torch.autograd.grad(losses[t].sum(), shared, retain_graph=True,
                                                          allow_unused=True)], shared)
             for t in tasks}  # (K, D) per task: client k's row is its own gradient
    if balancing.method == "gradnorm":
        w = {t: torch.ones_like(losses[t]) for t in tasks}
        for j, c in enumerate(rows):
            ts = client_tasks[j]
            if len(ts) < 2:
                weights[c] = dict.fromkeys(ts, 1.0)
                continue
            current = {t: losses[t][j] for t in ts}
            g = torch.stack([grads[t][j] for t in ts])
            used = jobs[c].balancer.gradnorm_step(ts, current, g)
            weights[c] = dict(zip(ts, used, strict=True))
            for t, u in zip(ts, used, strict=True):
                w[t] = w[t].index_put((torch.tensor(j),), torch.tensor(u, dtype=w[t].dtype))
        sum((w[t].detach() * losses[t]).sum() for t in tasks).backward()
        return
    directions = []
    for j, c in enumerate(rows):
        ts = client_tasks[j]
        g = torch.stack([grads[t][j] for t in ts])
        directions.append(cagrad_direction(g, balancing.cagrad_c) if len(ts) >= 2 else g.sum(0))
        weights[c] = dict.fromkeys(ts, 1.0)
    sum(losses[t].sum() for t in tasks).backward()  # heads: their own task's gradient
    d = torch.stack(directions)
    offset = 0
    for key in shared_keys:
        leaf = sub.stack.params[key]
        n = leaf[0].numel()
        if leaf.grad is None:  # a module no client of this pass reaches
            leaf.grad = torch.zeros_like(leaf)
        leaf.grad[sub.rows] = d[:, offset: offset + n].reshape(-1, *leaf.shape[1:])
        offset += n


def _flat_rows(grads, params) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(p.shape[0], -1)
                      for g, p in zip(grads, params, strict=True)], dim=1)


class _SubStack:
    """The stack restricted to this step's clients: the whole stack when all have a batch, else
    their rows (gradients flow back to the stack's leaves; BatchNorm statistics are written back
    after the pass)."""

    def __init__(self, stack: ClientStack, rows: list[int]):
        self.stack, self.rows = stack, rows
        self.k, self.model, self.names = len(rows), stack.model, stack.names
        if rows == list(range(stack.k)):
            self.params, self.buffers, self._index = stack.params, stack.buffers, None
        else:
            self._index = torch.tensor(rows, device=next(iter(stack.params.values())).device)
            self.params = {k: v[self._index] for k, v in stack.params.items()}
            self.buffers = {k: v[self._index].clone() for k, v in stack.buffers.items()}

    @contextlib.contextmanager
    def run(self):
        with stacked_run(self):  # type: ignore[arg-type]
            yield
        if self._index is not None:
            for key, value in self.buffers.items():
                self.stack.buffers[key][self._index] = value


def _client_losses(task: str, out: dict, target: dict, k: int, b: int) -> torch.Tensor:
    """Each client's loss of ``task`` on its own rows, (K,)."""
    o = {key: v.unflatten(0, (k, b)) for key, v in out.items()}
    t = {key: v.unflatten(0, (k, b)) for key, v in target.items()}
    return vmap(lambda oo, tt: task_loss(task, oo, tt))(o, t)


def _assemble(model, tasks, jobs, rows, indices, device, prefix):
    """Client-major inputs and dense targets for the clients in ``rows``; zeros where a client
    lacks a modality or task, with the masks that keep those zeros out of its loss."""
    samples = []
    for client, idx in zip(rows, indices, strict=True):
        data = jobs[client].data
        inputs, targets = collate([data[i] for i in idx])
        inputs.pop("sequence", None)
        samples.append((inputs, targets, [data.frame_key(i) if hasattr(data, "frame_key") else None
                                          for i in idx]))
    modalities = sorted({m for c in rows for m in jobs[c].data.modalities})
    keys = sorted({k for s in samples for k in s[0] if INPUT_MODALITY.get(k) in modalities})
    inputs, present = {}, {}
    for key in keys:
        parts = [s[0].get(key) for s in samples]
        if key == "text":
            parts = [model.text_tokens(p) if p is not None else None for p in parts]
        like = next(p for p in parts if p is not None)
        inputs[key] = torch.cat([_to(p if p is not None else torch.zeros_like(like), device) for p in parts])
    for m in modalities:
        present[m] = torch.cat([torch.full((len(idx),), float(m in jobs[c].data.modalities), device=device)
                                for c, idx in zip(rows, indices, strict=True)])
    if prefix is not None:
        frame_keys = [key for s in samples for key in s[2]]
        if all(key is not None for key in frame_keys):
            inputs.update(prefix.get(model, frame_keys, inputs))
    targets, task_mask = {}, {}
    for t in tasks:
        dense = [{k: v for k, v in s[1][t].items() if isinstance(v, torch.Tensor)} if t in s[1] else None
                 for s in samples]
        like = next(d for d in dense if d is not None)
        targets[t] = {k: torch.cat([_to(d[k] if d is not None else torch.zeros_like(like[k]), device)
                                    for d in dense]) for k in like}
        task_mask[t] = torch.tensor([float(t in jobs[c].data.tasks) for c in rows], device=device)
    return inputs, targets, present, task_mask


def _to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """To the device without waiting (pinned host memory, ``SampleCache(pin=True)``, copies
    asynchronously on CUDA)."""
    return tensor.to(device, non_blocking=True)
