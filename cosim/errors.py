"""Errors the CLI turns into exit codes: bad user input (2) versus internal failures (1)."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input: reported as ONE line ``error: <file>: <field>: <what>`` and exit code 2."""

    def __init__(self, file: str | Path | None, field: str | None, message: str):
        self.file = str(file) if file is not None else None
        self.field = field
        self.message = message
        super().__init__(self.line())

    def __reduce__(self):  # crosses process boundaries (cosim compare's workers) intact
        return (InputError, (self.file, self.field, self.message))

    def line(self) -> str:
        parts = ["error"]
        if self.file:
            parts.append(self.file)
        if self.field:
            parts.append(self.field)
        parts.append(self.message.replace("\n", " "))
        return ": ".join(parts)


class MissingDependencyError(Exception):
    """An optional dependency or external tool is missing; the message says what to install."""
