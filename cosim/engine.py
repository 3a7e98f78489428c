"""One SimPy environment owns simulated time; layers plug their processes and traces into it.

A layer (mobility, radio, learning, ...) is an object with a ``name`` and an ``attach(engine)``
that registers its SimPy processes and opens its trace tables; optional ``progress_fields()``
feeds the progress bar and ``summary()`` goes into run.json. The engine knows no layer by type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import simpy

from cosim.traces import TraceSet


@runtime_checkable
class Layer(Protocol):
    name: str

    def attach(self, engine: Engine) -> None: ...


class _UrgentTimeout(simpy.events.Event):
    """A timeout processed before ordinary events of the same instant (SimPy's URGENT)."""

    def __init__(self, env: simpy.Environment, delay: float):
        super().__init__(env)
        self._ok = True
        self._value = None
        env.schedule(self, simpy.events.URGENT, delay)


def until(env: simpy.Environment, t: float, urgent: bool = False) -> simpy.Event:
    """A timeout that fires at absolute time ``t`` (periodic processes use k * period so that
    float steps never accumulate drift).

    ``urgent``: the world-state layers (mobility, then radio) wake up before every ordinary
    process at the same instant, so that learning processes always see the state of ``t``.
    """
    delay = max(0.0, t - env.now)
    return _UrgentTimeout(env, delay) if urgent else env.timeout(delay)


class Engine:
    """Holds the clock, the trace tables and the layers of one run."""

    def __init__(self, duration_s: float, traces: TraceSet):
        self.duration_s = duration_s
        self.traces = traces
        self.env = simpy.Environment()
        self.layers: dict[str, Any] = {}

    def add_layer(self, layer: Layer) -> None:
        if layer.name in self.layers:
            raise ValueError(f"layer {layer.name!r} added twice")
        self.layers[layer.name] = layer
        layer.attach(self)

    def layer(self, name: str) -> Any:
        return self.layers[name]

    def progress_fields(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        for layer in self.layers.values():
            if hasattr(layer, "progress_fields"):
                fields.update(layer.progress_fields())
        return fields

    def summary(self) -> dict[str, Any]:
        return {name: layer.summary() for name, layer in self.layers.items()
                if hasattr(layer, "summary")}

    def run(self, on_tick: Callable[[float], None] | None = None, tick_s: float = 1.0) -> None:
        """Run until the scenario's duration; call ``on_tick(now)`` every ``tick_s``."""
        if on_tick is not None:
            self.env.process(self._ticker(on_tick, tick_s))
        self.env.run(until=self.duration_s)
        for layer in self.layers.values():
            if hasattr(layer, "finish"):
                layer.finish()
        if on_tick is not None:
            on_tick(self.env.now)

    def stop(self) -> None:
        """End the run now, before the duration (a layer whose work is done asks for it)."""
        event = self.env.event()
        event.callbacks.append(simpy.core.StopSimulation.callback)
        event.succeed()

    def _ticker(self, on_tick: Callable[[float], None], tick_s: float):
        k = 0
        while True:
            on_tick(self.env.now)
            k += 1
            yield until(self.env, k * tick_s)
