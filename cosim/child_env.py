"""Python children that cosim spawns (multiprocessing's spawn: compare workers, training worker
processes) start with ``-c``, which puts the working folder first on their path before they
learn the parent's: a ``multiprocessing.py`` (or any module they import first) lying there would
run inside them. PYTHONSAFEPATH, set while they start, keeps the working folder off it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def safe_child_path() -> Iterator[None]:
    """Children started inside this block get no working folder on their path."""
    previous = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTHONSAFEPATH", None)
        else:
            os.environ["PYTHONSAFEPATH"] = previous
