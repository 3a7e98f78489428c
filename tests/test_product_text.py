"""The product speaks of the product: no word of how it was developed (numbered working periods,
tracker tickets, batches of work, stops, commit hashes told as history) in the README, the docs,
the changelog, or the code, comments and test names of cosim/, bench/ and tests/.

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
# the words themselves, spelt in parts: this file names what it refuses without using it
SESSION, ISSUE, WAVE = "sess" + "ion", "iss" + "ue", "wa" + "ve"

# each: a development meaning that has no place in the product
FORBIDDEN = [
    rf"\b{SESSION}s? #?\d+",          # a numbered working period, or several
    rf"\b(this|that|our|the next|the previous|an earlier|a later) (work )?{SESSION}\b",
    rf"\b{SESSION}'?s (code|work)\b",
    rf"\b{ISSUE}s? #?\d+",            # a numbered tracker ticket
    rf"\b(this|that|the) {ISSUE}\b",  # the ticket a change was made for
    rf"\b{WAVE}s?\b",                 # a batch of work
    r"\bstop \d+\b",                 # a numbered stop
    r"\b(before|after) this (change|work|refactor)\b",
    r"\b(commit|at|code) [0-9a-f]{7,40}\b(?! ?[,:] ?(command|`cosim))",  # a hash as history
]
PATTERN = re.compile("|".join(f"(?:{p})" for p in FORBIDDEN), re.IGNORECASE)


def test_the_files_checked_include_the_product():
    names = {p.relative_to(REPO).as_posix() for p in FILES}
    assert {"README.md", "CHANGELOG.md", "docs/index.md", "cosim/cli.py"} <= names


@pytest.mark.parametrize(("text", "bad"), [
    (f"Measured with {SESSION} 9's code", True), (f"before this {ISSUE} (commit 4b79dfe)", True),
    (f"the next {WAVE} of fixes", True), ("stop 3 of the plan", True), (f"{ISSUE} #15", True),
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
