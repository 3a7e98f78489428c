"""The Python snippets the README and the docs show, found where they are written, so the tests
that run them cover every page (each distinct snippet once)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
# Every snippet is one of these kinds, each run by its own test on a real run or compare folder.
API = "from cosim import api"  # tests/test_api.py
TRACES = 'run = "runs/sf_downtown-20261123-120000"'  # tests/test_compare.py: this and the next
# A user's extension module (a how-to's file, run by tests/test_extensions.py): "# name.py" first
MODULE = re.compile(r"^# ([a-z_][a-z0-9_]*)\.py\n")


def python_blocks() -> list[tuple[str, str]]:
    """(document:line, code) of every distinct ```python block, in reading order."""
    found: dict[str, str] = {}
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.setdefault(match.group(1), f"{document.relative_to(REPO)}:{line}")
    return [(where, code) for code, where in found.items()]


def extension_modules() -> dict[str, str]:
    """Module name -> source of every documented extension module."""
    return {m.group(1): code for _, code in python_blocks() if (m := MODULE.match(code))}


def api_snippets() -> list[str]:
    return [code for _, code in python_blocks() if API in code]


def trace_snippet_groups() -> list[list[str]]:
    """Each group: a block that names a run folder, then the blocks after it on its page that
    use it (the pandas, polars and DuckDB examples)."""
    groups: list[list[str]] = []
    for document in DOCUMENTS:
        blocks = BLOCK.findall(document.read_text(encoding="utf-8"))
        for i, code in enumerate(blocks):
            if TRACES in code:
                rest = [b for b in blocks[i + 1:] if API not in b and TRACES not in b]
                groups.append([code, *rest])
    unique: dict[tuple[str, ...], list[str]] = {}
    for group in groups:
        unique.setdefault(tuple(group), group)
    return list(unique.values())
