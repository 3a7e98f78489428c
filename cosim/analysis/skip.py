"""Why a figure is not drawn: a figure function raises ``Skip(reason)``; the report prints the
reason where the figure would be, instead of an empty axis.

Called directly, a figure function decorated with ``@figure`` still returns None when skipped (the
older contract); ``render`` gives the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from matplotlib.figure import Figure

from cosim.analysis.runs import ReportSource

FigureFn = Callable[[ReportSource], Figure | None]


class Skip(Exception):  # noqa: N818 - read as "skip (the figure): reason"
    """The figure would mean nothing for these runs; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def figure(make: Callable[[ReportSource], Figure]) -> FigureFn:
    """The figure function returning None when it skips; the raising one is ``.render``."""

    @functools.wraps(make)
    def quiet(src: ReportSource) -> Figure | None:
        try:
            return make(src)
        except Skip:
            return None

    quiet.render = make  # type: ignore[attr-defined]
    return quiet


def render(make: FigureFn, src: ReportSource) -> Figure | str:
    """The figure, or the reason it is skipped."""
    try:
        fig = getattr(make, "render", make)(src)
    except Skip as skip:
        return skip.reason
    return fig if fig is not None else "no data in these runs"
