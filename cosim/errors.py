"""Errors the CLI turns into exit codes: bad user input (2) versus internal failures (1)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

MAX_MESSAGE_CHARS = 500  # a message quoting user input stays one readable line
MAX_FIELD_CHARS = 120


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class InputError(Exception):
    """Bad user input: reported as ONE line ``error: <file>: <field>: <what>`` and exit code 2."""

    def __init__(self, file: str | Path | None, field: str | None, message: str):
        self.file = str(file) if file is not None else None
        self.field = field
        self.message = message
        # args rebuild the error: SimPy re-raises a process's error as type(exc)(*exc.args)
        super().__init__(self.file, field, message)

    def __reduce__(self):  # crosses process boundaries (cosim compare's workers) intact
        return (type(self), (self.file, self.field, self.message))

    def __str__(self) -> str:
        return self.line()

    def line(self) -> str:
        return _line("error", self.file, self.field, self.message)


# What a terminal acts on rather than shows: C0 controls (line breaks, ESC, BEL), DEL, C1
# controls, the Unicode line and paragraph separators, and the bidirectional marks, overrides
# and isolates that make a printed name read other than it is (U+200E-F, U+202A-E, U+2066-9)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control character written as its escape (``\\x1b``, ``\\n``): what
    a file says (a run.json's host or error, a folder's name) is shown, never obeyed by the
    terminal (a title escape, a bell, a line that looks like another run's)."""
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _line(kind: str, file: str | None, field: str | None, message: str) -> str:
    parts = [kind]
    if file:
        parts.append(file)
    if field:
        parts.append(_cut(field, MAX_FIELD_CHARS))
    parts.append(_cut(message, MAX_MESSAGE_CHARS))
    return printable(" ".join(": ".join(parts).splitlines()))  # every line break Python knows of


_warned: set[str] = set()


_held: list[str] | None = None  # warnings said while inputs are checked, not yet printed


def warn(file: str | Path | None, field: str | None, message: str) -> None:
    """One line ``warning: <file>: <field>: <what>`` on stderr, once per process: something
    works, but not as the user may expect."""
    import sys

    line = _line("warning", str(file) if file is not None else None, field, message)
    if line not in _warned:
        _warned.add(line)
        if _held is not None:
            _held.append(line)
        else:
            print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def warnings_after_checks() -> Iterator[None]:
    """Warnings said while the inputs are checked are printed once the checks pass: an input
    refused is its one error line, not a warning about another input before it."""
    import sys

    global _held
    outer = _held
    _held = [] if outer is None else outer
    try:
        yield
    except BaseException:
        if outer is None:
            for line in _held:
                _warned.discard(line)  # said again if the next check passes
            _held = None
        raise
    if outer is None:
        lines, _held = _held, None
        for line in lines:
            print(line, file=sys.stderr, flush=True)


class MissingDependencyError(Exception):
    """An optional dependency or external tool is missing; the message says what to install."""
