"""A content-addressed cache for built artefacts (networks, routes, pre-trained weights).

An entry is a folder named by the hash of everything that determines its content; it is built in
a temporary folder and renamed into place, so an interrupted build never looks finished.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


def cache_root() -> Path:
    """``$COSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/cosim``, else ``~/.cache/cosim``."""
    if os.environ.get("COSIM_CACHE_DIR"):
        return Path(os.environ["COSIM_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "cosim"


def content_key(parts: Iterable[str | bytes | Path]) -> str:
    """Hash of strings, bytes and the bytes of files, in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):  # streamed: a big file is never all in memory
            with part.open("rb") as f:
                h.update(os.fstat(f.fileno()).st_size.to_bytes(8, "little"))
                while block := f.read(1 << 20):
                    h.update(block)
            continue
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:20]


def cached_folder(kind: str, key: str, build: Callable[[Path], object]) -> Path:
    """Return the cache folder for (kind, key), calling ``build(tmp_folder)`` if it is missing.

    Processes that want the same entry at once (``cosim compare --jobs``) take turns on a lock
    file: one builds, the others find it complete."""
    final = cache_root() / kind / key
    if (final / ".complete").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ".complete").exists():  # built by another process while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=final.parent))
        try:
            build(tmp)
            (tmp / ".complete").touch()
            if final.exists():  # an incomplete leftover of an earlier interrupted build
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
