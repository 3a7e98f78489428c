"""Extra engine layers the tests attach to a run (``run_scenario(extra_layers=...)``)."""

from __future__ import annotations

from typing import Any


def ctrl_c_at(seconds: float) -> type:
    """A layer that presses Ctrl-C (KeyboardInterrupt) at a simulated instant."""

    class CtrlC:
        name = "stop"

        def __init__(self, engine: Any) -> None:
            pass

        def attach(self, engine: Any) -> None:
            def press():
                yield engine.env.timeout(seconds)
                raise KeyboardInterrupt

            engine.env.process(press())

    return CtrlC
