"""A content-addressed cache for built artefacts (networks, routes, pre-trained weights).

An entry is a folder named by the hash of everything that determines its content; it is built in
a temporary folder and renamed into place, so an interrupted build never looks finished.
"""

from __future__ import annotations

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
        if isinstance(part, Path):
            data = part.read_bytes()
        elif isinstance(part, str):
            data = part.encode()
        else:
            data = part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:20]


def cached_folder(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """Return the cache folder for (kind, key), calling ``build(tmp_folder)`` if it is missing."""
    final = cache_root() / kind / key
    if (final / ".complete").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=final.parent))
    try:
        build(tmp)
        (tmp / ".complete").touch()
        if final.exists():  # an incomplete leftover of an earlier interrupted build
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished first
            if not (final / ".complete").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
