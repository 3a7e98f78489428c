"""A rich progress bar in simulated time, with the layers' live fields and the speed-up."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


def format_sim_time(t: float) -> str:
    t = int(t)
    return f"{t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}"


class RunProgress:
    """Context manager; ``tick(now)`` updates the bar (rich limits the redraw rate)."""

    def __init__(self, duration_s: float, fields: Callable[[], dict[str, str]], quiet: bool,
                 console: Console | None = None):
        self.duration_s = duration_s
        self.fields = fields
        self.quiet = quiet
        self._start = time.perf_counter()
        self._progress = Progress(
            TextColumn("[bold]sim {task.fields[sim]}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[live]}"),
            TextColumn("[cyan]x{task.fields[speedup]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            disable=quiet,
        )
        self._task = None

    def __enter__(self) -> RunProgress:
        self._start = time.perf_counter()
        self._progress.__enter__()
        self._task = self._progress.add_task("run", total=self.duration_s, sim="00:00:00",
                                             live="", speedup="-")
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def tick(self, now: float) -> None:
        if self.quiet:
            return
        wall = time.perf_counter() - self._start
        live = "  ".join(f"{k} {v}" for k, v in self.fields().items())
        speedup = f"{now / wall:,.0f}" if wall > 0 else "-"
        self._progress.update(self._task, completed=now, sim=format_sim_time(now), live=live,
                              speedup=speedup)
