"""The product speaks of the product: no word of how it was developed (work sessions, tracker
issues, waves of work, stops, commit hashes told as history) in the README, the docs, the
changelog, or the code, comments and test names of cosim/, bench/ and tests/.

"session" alone is a product word (a SUMO/TraCI session in cosim/mobility/); only its development
meanings are refused. A commit or version that dates a measurement ("cosim 0.1.0 at abc1234,
command ...") is fine; a hash in a sentence about what changed is not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FILES = sorted([REPO / "README.md", REPO / "CHANGELOG.md", *(REPO / "docs").rglob("*.md"),
                *(p for folder in ("cosim", "bench", "tests", "examples", "scenarios", "docs")
                  for pattern in ("*.py", "*.yaml", "*.md", "*.ipynb")
                  for p in (REPO / folder).rglob(pattern))])
SELF = Path(__file__).resolve()

# each: a development meaning that has no place in the product
FORBIDDEN = [
    r"\bsessions? #?\d+",            # "session 9", "sessions 11 and 12"
    r"\b(this|that|our|the next|the previous|an earlier|a later) (work )?session\b",
    r"\bsession'?s (code|work)\b",
    r"\bissues? #?\d+",               # "issue 15", "issue #7"
    r"\b(this|that|the) issue\b",    # "before this issue", "the issue asked for"
    r"\bwaves?\b",                   # "wave 3"
    r"\bstop \d+\b",                 # "stop 4"
    r"\b(before|after) this (change|work|refactor)\b",
    r"\b(commit|at|code) [0-9a-f]{7,40}\b(?! ?[,:] ?(command|`cosim))",  # a hash as history
]
PATTERN = re.compile("|".join(f"(?:{p})" for p in FORBIDDEN), re.IGNORECASE)


def test_the_files_checked_include_the_product():
    names = {p.relative_to(REPO).as_posix() for p in FILES}
    assert {"README.md", "CHANGELOG.md", "docs/index.md", "cosim/cli.py"} <= names


@pytest.mark.parametrize(("text", "bad"), [
    ("Measured with session 9's code", True), ("before this issue (commit 4b79dfe)", True),
    ("the next wave of fixes", True), ("stop 3 of the plan", True), ("issue #15", True),
    ("a SUMO session over TraCI", False), ("TraciSession", False),
    ("a libsumo session steps ahead", False), ("cosim 0.1.0, 2026-12-06", False),
])
def test_the_pattern_tells_development_words_from_product_words(text, bad):
    assert bool(PATTERN.search(text)) is bad


def test_no_development_history_in_the_product():
    found = []
    for path in FILES:
        if path.resolve() == SELF:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            match = PATTERN.search(line)
            if match:
                found.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)!r}: {line.strip()[:100]}")
    assert not found, "development history in the product:\n" + "\n".join(found)
