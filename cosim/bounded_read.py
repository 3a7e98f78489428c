"""Reading the small text files cosim is handed (scenarios, run.json, compare.json) safely: only
regular files (a FIFO or a device would block or never end), and only up to a size cap checked
before reading."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from pathlib import Path
from typing import Any

from cosim.errors import InputError

TEXT_LIMIT_BYTES = 64 * 2**20  # a scenario or run.json is kilobytes; more is not one
# /proc, /sys and /dev hold files that stat as regular (or empty) but block or never end when read
VIRTUAL_ROOTS = ("/proc", "/sys", "/dev")


def virtual_file(path: Path) -> bool:
    """Whether ``path`` (its target, symlinks followed) lies in a kernel's virtual file system."""
    resolved = str(Path(path).resolve())
    return any(resolved == root or resolved.startswith(root + "/") for root in VIRTUAL_ROOTS)


def read_bounded_text(path: Path, what: str, limit: int = TEXT_LIMIT_BYTES) -> str:
    """The file's text; InputError if it is not a regular file or is over ``limit`` bytes.
    FileNotFoundError and IsADirectoryError pass through (callers word them)."""
    st = path.stat()  # FileNotFoundError as is
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(str(path))
    if not stat.S_ISREG(st.st_mode) or virtual_file(path):
        raise InputError(path, None, f"not a regular file (a {what} is read from a file)")
    if st.st_size > limit:
        raise InputError(path, None, f"{st.st_size:,} bytes: too big for a {what} (at most {limit:,})")
    with open(path, encoding="utf-8") as f:
        text = f.read(limit + 1)
    if len(text.encode("utf-8")) > limit:  # grew while read
        raise InputError(path, None, f"too big for a {what} (at most {limit:,} bytes)")
    return text


def read_json_file(path: Path, what: str) -> Any:
    """A JSON file read with ``read_bounded_text``; invalid JSON is an InputError."""
    try:
        text = read_bounded_text(path, what)
    except UnicodeDecodeError as exc:  # binary garbage, or another encoding
        raise InputError(path, None, f"not valid JSON: not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(path, None, f"not valid JSON: {str(exc)[:120]}") from None
    if LONE_SURROGATE.search(text) is not None and _has_surrogate(value):
        raise InputError(path, None, "holds a \\ud800-\\udfff escape that is no character "
                         "(a lone surrogate): text cosim cannot write back")
    return value


# a JSON escape of a UTF-16 surrogate: paired ones make a character, a lone one none
LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _has_surrogate(value: Any) -> bool:
    """Whether a JSON value holds a string (or key) with a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read in blocks: run.json keeps its traces', so that a reader can tell
    them unchanged."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
