"""One mechanism for every extension point (scheduling policies, aggregation strategies, PEFT
methods, tasks, trainer backends): a name -> implementation map whose unknown names are one-line
input errors naming the scenario field and suggesting the closest known name, as the scenario's
unknown keys are."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from cosim.errors import InputError

T = TypeVar("T")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or nothing."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Registry(dict[str, T]):
    """The implementations of one extension point, by the name a scenario gives them."""

    def __init__(self, kind: str, field: str, entries: Mapping[str, T] | None = None):
        super().__init__(entries or {})
        self.kind, self.field = kind, field

    def __missing__(self, name: str) -> T:
        raise InputError(None, self.field, f"unknown {self.kind} {name!r}{did_you_mean(name, self)} "
                         f"(known: {', '.join(self)})")

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that enters its class or function under ``name``."""
        def enter(value: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = value
            return value
        return enter
