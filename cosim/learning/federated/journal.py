"""The training journal: what a resumed run needs so that it computes no client update twice.

With ``output.checkpoint: true`` every call the server makes to train completed updates is written
to ``RUN/checkpoint/train-NNNNNN.pt`` (atomically: a killed run leaves whole entries only): the
calls' keys (client, seed, a digest of the start state), the trained updates, and the clients'
gradient balancers as the call left them. ``cosim run --resume`` runs the scenario again from the
start: mobility, radio and scheduling are deterministic and cheap, and each training call is
answered from the journal while entries remain, then trained for real. A call whose key differs
from its entry means the resumed run is not the interrupted one; it stops instead of mixing them.
Entries hold tensors, numbers and strings only, read with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cosim.errors import InputError
from cosim.learning.balancing import GradientBalancer
from cosim.learning.federated.journal_checks import (
    BALANCER_TENSORS,
    damaged,
    journal_entries,
    load_entry,
    seal,
)
from cosim.learning.federated.training import TrainedUpdate, TrainJob
from cosim.learning.local import LocalStats
from cosim.names import JOURNAL_DIR
from cosim.run_folder import write_atomically


def journal_mismatch(path: Path, call: int, previous: Path | None = None) -> InputError:
    """The resumed run asked for other training than the interrupted one did: the folder given
    to ``--resume`` is not this scenario's run, or an earlier entry was changed (the updates it
    answered made this call start elsewhere: the one before is the first suspect)."""
    if previous is None:
        return InputError(path, "--resume", f"training call {call} differs from the interrupted "
                          "run's: the journal is not this scenario's run")
    return InputError(path, "--resume", f"training call {call} differs from the interrupted "
                      f"run's: the journal is not this scenario's run, or {previous.name} (whose "
                      "updates this call starts from) was changed; remove the run's checkpoint "
                      f"folder from {previous.name} on to train those updates again")


def state_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        tensor = state[name].detach().cpu().contiguous()
        h.update(str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def job_keys(jobs: list[TrainJob]) -> list[list[Any]]:
    return [[j.client, j.seed, state_digest(j.start)] for j in jobs]


class TrainingJournal:
    """Answers training calls from an earlier attempt's entries, and records new ones."""

    def __init__(self, run_dir: Path):
        self.folder = run_dir / JOURNAL_DIR
        self.folder.mkdir(exist_ok=True)
        self.entries = journal_entries(self.folder)
        self.calls = 0
        self.replayed = 0

    def answer(self, jobs: list[TrainJob], balancers: dict[int, GradientBalancer],
               weights: Mapping[int, float] | None = None) -> list[TrainedUpdate] | None:
        """The recorded updates of this call (balancers restored), or None past the journal.
        ``weights``: each client's true update weight (its samples times the local epochs)."""
        if self.calls >= len(self.entries):
            return None
        path = self.entries[self.calls]
        entry = load_entry(path)
        keys = job_keys(jobs)
        if entry["keys"] != keys:
            raise journal_mismatch(path, self.calls,
                                   self.entries[self.calls - 1] if self.calls else None)
        for job, update in zip(jobs, entry["updates"], strict=True):
            _check_shapes(update["modules"], job.start, path)
            if weights is not None and update["weight"] != weights[job.client]:
                raise damaged(path, f"client {job.client}'s update weight {update['weight']:g} "
                              f"is not the {weights[job.client]:g} samples it trained on")
        if not set(entry["balancers"]) <= {int(j.client) for j in jobs}:
            raise damaged(path, "it restores the balancer of a client the call did not train")
        for client, state in entry["balancers"].items():  # checked before any is restored
            if tuple(state["weights"].shape) != tuple(balancers[int(client)].weights.shape):
                raise damaged(path, f"balancer {client} is not one per task of the client")
        self.calls += 1
        self.replayed += 1
        for client, state in entry["balancers"].items():
            _restore(balancers[int(client)], state)
        return [TrainedUpdate(u["client"], u["modules"], u["weight"], LocalStats(**u["stats"]))
                for u in entry["updates"]]

    def record(self, jobs: list[TrainJob], updates: list[TrainedUpdate],
               balancers: dict[int, GradientBalancer]) -> None:
        recorded = [{"client": u.client, "modules": u.modules, "weight": float(u.weight),
                     "stats": dataclasses.asdict(u.stats)} for u in updates]
        states = {int(j.client): _balancer_state(balancers[j.client]) for j in jobs
                  if j.client in balancers}
        entry = {"keys": job_keys(jobs), "updates": recorded, "balancers": states,
                 "seal": seal(recorded, states)}
        path = self.folder / f"train-{self.calls:06d}.pt"
        buffer = io.BytesIO()  # torch's own writer hides a full disk in a RuntimeError
        torch.save(entry, buffer)
        write_atomically(path, buffer.getvalue())
        self.calls += 1


def _check_shapes(modules: dict[str, torch.Tensor], start: dict[str, torch.Tensor], path: Path) -> None:
    """An update holds modules of the model being trained, each shaped as its start state."""
    for name, tensor in modules.items():
        if name not in start or tuple(start[name].shape) != tuple(tensor.shape):
            raise damaged(path, f"module {name} is not one of the model's, or not its shape")


def _balancer_state(balancer: GradientBalancer) -> dict[str, torch.Tensor]:
    return {name: getattr(balancer, name).clone() for name in BALANCER_TENSORS}


def _restore(balancer: GradientBalancer, state: dict[str, torch.Tensor]) -> None:
    for name in BALANCER_TENSORS:
        setattr(balancer, name, state[name].clone())
