"""What a training journal entry must hold before a resumed run trusts it.

The journal is a file on disk like any other: truncated by a full disk, edited by hand, copied
from another run. An entry is read with ``weights_only=True`` (no code runs) and then checked
here: its layout (keys, updates, balancers), whole numbers where counts are, finite tensors and
weights, entries numbered without gaps. A damaged entry is one InputError (exit 2) naming it,
before the resumed run touches its folder; a well-formed entry that answers other training than
the resumed run asks for is caught when it is replayed (``journal.journal_mismatch``).
"""

from __future__ import annotations

import math
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from cosim.errors import InputError

ENTRY_NAME = re.compile(r"train-(\d{6})\.pt")
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


def load_entry(path: Path) -> dict[str, Any]:
    """One entry, read without running code and checked (``check_entry``)."""
    if path.is_symlink() or not path.is_file():
        raise damaged(path, "not a regular file")
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as exc:
        raise damaged(path, f"unreadable ({type(exc).__name__})") from None
    check_entry(entry, path)
    return entry


def check_journal(folder: Path) -> int:
    """Read and check every entry of a journal folder; the number of entries."""
    entries = journal_entries(folder)
    for path in entries:
        load_entry(path)
    return len(entries)


def damaged(path: Path, why: str) -> InputError:
    return InputError(path, "--resume", f"journal entry damaged: {why}; remove the run's checkpoint "
                      "folder from this entry on to train those updates again")


def check_entry(entry: Any, path: Path) -> None:
    if not isinstance(entry, dict) or set(entry) != {"keys", "updates", "balancers"}:
        raise damaged(path, "not a journal entry (keys, updates, balancers)")
    keys, updates, balancers = entry["keys"], entry["updates"], entry["balancers"]
    if not isinstance(keys, list) or not all(
            isinstance(k, list) and len(k) == 3 and _whole(k[0]) and _whole(k[1])
            and isinstance(k[2], str) for k in keys):
        raise damaged(path, "its call keys are not [client, seed, digest] triples")
    if not isinstance(updates, list) or len(updates) != len(keys):
        raise damaged(path, "it holds another number of updates than the call trained")
    for update, key in zip(updates, keys, strict=True):
        _check_update(update, key[0], path)
    if not isinstance(balancers, dict):
        raise damaged(path, "its balancers are not a mapping")
    for client, state in balancers.items():
        if not _whole(client) or not isinstance(state, dict):
            raise damaged(path, "a balancer is not a client's tensors")
        for name, tensor in state.items():  # NaN is a balancer's "not seen yet" (initial losses)
            if not isinstance(tensor, torch.Tensor):
                raise damaged(path, f"balancer {client} {name} is not a tensor")


def _check_update(update: Any, client: int, path: Path) -> None:
    if not isinstance(update, dict) or set(update) != {"client", "modules", "weight", "stats"}:
        raise damaged(path, "an update is not (client, modules, weight, stats)")
    if update["client"] != client:
        raise damaged(path, f"an update of client {update['client']} answers client {client}'s call")
    weight = update["weight"]
    if not isinstance(weight, float | int) or not math.isfinite(weight) or weight < 0:
        raise damaged(path, f"client {client}'s update weight {weight!r} is not a sample count")
    modules = update["modules"]
    if not isinstance(modules, dict) or not modules:
        raise damaged(path, f"client {client}'s update holds no modules")
    for name, tensor in modules.items():
        _check_tensor(tensor, f"client {client}'s {name}", path)
    if not isinstance(update["stats"], dict):
        raise damaged(path, f"client {client}'s training statistics are not a mapping")


def _check_tensor(tensor: Any, what: str, path: Path) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise damaged(path, f"{what} is not a tensor")
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise damaged(path, f"{what} holds non-finite values")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
