"""A content-addressed cache for built artefacts (networks, routes, pre-trained weights).

An entry is a folder named by the hash of everything that determines its content; it is built in
a temporary folder and renamed into place, so an interrupted build never looks finished.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

KINDS = ("networks", "demand", "sumo-loads", "intersections", "data", "pretrained", "checked")
"""The cache's folders, one per kind of entry (``checked``: the remembered input checks)."""


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
    assert kind in KINDS, f"{kind}: add it to cache.KINDS (no output may be written there)"
    final = cache_root() / kind / key
    if final.is_symlink():  # an entry is a folder cosim built here, never one found elsewhere
        raise OSError(errno.EPERM, "a link, not a cache entry cosim built; remove it", str(final))
    if (final / ".complete").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _entry_lock(final.parent / f"{key}.lock") as lock:
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


def remember_pass(kind: str, key: str) -> tuple[bool, Callable[[], None]]:
    """Whether a check of ``kind`` passed before on inputs of ``key`` (its marker file in the
    cache), and how to record that it passed now. The marker and its folder are cosim's own
    names: a link at either is refused, never followed (nor taken as a pass)."""
    folder = cache_root() / "checked" / kind
    marker = folder / key
    for path in (folder, marker):
        if path.is_symlink():
            raise OSError(errno.EPERM, "a link, not a file cosim made in its cache; remove it",
                          str(path))

    def record() -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if folder.is_symlink():  # made a link meanwhile
                return
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                             | os.O_CLOEXEC, 0o644))
        except OSError:
            pass  # a read-only cache, or a name taken meanwhile: the check runs again next time

    return marker.is_file(), record


def _entry_lock(path: Path) -> IO[bytes]:
    """The lock file of an entry, opened without following a link or emptying what is there: a
    name that leads elsewhere (a link, a FIFO, a folder) is refused, never written through."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR):
            raise OSError(errno.EPERM, "not a lock file cosim made (a link or a folder); remove "
                          "it", str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EPERM, "not a plain file, not a lock file cosim made; remove it",
                      str(path))
    return os.fdopen(fd, "r+b")
