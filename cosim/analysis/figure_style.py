"""How series look in the report's figures, so they survive print and greyscale.

Every series (a policy / aggregation, or a seed's recording) gets a colour, a line style and a
marker, all three cycled independently: two curves that lie on top of each other still show both
markers and dash patterns, so a hidden line never reads as a missing policy. Count axes get integer
ticks; a figure carries a caption that the HTML report prints under it.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from cosim.names import (
    CLUSTER_HEAD_FAILED,
    COMPLETED,
    DEADLINE,
    LEFT_NETWORK,
    OUT_OF_COVERAGE,
    RADIO_LINK_FAILURE,
    SIDELINK_LOST,
)

LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
CAPTION_ATTR = "_cosim_caption"
OUTCOME_COLOURS = {COMPLETED: "#2a9d8f", LEFT_NETWORK: "#e76f51", RADIO_LINK_FAILURE: "#9b2226",
                   OUT_OF_COVERAGE: "#f4a261", DEADLINE: "#6c757d", SIDELINK_LOST: "#8e7dbe",
                   CLUSTER_HEAD_FAILED: "#b56576", "failed": "#343a40"}


@dataclass(frozen=True)
class SeriesStyle:
    """Keyword arguments for ``ax.plot``/``ax.step`` (``kw``), and the fill colour of a band."""

    color: tuple
    linestyle: str | tuple
    marker: str
    zorder: float
    index: int

    def kw(self, markers: bool = True) -> dict:
        """Open markers spaced evenly along the curve (staggered per series: on coinciding curves
        they alternate instead of covering each other)."""
        out = {"color": self.color, "linestyle": self.linestyle, "linewidth": 1.6, "alpha": 0.9,
               "zorder": self.zorder}
        if markers:
            out |= {"marker": self.marker, "markersize": 5, "markerfacecolor": "none",
                    "markeredgewidth": 1.1, "markevery": ((0.023 * self.index) % 0.1, 0.1)}
        return out


def series_styles(labels: list[str]) -> dict[str, SeriesStyle]:
    """One style per distinct label, in first-seen order; a later series is drawn above the
    earlier ones (a higher zorder): its dashes and open markers leave the solid line beneath
    visible where two curves coincide."""
    cmap = plt.get_cmap("tab10")
    distinct = list(dict.fromkeys(labels))
    return {label: SeriesStyle(cmap(i % 10), LINESTYLES[i % len(LINESTYLES)],
                               MARKERS[i % len(MARKERS)], 3.0 + i, i)
            for i, label in enumerate(distinct)}


def integer_ticks(*axes: Axis) -> None:
    """Counts (clients, rounds, windows, model versions) never get ticks at 2.5."""
    for axis in axes:
        axis.set_major_locator(MaxNLocator(integer=True))


def log_seconds(axis: Axis) -> None:
    """A log axis labelled 1, 2, 5, 10, 20 ... (not 3x10^0 crowding the minor ticks)."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def band_handle(what: str) -> Patch:
    """The legend entry that says what a shaded band is."""
    return Patch(facecolor="0.6", alpha=0.35, label=f"shaded: {what}")


def set_caption(fig: Figure, text: str) -> Figure:
    """Attach the text the report prints under the figure (what a band or a curve means)."""
    setattr(fig, CAPTION_ATTR, text)
    return fig


def caption(fig: Figure) -> str:
    return getattr(fig, CAPTION_ATTR, "")
