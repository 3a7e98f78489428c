"""The unit the federated engine calls: a client's local update, and evaluation of a model.

``local_update(model, global_modules, client, ...)`` loads the global modules into the shared model
(one frozen backbone serves every client), trains only the modules the client's tasks and
modalities reach for E epochs with a fresh optimiser, and returns those modules plus stats:
samples per task, losses, and the FLOPs per sample of a training step, which is what the
simulation turns into compute time (not this machine's wall clock).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch.utils.flop_counter import FlopCounterMode

from cosim.learning.balancing import GradientBalancer
from cosim.learning.model import M3TModel
from cosim.learning.tasks import SPECS, task_loss
from cosim.names import INPUT_MODALITY
from cosim.scenario import BalancingConfig, EvaluationConfig, LocalTrainingConfig

Batch = tuple[dict, dict]  # (inputs, targets per task)


class ClientData(Protocol):
    """A client's local data: which tasks and modalities it has, and its batches: an epoch's
    shuffled indices (``index_batches``), the samples they name (``__getitem__``, what the
    batched trainer reads), and the same batches collated (``batches``)."""

    tasks: list[str]
    modalities: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Batch: ...

    def index_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]: ...

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]: ...


@dataclass
class TensorClientData:
    """Client data held as tensors (inputs and dense targets with a leading sample axis)."""

    inputs: dict
    targets: dict[str, dict[str, torch.Tensor]]
    tasks: list[str]
    modalities: list[str]

    def __len__(self) -> int:
        return len(self.inputs["text"]) if "text" in self.inputs else \
            next(iter(self.inputs.values())).shape[0]

    def index_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
        order = torch.randperm(len(self), generator=generator).tolist()
        for start in range(0, len(self), batch_size):
            yield order[start: start + batch_size]

    def __getitem__(self, i: int) -> Batch:
        inputs = {k: v[i] for k, v in self.inputs.items() if INPUT_MODALITY.get(k) in self.modalities}
        return inputs, {t: {k: v[i] for k, v in self.targets[t].items()} for t in self.tasks}

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        for idx in self.index_batches(batch_size, generator):
            index = torch.tensor(idx)
            inputs = {k: _take(v, index) for k, v in self.inputs.items()
                      if INPUT_MODALITY.get(k) in self.modalities}
            targets = {t: {k: v[index] for k, v in self.targets[t].items()} for t in self.tasks}
            yield inputs, targets


@dataclass
class LocalStats:
    samples_per_task: dict[str, int]
    first_epoch_loss: dict[str, float]
    last_epoch_loss: dict[str, float]
    flops_per_sample: float
    modules: list[str]
    steps: int
    task_weights: dict[str, float] = field(default_factory=dict)


def local_update(model: M3TModel, global_modules: dict[str, torch.Tensor], client: ClientData,
                 cfg: LocalTrainingConfig, balancing: BalancingConfig, seed: int = 0,
                 count_flops: bool = True, frozen: Collection[str] = (),
                 balancer: GradientBalancer | None = None,
                 anchor: dict[str, torch.Tensor] | None = None, l2_weight: float = 0.0
                 ) -> tuple[dict[str, torch.Tensor], LocalStats]:
    """Train the client's modules from the global ones; return the trained modules and stats.

    ``count_flops`` measures the first step's FLOPs (slow: every op goes through a Python
    counter); a caller that already knows them per task mix turns it off. ``frozen`` modules
    (e.g. the heads of tasks already learnt) run forward, so their tasks' losses still shape the
    shared modules, but are neither trained nor returned. ``balancer`` carries the client's
    balancing state (GradNorm's task weights and initial losses) across its updates; without one,
    a fresh balancer starts from equal weights. ``anchor`` with ``l2_weight``: the continual-
    learning baseline of drift, an L2 pull of the shared modules (not the heads) towards these
    values, l2_weight / 2 x ||theta - anchor||^2 added to the (balanced) loss."""
    device = next(model.parameters()).device
    model.import_modules(global_modules)
    names = [n for n in trainable_modules(model, client.tasks, client.modalities, frozen)
             if any(k.startswith(n + ".") for k in global_modules)]
    params = model.trainable_parameters(names)
    shared = [p for n in names if not n.startswith("heads.") for p in model.get_module(n).parameters()]
    optimizer = _optimizer(cfg, params)
    if balancer is None:
        balancer = GradientBalancer(balancing, client.tasks)
    elif not set(client.tasks) <= set(balancer.tasks):
        raise ValueError(f"balancer for {balancer.tasks} cannot weigh tasks {client.tasks}")
    model.train()
    fixed = [model.get_module(n) for n in frozen if n in model.module_names()]
    for module in fixed:  # no gradients, no statistics updates (BatchNorm) in what stays fixed
        module.eval().requires_grad_(False)
    try:
        pull = _anchor_pairs(model, names, anchor, l2_weight) if anchor is not None and l2_weight else []
        return _train(model, client, cfg, balancer, optimizer, names, shared, seed, count_flops,
                      device, pull)
    finally:
        for module in fixed:
            module.requires_grad_(True)


def _anchor_pairs(model: M3TModel, names: list[str], anchor: dict[str, torch.Tensor], weight: float
                  ) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """(parameter, its anchor value, weight) for every shared trained parameter the anchor holds."""
    out: list[tuple[torch.Tensor, torch.Tensor, float]] = []
    for name in names:
        if name.startswith("heads."):
            continue
        for key, param in model.get_module(name).named_parameters():
            value = anchor.get(f"{name}.{key}")
            if value is not None and param.requires_grad:
                out.append((param, value.to(param.device, param.dtype), weight))
    return out


def _train(model, client, cfg, balancer, optimizer, names, shared, seed, count_flops, device, pull=()
           ) -> tuple[dict[str, torch.Tensor], LocalStats]:
    generator = torch.Generator().manual_seed(seed)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    steps, weights = 0, {}
    flops_per_sample = 0.0
    for epoch in range(cfg.epochs):
        sums: dict[str, float] = dict.fromkeys(client.tasks, 0.0)
        count = 0
        for inputs, targets in client.batches(cfg.batch_size, generator):
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            counting = count_flops and steps == 0
            counter = FlopCounterMode(display=False) if counting else contextlib.nullcontext()
            with counter:
                out = model(inputs, tasks=client.tasks)  # in the model's precision (``precision.py``)
                losses = {t: task_loss(t, out[t], targets[t]) for t in client.tasks}
                optimizer.zero_grad(set_to_none=True)
                weights = balancer.backward(losses, shared, model.aux_loss() if model.has_aux_loss else None)
                for param, value, weight in pull:  # d/dtheta of weight / 2 ||theta - anchor||^2
                    if param.grad is not None:
                        param.grad.add_(param.detach() - value, alpha=weight)
            if counting:
                assert isinstance(counter, FlopCounterMode)  # the counter when counting
                flops_per_sample = counter.get_total_flops() / _batch_len(inputs)
            optimizer.step()
            steps += 1
            n = _batch_len(inputs)
            count += n
            for t, v in losses.items():
                sums[t] += v.item() * n
        means = {t: s / max(count, 1) for t, s in sums.items()}
        if epoch == 0:
            first = means
        last = means
    modules = model.export_modules(names)
    n = len(client)
    stats = LocalStats(dict.fromkeys(client.tasks, n), first, last, flops_per_sample, names, steps,
                       weights)
    return modules, stats


def trainable_modules(model: M3TModel, tasks: list[str], modalities: list[str],
                      frozen: Collection[str] = ()) -> list[str]:
    """What a client with these tasks and modalities trains and uploads."""
    return [n for n in model.modules_for(tasks, modalities) if n not in frozen]


@torch.no_grad()
def evaluate(model: M3TModel, modules: Mapping[str, torch.Tensor], batches: list[Batch],
             tasks: list[str] | None = None, settings: EvaluationConfig | None = None,
             with_loss: bool = False) -> dict[str, dict[str, float]]:
    """Metrics per task on held-out batches (frames of a sequence in order, for tracking).

    Targets carry, besides the dense maps: det2d ``boxes``/``box_labels`` (lists per sample);
    det3d ``boxes``/``box_labels``/``points`` (points inside each box); pan2d ``instance`` ids
    consistent over the frames of a sequence, and inputs carry ``sequence`` ids per sample.
    ``with_loss`` adds each task's training loss, averaged over the frames, as metric ``loss``
    (from the same forward pass: what personalisation's selective replacement compares).
    """
    device = next(model.parameters()).device
    model.import_modules(modules)
    model.eval()
    tasks = tasks or list(model.heads)
    settings = settings or EvaluationConfig()
    evaluators = {t: SPECS[t].evaluator(model, settings) for t in tasks}
    loss_sums, frames = dict.fromkeys(tasks, 0.0), 0
    for inputs, targets in batches:
        out = model(to_device({k: v for k, v in inputs.items() if k != "sequence"}, device), tasks=tasks)
        n = next(iter(out.values()))["scores"].shape[0]
        frames += n
        for t in tasks:
            if with_loss:
                loss_sums[t] += float(task_loss(t, out[t], to_device(targets[t], device))) * n
            o = {k: v.float().cpu() for k, v in out[t].items()}
            for i in range(o["scores"].shape[0]):
                evaluators[t].update(o["scores"][i], o["reg"][i], targets[t], i, inputs)
    results = {t: e.compute() for t, e in evaluators.items()}
    if with_loss:
        for t in tasks:
            results[t]["loss"] = loss_sums[t] / max(frames, 1)
    return results


def _optimizer(cfg: LocalTrainingConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _take(value, idx: torch.Tensor):
    if isinstance(value, torch.Tensor):
        return value[idx]
    return [value[i] for i in idx.tolist()]


def to_device(tree, device: torch.device):
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: to_device(v, device) for k, v in tree.items()}
    return tree


def _batch_len(inputs: dict) -> int:
    if "text" in inputs:
        return len(inputs["text"])
    return next(iter(inputs.values())).shape[0]
