"""One mechanism for every extension point (scheduling policies, aggregation strategies, PEFT
methods, tasks, trainer backends): a name -> implementation map whose unknown names are one-line
input errors naming the scenario field and suggesting the closest known name, as the scenario's
unknown keys are.

A scenario may also name an implementation in the user's own code as ``package.module:Name``:
code the user asked to run, imported by ``Registry.resolve`` only once the rest of the scenario
is known to be good, and checked to be what the extension point needs.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from cosim.errors import InputError

T = TypeVar("T")

# package.module:Name (the name may be dotted: a class inside a class)
USER_REFERENCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
                            r":[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or nothing."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def is_user_reference(name: str) -> bool:
    """``package.module:Name``: an implementation in the user's own code."""
    return USER_REFERENCE.match(name) is not None


def import_user_object(reference: str, field: str) -> Any:
    """The object ``package.module:Name`` names, or an InputError naming ``field``."""
    module, sep, attr = reference.partition(":")
    if not sep or not is_user_reference(reference):
        raise InputError(None, field, f"{reference!r}: give a module and a name, as module:Name")
    try:
        found: Any = importlib.import_module(module)
        for part in attr.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise InputError(None, field, f"cannot load {reference!r}: {exc}") from None
    except (Exception, SystemExit) as exc:  # the user's module failed as it was imported
        said = " ".join(str(exc).split())[:200]
        raise InputError(None, field, f"importing {module!r} raised {type(exc).__name__}"
                         + (f": {said}" if said else "")) from None
    return found


class Registry(dict[str, T]):
    """The implementations of one extension point, by the name a scenario gives them.

    ``check(obj)`` says what is wrong with a user's implementation (None: nothing)."""

    def __init__(self, kind: str, field: str, entries: Mapping[str, T] | None = None,
                 check: Callable[[Any], str | None] | None = None):
        super().__init__(entries or {})
        self.kind, self.field, self.check = kind, field, check

    def __missing__(self, name: str) -> T:
        raise InputError(None, self.field, f"unknown {self.kind} {name!r}{did_you_mean(name, self)} "
                         f"(known: {', '.join(self)}; or module:Name)")

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that enters its class or function under ``name``."""
        def enter(value: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = value
            return value
        return enter

    def resolve(self, name: str) -> T:
        """A registered implementation, or the user's ``module:Name`` (imported now), checked."""
        if name in self or ":" not in name:
            return self[name]
        found = import_user_object(name, self.field)
        problem = self.check(found) if self.check is not None else None
        if problem is not None:
            raise InputError(None, self.field, f"{name!r} is not a usable {self.kind}: {problem}")
        return found
