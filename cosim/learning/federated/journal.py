"""The training journal: what a resumed run needs so that it computes no client update twice.

With ``output.checkpoint: true`` every call the server makes to train completed updates is written
to ``RUN/checkpoint/train-NNNNNN.pt`` (atomically: a killed run leaves whole entries only): the
call's keys (each job's client, seed and a digest of its start state; a digest of every client's
gradient balancer at the call), a digest of the scenario trained, the trained updates, and the
clients' balancers as the call left them. ``cosim run --resume`` runs the scenario again from the
start: mobility, radio and scheduling are deterministic and cheap, and each training call is
answered from the journal while entries remain, then trained for real. A call whose keys differ
from its entry means the resumed run is not the interrupted one, or an earlier entry was changed
(what it answered made this call start elsewhere); it stops instead of mixing them. The last
entry is never answered: nothing after it checks what it holds, so its call is trained again
(its keys checked first) and the entry rewritten. Entries hold tensors, numbers and strings
only, read with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from cosim.errors import InputError
from cosim.learning.balancing import GradientBalancer
from cosim.learning.federated.journal_checks import (
    BALANCER_TENSORS,
    damaged,
    digest_tensors,
    journal_entries,
    load_entry,
    module_tensors,
    other_scenario,
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
                      "updates and balancers this call starts from) was changed; remove the run's checkpoint "
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


def balancers_digest(balancers: Mapping[int, GradientBalancer]) -> str:
    """Every client's gradient balancer as a call finds it (its tasks and state): a call's key
    covers them, so a balancer an earlier entry restored differently is caught at the next call."""
    h = hashlib.sha256()
    for client in sorted(balancers):
        balancer = balancers[client]
        h.update(f"{client}|{','.join(balancer.tasks)}|".encode())
        digest_tensors(h, _balancer_state(balancer))
    return h.hexdigest()[:32]


class TrainingJournal:
    """Answers training calls from an earlier attempt's entries, and records new ones.
    ``scenario``: the digest of the scenario the run trains (``journal_checks.scenario_digest``)."""

    def __init__(self, run_dir: Path, scenario: str):
        self.folder = run_dir / JOURNAL_DIR
        self.folder.mkdir(exist_ok=True)
        self.entries = journal_entries(self.folder)
        self.scenario = scenario
        self.calls = 0
        self.replayed = 0
        self.key: dict[str, Any] | None = None  # the current call's, taken before it trains

    def answer(self, jobs: list[TrainJob], balancers: dict[int, GradientBalancer],
               weights: Mapping[int, float] | None = None,
               trained: Mapping[int, Sequence[str]] | None = None) -> list[TrainedUpdate] | None:
        """The recorded updates of this call (balancers restored), or None where the call is
        to be trained (past the journal, or its last entry). Called for every call, before it
        trains: it takes the call's key. ``weights``: each client's true update weight (its
        samples times the local epochs); ``trained``: the modules each client's update trains."""
        self.key = {"keys": job_keys(jobs), "start_balancers": balancers_digest(balancers)}
        if self.calls >= len(self.entries):
            return None
        path = self.entries[self.calls]
        entry = load_entry(path)
        if entry["scenario"] != self.scenario:
            raise other_scenario(path)
        if entry["keys"] != self.key["keys"] or entry["start_balancers"] != self.key["start_balancers"]:
            raise journal_mismatch(path, self.calls,
                                   self.entries[self.calls - 1] if self.calls else None)
        for job, update in zip(jobs, entry["updates"], strict=True):
            _check_modules(update, job.start, trained[job.client] if trained else None, path)
            if weights is not None and update["weight"] != weights[job.client]:
                raise damaged(path, f"client {job.client}'s update weight {update['weight']:g} "
                              f"is not the {weights[job.client]:g} samples it trained on")
        if not set(entry["balancers"]) <= {int(j.client) for j in jobs}:
            raise damaged(path, "it restores the balancer of a client the call did not train")
        for client, state in entry["balancers"].items():  # checked before any is restored
            if tuple(state["weights"].shape) != tuple(balancers[int(client)].weights.shape):
                raise damaged(path, f"balancer {client} is not one per task of the client")
        if self.calls == len(self.entries) - 1:
            return None  # the last entry: trained again and rewritten (``record``)
        self.calls += 1
        self.replayed += 1
        for client, state in entry["balancers"].items():
            _restore(balancers[int(client)], state)
        return [TrainedUpdate(u["client"], u["modules"], u["weight"], LocalStats(**u["stats"]))
                for u in entry["updates"]]

    def remove(self) -> None:
        """The run is whole, nothing is left to resume: the journal's own entries go, and its
        folder with them unless anyone else's file was put there (it stays, with that file)."""
        import contextlib
        import fnmatch

        from cosim.run_folder import OWN_FOLDERS

        own = OWN_FOLDERS[JOURNAL_DIR]
        for path in list(self.folder.iterdir()):
            if not path.is_symlink() and path.is_file() and any(fnmatch.fnmatch(path.name, g)
                                                                  for g in own):
                path.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    def record(self, jobs: list[TrainJob], updates: list[TrainedUpdate],
               balancers: dict[int, GradientBalancer]) -> None:
        recorded = [{"client": u.client, "modules": u.modules, "weight": float(u.weight),
                     "stats": dataclasses.asdict(u.stats)} for u in updates]
        states = {int(j.client): _balancer_state(balancers[j.client]) for j in jobs
                  if j.client in balancers}
        key = self.key
        # answer() took this call's key before it trained
        assert key is not None and [k[:2] for k in key["keys"]] == [[j.client, j.seed] for j in jobs]
        entry = {**key, "scenario": self.scenario, "updates": recorded, "balancers": states,
                 "seal": seal(recorded, states)}
        path = self.folder / f"train-{self.calls:06d}.pt"
        buffer = io.BytesIO()  # torch's own writer hides a full disk in a RuntimeError
        torch.save(entry, buffer)
        write_atomically(path, buffer.getvalue())
        self.calls += 1


def _check_modules(update: dict[str, Any], start: dict[str, torch.Tensor],
                   trained: Sequence[str] | None, path: Path) -> None:
    """An update holds exactly the modules its client trains from this start (``trained``,
    as the trainer picks them), each shaped as its start state."""
    client, modules, names = update["client"], update["modules"], update["stats"]["modules"]
    if trained is not None and list(names) != list(trained):
        raise damaged(path, f"client {client}'s update names other modules than the client trains")
    if set(modules) != module_tensors(start, names):
        raise damaged(path, f"client {client}'s update does not hold exactly the modules it trained")
    for name, tensor in modules.items():
        if tuple(start[name].shape) != tuple(tensor.shape):
            raise damaged(path, f"module {name} is not one of the model's, or not its shape")


def _balancer_state(balancer: GradientBalancer) -> dict[str, torch.Tensor]:
    return {name: getattr(balancer, name).clone() for name in BALANCER_TENSORS}


def _restore(balancer: GradientBalancer, state: dict[str, torch.Tensor]) -> None:
    for name in BALANCER_TENSORS:
        setattr(balancer, name, state[name].clone())
