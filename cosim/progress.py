"""Progress of a run in simulated time, on a terminal and off it.

On a terminal: a rich bar with simulated time of total, ETA, the layers' live fields (round,
accuracy, ...) and the labelled speed-up over real time; the warm-up phases (SUMO, radio,
learning set-up, and within them the steps of long work: data generation, pre-training) show as
a spinner line before the clock starts. Off a terminal (piped, nohup, a cluster job): one plain
log line every ``COSIM_PROGRESS_EVERY_S`` seconds (default 30) with the same fields, and one per
phase; a watcher thread repeats the last status when nothing else was said for that long (a
long warm-up step, a long training pass), so a log is never silent for longer.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PLAIN_EVERY_S = 30.0
MAX_EVERY_S = 86_400.0  # a day: beyond it a timer overflows (inf, 1e300) or never fires
WATCH_GRACE_S = 2.0  # the watcher repeats the status this long after a line was due

# The active run's step reporter (set while a RunProgress is open): long set-up work deep in the
# layers says how far it is without being handed a progress object.
_step_reporter: Callable[[str], None] | None = None


def warmup_step(text: str) -> None:
    """How far a long warm-up step is (e.g. "synthetic data: segment 3 of 28"); shown by the
    open run's progress, ignored outside a run."""
    if _step_reporter is not None:
        _step_reporter(text)


# What a terminal line holds besides the bar and the live fields: spinner, "sim 00:00:00 of
# 01:00:00", the percentage, elapsed, "eta" and the remaining time, with their separators.
FIXED_COLUMNS = 1 + 24 + 4 + 7 + 3 + 7 + 8


def bar_width(console_width: int) -> int:
    return 10 if console_width < 100 else 20


def fit_fields(fields: dict[str, str], width: int) -> str:
    """The live fields that fit in ``width`` columns, in order; a field that does not fit is
    dropped whole (with the ones after it), never cut."""
    shown: list[str] = []
    for key, value in fields.items():
        if not value:
            continue
        part = f"{key} {value}"
        if len("  ".join([*shown, part])) > width:
            break
        shown.append(part)
    return "  ".join(shown)


@contextlib.contextmanager
def watch(text: str, quiet: bool, console: Console | None = None, every_s: float | None = None):
    """Say ``text`` once per period while the block runs, and nothing if it ends sooner (a fast
    refusal of bad input stays one line): long preparation before a run's progress exists."""
    every = plain_every_s() if every_s is None else every_s
    if quiet or every <= 0:
        yield
        return
    console = console or Console(stderr=True)
    stop, start = threading.Event(), time.perf_counter()

    def repeat() -> None:
        while not stop.wait(every):
            console.print(f"progress: {text}  elapsed {format_wall(time.perf_counter() - start)}",
                          highlight=False, markup=False, soft_wrap=True)

    thread = threading.Thread(target=repeat, name="cosim-progress-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def format_speedup(ratio: float) -> str:
    """Simulated over wall time: one decimal below 10 (x0.7 is slower than real time)."""
    return f"speed-up x{ratio:.1f}" if ratio < 10 else f"speed-up x{ratio:,.0f}"


def format_sim_time(t: float) -> str:
    t = int(t)
    return f"{t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}"


def format_wall(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def plain_every_s() -> float:
    """The plain log's period (``COSIM_PROGRESS_EVERY_S``, 0 to a day; a bad value, such as
    ``inf`` or ``1e300`` which no timer takes, keeps the default)."""
    try:
        value = float(os.environ.get("COSIM_PROGRESS_EVERY_S", PLAIN_EVERY_S))
    except ValueError:
        return PLAIN_EVERY_S
    return value if 0 <= value <= MAX_EVERY_S else PLAIN_EVERY_S


class RunProgress:
    """Context manager; ``phase(text)`` names a warm-up step, ``tick(now)`` reports the clock."""

    def __init__(self, duration_s: float, fields: Callable[[], dict[str, str]], quiet: bool,
                 console: Console | None = None, every_s: float | None = None):
        self.duration_s = duration_s
        self.fields = fields
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        self.plain = not self.console.is_terminal
        self.every_s = plain_every_s() if every_s is None else every_s
        self._start = time.perf_counter()
        self._clock_start: float | None = None
        self._last_line = -float("inf")
        # time and ETA before the live fields: a narrow terminal loses fields, never the ETA
        self._progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=bar_width(self.console.width)),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("[cyan]{task.fields[speedup]}"),
            TextColumn("{task.fields[live]}"),
            console=self.console,
            disable=quiet or self.plain,
        )
        self._task: TaskID | None = None  # the bar's task, added on entering
        self._phase = ""
        self._status = "starting"  # what the watcher repeats: the last phase, step or tick
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> RunProgress:
        global _step_reporter
        self._start = time.perf_counter()
        self._progress.__enter__()
        self._task = self._progress.add_task("warm-up", total=self.duration_s, live="",
                                             speedup="", start=False)
        _step_reporter = self.step
        self._last_line = 0.0  # the watcher waits a period from the start before it speaks
        if self.plain and not self.quiet and self.every_s > 0:
            self._watcher = threading.Thread(target=self._watch, name="cosim-progress", daemon=True)
            self._watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        global _step_reporter
        _step_reporter = None
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        self._progress.__exit__(*exc)

    @property
    def _bar(self) -> TaskID:
        """The bar's task: phases, steps and ticks come only inside ``with`` (after ``__enter__``)."""
        assert self._task is not None
        return self._task

    def phase(self, text: str | None) -> None:
        """A warm-up step's name (before the clock runs); ``None`` when the clock starts."""
        if self.quiet:
            return
        if text is None:
            self._clock_start = time.perf_counter()
            self._progress.start_task(self._bar)
            self._progress.update(self._bar, description=self._sim_label(0.0))
            self._status = self._sim_label(0.0)
            return
        self._phase = self._status = text
        if self.plain:
            self._line(f"progress: {text}")
        else:
            self._progress.update(self._bar, description=text)

    def step(self, text: str) -> None:
        """How far the current warm-up phase is; a plain log prints it at most every period."""
        if self.quiet:
            return
        self._status = f"{self._phase}: {text}" if self._phase else text
        if not self.plain:
            self._progress.update(self._bar, description=self._status)
            return
        if time.perf_counter() - self._start - self._last_line >= self.every_s:
            self._line(f"progress: {self._status}  elapsed {format_wall(self._wall())}")

    def _watch(self) -> None:
        # a little later than a tick would: while the clock runs, its own lines (with fresh
        # fields) come first; the watcher speaks only when nothing else did
        while not self._stop.wait(min(0.5, self.every_s / 10)):
            if self._wall() - self._last_line >= self.every_s + min(WATCH_GRACE_S, self.every_s / 5):
                self._line(f"progress: {self._status}  elapsed {format_wall(self._wall())}")

    def _wall(self) -> float:
        return time.perf_counter() - self._start

    def tick(self, now: float) -> None:
        if self.quiet:
            return
        live = "  ".join(f"{k} {v}" for k, v in self.fields().items() if v)
        clock_wall = time.perf_counter() - (self._clock_start or self._start)
        speedup = format_speedup(now / clock_wall) if clock_wall > 0 and now > 0 else ""
        if not self.plain:
            room = (self.console.width - FIXED_COLUMNS - bar_width(self.console.width)
                    - len(speedup) - 2)
            self._progress.update(self._bar, completed=now, description=self._sim_label(now),
                                  live=fit_fields(self.fields(), room), speedup=speedup)
            return
        wall = time.perf_counter() - self._start
        if wall - self._last_line < self.every_s and now < self.duration_s:
            return
        share = now / self.duration_s if self.duration_s > 0 else 1.0
        eta = (clock_wall * (self.duration_s - now) / now) if now > 0 else None
        parts = [f"progress: {self._sim_label(now)} ({share:.0%})", f"elapsed {format_wall(wall)}",
                 f"eta {format_wall(eta) if eta is not None else '-'}"]
        if speedup:
            parts.append(speedup)
        if live:
            parts.append(live)
        self._status = "  ".join([f"{self._sim_label(now)} ({share:.0%})", *parts[3:]])
        self._line("  ".join(parts))

    def _sim_label(self, now: float) -> str:
        return f"sim {format_sim_time(now)} of {format_sim_time(self.duration_s)}"

    def _line(self, text: str) -> None:
        with self._lock:
            self._last_line = self._wall()
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)


class CompareProgress:
    """A grid's progress: runs done of total, and each running run's simulated time. On a
    terminal one bar per running run under the total; off it, a line per finished run and a
    line with the running runs every ``COSIM_PROGRESS_EVERY_S`` seconds. Fed from a thread."""

    def __init__(self, total: int, quiet: bool, label: str = "compare",
                 console: Console | None = None, every_s: float | None = None):
        import threading

        self.total, self.quiet, self.label = total, quiet, label
        self.console = console or Console(stderr=True)
        self.plain = not self.console.is_terminal
        self.every_s = plain_every_s() if every_s is None else every_s
        self._lock = threading.Lock()
        self._done = 0
        self._running: dict[str, tuple[float, float]] = {}
        self._tasks: dict[str, TaskID] = {}
        self._last_line = -float("inf")
        self._start = time.perf_counter()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(),
            TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
            console=self.console, disable=quiet or self.plain)
        self._overall: TaskID | None = None  # the total's task, added on entering

    def __enter__(self) -> CompareProgress:
        self._start = time.perf_counter()
        self._progress.__enter__()
        self._overall = self._progress.add_task(f"{self.label}: runs", total=self.total,
                                                count=f"0 of {self.total}")
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    @property
    def _overall_bar(self) -> TaskID:
        """The total's task: runs are reported only inside ``with`` (after ``__enter__``)."""
        assert self._overall is not None
        return self._overall

    def done(self, out: str) -> None:
        if self.quiet:
            return
        with self._lock:
            self._done += 1
            self._running.pop(out, None)
            task = self._tasks.pop(out, None)
            if task is not None:
                self._progress.remove_task(task)
            self._progress.update(self._overall_bar, advance=1, count=f"{self._done} of {self.total}")
            if self.plain:
                self._line(f"{self.label}: {self._done} of {self.total} runs done "
                           f"(elapsed {format_wall(time.perf_counter() - self._start)}): {out}")

    def run_progress(self, out: str, now: float, duration: float) -> None:
        if self.quiet:
            return
        with self._lock:
            self._running[out] = (now, duration)
            name = out.rstrip("/").rsplit("/", 1)[-1]
            if not self.plain:
                if out not in self._tasks:
                    self._tasks[out] = self._progress.add_task(f"  {name}", total=duration,
                                                               count="")
                self._progress.update(self._tasks[out], completed=now,
                                      count=f"sim {format_sim_time(now)} of "
                                            f"{format_sim_time(duration)}")
                return
            wall = time.perf_counter() - self._start
            if wall - self._last_line < self.every_s:
                return
            self._last_line = wall
            running = ", ".join(f"{o.rstrip('/').rsplit('/', 1)[-1]} {n / d:.0%}"
                                for o, (n, d) in sorted(self._running.items()) if d > 0)
            self._line(f"{self.label}: {self._done} of {self.total} runs done; running: {running}")

    def _line(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)
