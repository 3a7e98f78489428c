"""What a training journal entry must hold before a resumed run trusts it.

The journal is a file on disk like any other: truncated by a full disk, edited by hand, copied
from another run. An entry is read with ``weights_only=True`` (no code runs) and then checked
here: its layout (keys, updates, balancers), whole numbers where counts are, finite tensors,
weights and statistics of the types training writes, updates holding exactly the modules their
statistics say were trained, entries numbered without gaps, the digest of the scenario it was
trained for (``scenario_digest``: an entry of another run, or of a run.json edited since, is
refused), and its seal: a digest of everything the resumed run takes from it (updates, weights,
statistics, balancers), written with the entry, so an entry damaged or edited afterwards without
cosim's own ``seal`` is refused. The seal holds no secret: an entry rewritten on purpose with
cosim's functions is caught where it changes training, by the next call's key (its start state and
every client's balancer), and the last entry is never replayed but trained again
(``journal.TrainingJournal``). A damaged entry is one InputError (exit 2) naming it, before the
resumed run touches its folder; a well-formed entry that answers other training than the resumed
run asks for is caught when it is replayed (``journal.journal_mismatch``). Magnitudes are not
capped: a genuine run with an absurd learning rate writes absurd but finite values, and resumes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cosim.errors import InputError

if TYPE_CHECKING:
    from cosim.scenario import Scenario

ENTRY_NAME = re.compile(r"train-(\d{6})\.pt")
# the call's keys (client, seed, start digest per job; every client's balancers at the call), the
# scenario trained, what the call trained, and the seal over the latter
ENTRY_FIELDS = {"keys", "start_balancers", "scenario", "updates", "balancers", "seal"}
# An update's weight is its samples times its local epochs: a whole number, and no client holds
# anywhere near this many samples.
MAX_UPDATE_WEIGHT = 1e12
MAX_COUNT = 2**53  # counts beyond a float's whole numbers: no training step writes them
BALANCER_TENSORS = ("weights", "initial_losses", "_m", "_v", "_steps")
STATS_FIELDS = {"samples_per_task", "first_epoch_loss", "last_epoch_loss", "flops_per_sample",
                "modules", "steps"}  # LocalStats' fields; task_weights is optional


@dataclass(frozen=True)
class JournalModel:
    """What the resumed run's model and scenario allow an entry to hold, known before any
    weights exist: each module tensor's shape and dtype (from the model on the meta device),
    the number of clients, the most tasks a client's gradient balancer can cover, and the names
    of the modules a client may train (each owns the tensors named ``NAME.*``)."""

    modules: dict[str, tuple[tuple[int, ...], torch.dtype]]
    clients: int
    tasks: int
    names: tuple[str, ...]

LOAD_ERRORS = (RuntimeError, EOFError, OSError, ValueError, TypeError, KeyError, AttributeError,
               pickle.UnpicklingError, zipfile.BadZipFile)


def journal_entries(folder: Path) -> list[Path]:
    """The entries in call order; a gap in the numbering (a removed entry) is damage."""
    entries = sorted(p for p in folder.glob("train-*.pt") if ENTRY_NAME.fullmatch(p.name))
    for expected, path in enumerate(entries):
        match = ENTRY_NAME.fullmatch(path.name)
        assert match is not None  # the entries are the names it matches
        if int(match.group(1)) != expected:
            raise damaged(path, f"entry {expected} is missing: the journal has a gap")
    return entries


def load_entry(path: Path, model: JournalModel | None = None, scenario: str | None = None
               ) -> dict[str, Any]:
    """One entry, read without running code and checked (``check_entry``; against the
    resumed run's ``model`` and ``scenario`` digest when given)."""
    if path.is_symlink() or not path.is_file():
        raise damaged(path, "not a regular file")
    import warnings

    try:
        with warnings.catch_warnings():  # what torch warns of reading it, the checks say in a line
            warnings.simplefilter("ignore")
            entry = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as exc:
        raise damaged(path, f"unreadable ({type(exc).__name__})") from None
    check_entry(entry, path, model, scenario)
    return entry


def check_journal(folder: Path, model: JournalModel | None = None, scenario: str | None = None
                  ) -> int:
    """Read and check every entry of a journal folder, before a resumed run touches its folder;
    the number of entries."""
    entries = journal_entries(folder)
    for path in entries:
        load_entry(path, model, scenario)
    return len(entries)


def scenario_digest(scenario: Scenario) -> str:
    """A digest of the scenario a run trains, as run.json records it, and of the files it trains
    from: every entry holds it, so an entry of another run, of a run whose run.json was edited
    since, or of data or weights swapped under the same paths, is refused. The precision and the
    torch threads are the ones the run resolved (``auto`` and an unset thread count are pinned on
    resume from run.json)."""
    data = scenario.model_dump(mode="json")
    learning = data.get("learning")
    if isinstance(learning, dict) and scenario.learning is not None:
        from cosim.learning.precision import UnsupportedPrecision, pick_device, resolve

        try:
            precision = resolve(scenario.learning.precision,
                                pick_device(scenario.learning.local.device)).name
        except UnsupportedPrecision:
            precision = "fp32"
        learning["precision"] = precision
        threads = scenario.learning.local.threads
        if threads is None and scenario.learning.local.backend != "threads":
            threads = torch.get_num_threads()  # what run.json records and a resume pins
        learning["local"] = {**learning["local"], "threads": threads}
        named = {"data": scenario.learning.data.root, "checkpoint": scenario.learning.model.checkpoint}
        data["trained_from"] = {what: _folder_listing(Path(path)) for what, path in named.items()
                                if path is not None and str(path) != "synthetic"}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _folder_listing(root: Path) -> list[list[Any]]:
    """Every file below ``root`` with its size and modification time (a listing, not a hash:
    a real dataset is too large to read at every start and resume)."""
    if not root.is_dir():
        return [[str(root), root.stat().st_size, root.stat().st_mtime_ns]] if root.is_file() else []
    listing = []
    for top, dirs, files in os.walk(root, followlinks=True):  # what links lead to, as a reader sees
        dirs.sort()
        for name in sorted(files):
            path = Path(top) / name
            try:
                st = path.stat()
            except OSError:  # a dangling link: listed as such
                listing.append([path.relative_to(root).as_posix(), -1, -1])
                continue
            listing.append([path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return listing


def other_scenario(path: Path) -> InputError:
    return InputError(path, "--resume", "journal entry of another scenario or other training "
                      "settings than run.json's: the journal is not this scenario's run; remove "
                      "the run's checkpoint folder to train its updates again")


def damaged(path: Path, why: str) -> InputError:
    return InputError(path, "--resume", f"journal entry damaged: {why}; remove the run's checkpoint "
                      "folder from this entry on to train those updates again")


def seal(updates: list[dict[str, Any]], balancers: dict[int, dict[str, torch.Tensor]]) -> str:
    """A digest of what a resumed run takes from an entry: each update's client, weight,
    statistics and module tensors (name, dtype, shape, bytes), and each balancer's tensors."""
    h = hashlib.sha256()
    for update in updates:
        h.update(json.dumps([update["client"], update["weight"], update["stats"]],
                            sort_keys=True, default=repr).encode())
        digest_tensors(h, update["modules"])
    for client in sorted(balancers):
        h.update(str(client).encode())
        digest_tensors(h, balancers[client])
    return h.hexdigest()


def digest_tensors(h: Any, tensors: dict[str, torch.Tensor]) -> None:
    """Feed each tensor's name, dtype, shape and bytes to the hash ``h``, in name order."""
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def check_entry(entry: Any, path: Path, model: JournalModel | None = None,
                scenario: str | None = None) -> None:
    if isinstance(entry, dict) and set(entry) == {"keys", "updates", "balancers", "seal"}:
        raise damaged(path, "written by an earlier cosim, without the scenario it trained")
    if not isinstance(entry, dict) or set(entry) != ENTRY_FIELDS:
        raise damaged(path, "not a journal entry (keys, start_balancers, scenario, updates, "
                      "balancers, seal)")
    keys, updates, balancers = entry["keys"], entry["updates"], entry["balancers"]
    if not isinstance(keys, list) or not all(
            isinstance(k, list) and len(k) == 3 and _whole(k[0]) and _whole(k[1])
            and isinstance(k[2], str) for k in keys):
        raise damaged(path, "its call keys are not [client, seed, digest] triples")
    if not isinstance(entry["start_balancers"], str) or not isinstance(entry["scenario"], str):
        raise damaged(path, "its balancer and scenario digests are not digests")
    if scenario is not None and entry["scenario"] != scenario:
        raise other_scenario(path)
    if not isinstance(updates, list) or len(updates) != len(keys):
        raise damaged(path, "it holds another number of updates than the call trained")
    if model is not None and not all(0 <= k[0] < model.clients for k in keys):
        raise damaged(path, f"it trains a client the scenario does not have (it has {model.clients})")
    for update, key in zip(updates, keys, strict=True):
        _check_update(update, key[0], path, model)
    if not isinstance(balancers, dict):
        raise damaged(path, "its balancers are not a mapping")
    trained = {k[0] for k in keys}
    for client, state in balancers.items():
        if not _whole(client) or not isinstance(state, dict):
            raise damaged(path, "a balancer is not a client's tensors")
        if client not in trained:
            raise damaged(path, "it restores the balancer of a client the call did not train")
        _check_balancer(state, client, path, model)
    if entry["seal"] != seal(updates, balancers):
        raise damaged(path, "its contents differ from the seal training wrote with them: the "
                      "entry was changed afterwards")


def _check_balancer(state: dict[Any, Any], client: int, path: Path, model: JournalModel | None
                    ) -> None:
    """A gradient balancer's state: its five per-task float64 vectors, of one length (the
    client's tasks), with non-negative weights and every value finite but the initial losses'
    NaN ("not seen yet")."""
    if set(state) != set(BALANCER_TENSORS):
        raise damaged(path, f"balancer {client} does not hold {', '.join(BALANCER_TENSORS)}")
    lengths = set()
    for name in BALANCER_TENSORS:
        tensor = state[name]
        if not _dense(tensor) or tensor.dtype != torch.float64 or tensor.dim() != 1:
            raise damaged(path, f"balancer {client} {name} is not a vector of float64")
        lengths.add(tensor.numel())
        values = tensor[~torch.isnan(tensor)] if name == "initial_losses" else tensor
        if not bool(torch.isfinite(values).all()):
            raise damaged(path, f"balancer {client} {name} holds non-finite values")
    most = model.tasks if model is not None else None
    if len(lengths) != 1 or 0 in lengths or (most is not None and lengths.pop() > most):
        raise damaged(path, f"balancer {client}'s vectors are not one per task of the client")
    if bool((state["weights"] < 0).any()):
        raise damaged(path, f"balancer {client} has a negative task weight")


def _check_update(update: Any, client: int, path: Path, model: JournalModel | None = None) -> None:
    if not isinstance(update, dict) or set(update) != {"client", "modules", "weight", "stats"}:
        raise damaged(path, "an update is not (client, modules, weight, stats)")
    if update["client"] != client:
        raise damaged(path, f"an update of client {update['client']} answers client {client}'s call")
    weight = update["weight"]
    if (not isinstance(weight, float | int) or isinstance(weight, bool) or not math.isfinite(weight)
            or not 0 < weight <= MAX_UPDATE_WEIGHT or weight != int(weight)):
        raise damaged(path, f"client {client}'s update weight {weight!r} is not a sample count")
    modules = update["modules"]
    if not isinstance(modules, dict) or not modules:
        raise damaged(path, f"client {client}'s update holds no modules")
    for name, tensor in modules.items():
        _check_tensor(tensor, f"client {client}'s {name}", path)
        if model is not None:
            _check_module(name, tensor, model, f"client {client}'s {name}", path)
    stats = update["stats"]
    _check_stats(stats, client, path)
    if model is not None:
        if not set(stats["modules"]) <= set(model.names):
            raise damaged(path, f"client {client}'s statistics name modules the model lacks")
        if set(modules) != module_tensors(model.modules, stats["modules"]):
            raise damaged(path, f"client {client}'s update does not hold exactly the modules it "
                          "trained")


def module_tensors(tensors: Any, names: list[str]) -> set[str]:
    """The tensor names of the named modules among ``tensors`` (``NAME.*``): what an update
    of those modules holds."""
    return {key for key in tensors if any(key.startswith(n + ".") for n in names)}


def _check_stats(stats: Any, client: int, path: Path) -> None:
    """Training statistics of the types and ranges ``LocalStats`` is written with: samples
    per task, finite losses per task, non-negative FLOPs, step count and task weights, and the
    trained modules' names."""
    what = f"client {client}'s training statistics"
    if not isinstance(stats, dict) or not STATS_FIELDS <= set(stats) <= STATS_FIELDS | {"task_weights"}:
        raise damaged(path, f"{what} are not the trainer's")
    per_task = {"samples_per_task": (True, 0), "first_epoch_loss": (False, None),
                "last_epoch_loss": (False, None), "task_weights": (False, 0)}
    for field, (whole, least) in per_task.items():
        values = stats.get(field, {})
        if not isinstance(values, dict) or not all(
                isinstance(k, str) and _number(v, whole, least) for k, v in values.items()):
            raise damaged(path, f"{what}: {field} is not a finite number per task")
    if not _number(stats["flops_per_sample"], False, 0) or not _number(stats["steps"], True, 0):
        raise damaged(path, f"{what}: flops_per_sample or steps is not a count")
    names = stats["modules"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise damaged(path, f"{what}: modules is not a list of module names")


def _number(value: Any, whole: bool, least: float | None) -> bool:
    """A finite int or float (an int where ``whole``), at least ``least`` where given."""
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
        return False
    if isinstance(value, int) and abs(value) > MAX_COUNT:  # beyond any float: no count trained
        return False
    return math.isfinite(value) and (least is None or value >= least)


def _check_module(name: Any, tensor: torch.Tensor, model: JournalModel, what: str, path: Path
                  ) -> None:
    """A module tensor of the resumed run's model, of its shape and dtype."""
    if name not in model.modules:
        raise damaged(path, f"{what} is not one of the model's modules")
    shape, dtype = model.modules[name]
    if tuple(tensor.shape) != shape or tensor.dtype != dtype:
        raise damaged(path, f"{what} is {tuple(tensor.shape)} {tensor.dtype}, the model's "
                      f"{shape} {dtype}")


def _check_tensor(tensor: Any, what: str, path: Path) -> None:
    if not _dense(tensor):
        raise damaged(path, f"{what} is not a dense tensor")
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise damaged(path, f"{what} holds non-finite values")


def _dense(tensor: Any) -> bool:
    """A tensor as training writes them: strided (not sparse), with its data (not meta)."""
    return isinstance(tensor, torch.Tensor) and tensor.layout == torch.strided and not tensor.is_meta


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
