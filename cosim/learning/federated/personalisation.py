"""Personalisation at the end of a run (``learning.personalisation``): per client, the final global
model against personalised ones, scored on a validation share of that client's own frames.

Why: a global model that does well on the held-out segments may still do poorly on one vehicle's
drive; what a client gains by personalising is measured on its own data, not the server's.

- ``global``: the final global modules as they are.
- ``finetune``: ``local_update`` from the global modules on the client's fine-tune frames for
  ``local_epochs``, with the scenario's local optimiser settings (a fresh optimiser and gradient
  balancer; in this process, one client after another, not through the batched or remote
  trainer: a few clients once per run).
- ``tap``: TAP's selective replacement between that fine-tune and the global model (below).

Which clients: those whose partition a vehicle carried at some time in the run (``clients:
bound``, the federation's members), or every partition (``all``). A client holding none of the
evaluated tasks, or fewer than two frames (one to fine-tune on, one to validate on), is left out
and listed in run.json. Its validation frames are the last ones of its drive (the partition's
order: a segment's frames in time), so they follow the fine-tune frames rather than interleave
with near-duplicate neighbours. Each client's fine-tune is seeded from the scenario's seed and its
index: the rows are byte-identical between runs.

TAP is Lee, Fang, Han, Hosseinalipour and Brinton, "TAP: Two-Stage Adaptive Personalization of
Multi-Task and Multi-Modal Foundation Models in Federated Learning" (arXiv 2509.26524, 2025), and
its code (github.com/lee3296/TAP: ``MultiModalClientModel.replace_components``, ``train_client``).
Followed: a client's model holds only the modules its tasks and modalities reach (TAP's mismatched
client and server architectures; here ``modules_for(tasks, modalities)``); for each of the
client's tasks in turn, when the global model's loss on that task plus a margin is below the
personal model's, every module the task's forward pass uses (the adapters of its modalities, the
shared task adapter, its head; TAP: encoders, fusion experts and projection, task head) is
replaced by the global one. Simplified: (1) TAP replaces during FL, each time a client is picked,
in a personal model trained alongside; here once, after the run, between the final global model
and the client's fine-tune from it; (2) TAP compares running training losses; here validation
losses, and TAP's score is reported on the frames it chose on (optimistic by construction); (3)
tasks share the modality adapters and the task adapter, so a replacement for one task can hurt
another: one is kept only if the client's summed validation loss does not rise, hence TAP's
summed loss is never above its fine-tune candidate's; (4) TAP's second stage, post-FL knowledge
distillation from the global model, is not done.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import simpy
import torch

from cosim.learning.data.datasets import ClientDataset
from cosim.learning.data.partition import ClientShard
from cosim.learning.federated.clients import ClientRegistry
from cosim.learning.federated.deferred import DeferredState, resolved
from cosim.learning.federated.evaluation import GlobalEvaluation
from cosim.learning.local import evaluate, local_update
from cosim.learning.model import M3TModel
from cosim.scenario import LearningConfig, PersonalisationConfig

State = dict[str, torch.Tensor]
EVAL_BATCH = 8  # as the global evaluation's batches


class Host(Protocol):
    """What personalisation reads of the federated layer once the run has ended."""

    cfg: LearningConfig
    seed: int  # the run's training seed
    env: simpy.Environment
    model: M3TModel
    datasets: list[ClientDataset]
    global_state: State | DeferredState  # resolved here (the run's last training is done)
    evaluation: GlobalEvaluation  # the evaluated tasks, their settings, the metrics table
    registry: ClientRegistry
    round: int


def split_frames(shard: ClientShard, share: float) -> tuple[ClientShard, ClientShard] | None:
    """(fine-tune, validation) shards: the last ``share`` of the frames (at least one) validate,
    at least one is left to fine-tune on; None when the client has fewer than two frames."""
    n = len(shard.frames)
    if n < 2:
        return None
    validation = min(max(1, round(share * n)), n - 1)
    return (dataclasses.replace(shard, frames=shard.frames[: n - validation]),
            dataclasses.replace(shard, frames=shard.frames[n - validation:]))


def tap_select(tasks: list[str], reach: Callable[[str], list[str]], personal: State,
               personal_losses: dict[str, float], global_state: State,
               global_losses: dict[str, float], score: Callable[[State], dict[str, float]],
               margin: float) -> tuple[State, list[str], dict[str, float]]:
    """TAP's selective replacement (module docstring): the state kept, the tasks whose modules
    came from the global model, and the kept state's losses."""
    current, losses, replaced = personal, personal_losses, []
    for task in tasks:
        if not global_losses[task] + margin < losses[task]:
            continue
        names = tuple(n + "." for n in reach(task))
        candidate = {k: global_state[k] if k.startswith(names) else v for k, v in current.items()}
        candidate_losses = score(candidate)
        if sum(candidate_losses.values()) <= sum(losses.values()):
            current, losses = candidate, candidate_losses
            replaced.append(task)
    return current, replaced, losses


def personalise(host: Host) -> dict[str, Any]:
    """Evaluate every chosen client and append its rows to the metrics table (still open: the
    engine calls layers' ``finish`` before the runner closes the traces); return run.json's
    summary (clients, their frames, TAP's replacements, wall time)."""
    cfg = host.cfg
    assert cfg.personalisation is not None  # asked with learning.personalisation only
    p: PersonalisationConfig = cfg.personalisation
    wall0 = time.perf_counter()
    global_state = resolved(host.global_state)
    local = cfg.local.model_copy(update={"epochs": p.local_epochs})
    done, left_out = [], []
    for client, data in zip(host.registry.clients, host.datasets, strict=True):
        if p.clients == "bound" and not client.ever_bound:
            continue
        tasks = [t for t in data.tasks if t in host.evaluation.tasks]
        split = split_frames(data.shard, p.validation_share)
        if not tasks or split is None:
            reason = "holds none of the evaluated tasks" if not tasks else "fewer than two frames"
            left_out.append({"client": client.index, "reason": reason})
            continue
        tune, validation = (ClientDataset(s, data.cache) for s in split)
        stream = [host.seed, 31, client.index]
        seed = int(np.random.SeedSequence(stream).generate_state(1)[0])
        trained, _ = local_update(host.model, global_state, tune, local, cfg.balancing, seed,
                                  count_flops=False, frozen=cfg.frozen_modules)
        metrics, replaced = _client(host.model, global_state, {**global_state, **trained},
                                    validation, tasks, p, cfg)
        host.evaluation.table.append(_rows(metrics, client.index, host.round, host.env.now))
        done.append({"client": client.index, "finetune_frames": len(tune),
                     "validation_frames": len(validation),
                     **({"tap_replaced": replaced} if "tap" in p.methods else {})})
    host.model.import_modules(global_state)
    return {"methods": list(p.methods), "clients": done, "left_out": left_out,
            "wall_s": round(time.perf_counter() - wall0, 3)}


def _client(model: M3TModel, global_state: State, finetuned: State, validation: ClientDataset,
            tasks: list[str], p: PersonalisationConfig, cfg: LearningConfig
            ) -> tuple[dict[str, dict[str, dict[str, float]]], list[str]]:
    """Metrics and validation loss per model and task on the client's validation frames (one
    forward pass per state scored: TAP's candidates are scored once, and the one kept is not
    scored again)."""
    batches = validation.ordered_batches(EVAL_BATCH)
    scored: dict[int, dict[str, dict[str, float]]] = {}  # by id of a state alive until the end
    keep: list[State] = []

    def score(state: State) -> dict[str, float]:
        keep.append(state)
        scored[id(state)] = evaluate(model, state, batches, tasks=tasks, settings=cfg.evaluation,
                                     with_loss=True)
        return {t: scored[id(state)][t]["loss"] for t in tasks}

    global_losses, tuned_losses = score(global_state), score(finetuned)
    out = {"global": scored[id(global_state)]}
    replaced: list[str] = []
    if "finetune" in p.methods:
        out["finetune"] = scored[id(finetuned)]
    if "tap" in p.methods:
        modalities = validation.modalities
        state, replaced, _ = tap_select(
            tasks, lambda t: model.modules_for([t], modalities), finetuned, tuned_losses,
            global_state, global_losses, score, p.tap_margin)
        out["tap"] = scored[id(state)]
    return out, replaced


def _rows(metrics: dict[str, dict[str, dict[str, float]]], client: int, round_: int, now: float
          ) -> dict[str, list]:
    rows = [(model, t, m, float(v)) for model, per_task in metrics.items()
            for t, values in per_task.items() for m, v in values.items()]
    n = len(rows)
    return {"round": [round_] * n, "sim_time_s": [now] * n, "task": [r[1] for r in rows],
            "metric": [r[2] for r in rows], "value": [r[3] for r in rows], "client": [client] * n,
            "model": [r[0] for r in rows]}
