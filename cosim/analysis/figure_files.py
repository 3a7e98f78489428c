"""A figure saved for papers: PNG (the HTML report embeds it), SVG and PDF side by side.

The vector files carry no creation date and SVG ids come from a fixed salt, so the same runs give
byte-identical files (a paper's artefacts can be checked by digest).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

FORMATS = ("png", "svg", "pdf")
DPI = 110
_METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}


def save_figure(fig: Figure, directory: Path, key: str, dpi: int = DPI) -> dict[str, Path]:
    """Write ``key.png``, ``key.svg`` and ``key.pdf``; their paths by format."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    with matplotlib.rc_context({"svg.hashsalt": "cosim", "svg.fonttype": "path",
                                "pdf.fonttype": 42}):
        for fmt in FORMATS:
            paths[fmt] = directory / f"{key}.{fmt}"
            fig.savefig(paths[fmt], format=fmt, dpi=dpi, metadata=_METADATA[fmt])
    return paths


def remove_figure(directory: Path, key: str) -> None:
    """A figure skipped now leaves no file from an earlier report behind."""
    for fmt in FORMATS:
        (directory / f"{key}.{fmt}").unlink(missing_ok=True)
