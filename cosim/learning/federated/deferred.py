"""Values computed when first needed: a sync round's updates and the global state they make.

With ``learning.local.overlap``, a synchronous round's completed updates train on the worker
threads while the run's thread simulates the next round's radio. What the simulation needs of the
round (who completed, the new model version) is known at once; the trained modules, and the
global state averaged from them, are needed only when the next round's updates train, when the
global model is scored, or at the run's end. Whichever thread asks first waits for the training
and computes the value, once; every later asker gets the same object, so traces do not depend on
which thread asked or when.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


class Deferred(Generic[T]):
    """``compute()``'s value, computed once, by the first thread that asks for it."""

    def __init__(self, compute: Callable[[], T]):
        self._compute: Callable[[], T] | None = compute
        self._value: T | None = None
        self._lock = threading.Lock()

    @classmethod
    def ready(cls, value: T) -> Deferred[T]:
        out: Deferred[T] = cls(lambda: value)
        out.result()
        return out

    def result(self) -> T:
        with self._lock:
            if self._compute is not None:
                self._value = self._compute()
                self._compute = None  # drop what it held (start states, futures)
            return self._value  # type: ignore[return-value]


class DeferredState(Mapping[str, torch.Tensor]):
    """A global state (module key -> tensor) that is averaged when first read.

    It is a read-only mapping, as every state is (aggregation makes new states, it never changes
    one in place): a client launched from it holds it unread, and training reads it."""

    def __init__(self, compute: Callable[[], Mapping[str, torch.Tensor]]):
        self._state = Deferred(lambda: dict(compute()))

    def resolve(self) -> dict[str, torch.Tensor]:
        return self._state.result()

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.resolve()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.resolve())

    def __len__(self) -> int:
        return len(self.resolve())


def snapshot(state: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """A state to keep (a plain dict is copied; a deferred one is read-only and stays unread)."""
    return state if isinstance(state, DeferredState) else dict(state)


def resolved(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state itself, or a deferred one's value (after waiting for its training)."""
    return state.resolve() if isinstance(state, DeferredState) else state  # type: ignore[return-value]
