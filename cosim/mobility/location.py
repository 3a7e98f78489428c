"""Where a SUMO network lies, read from its ``<location>`` element.

SUMO's frame: x east, y north, metres, after ``netOffset`` (the frame vehicle positions come in);
``convBoundary`` is the network's extent in that frame; ``projParameter`` (when the network was
imported from geographic data) maps it to the globe.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

from cosim.errors import InputError
from cosim.sumo_xml import xml_elements


@dataclass(frozen=True)
class NetLocation:
    """A network's extent in SUMO's frame, and how it maps to the input and to the globe."""

    boundary: tuple[float, float, float, float]  # convBoundary: xmin, ymin, xmax, ymax
    offset: tuple[float, float]  # netOffset: added to the input coordinates
    orig_boundary: tuple[float, float, float, float] | None  # lon/lat when geo-referenced
    geo: bool  # projParameter given: origBoundary is lon/lat
    projection: str | None = None  # that projParameter (a PROJ string)

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.boundary
        return (x0 + x1) / 2, (y0 + y1) / 2


def read_location(net: Path) -> NetLocation:
    """The first ``<location>`` element of a ``.net.xml`` (or ``.net.xml.gz``), read lazily."""
    try:
        with contextlib.closing(xml_elements(net, None)) as elements:
            for tag, _, attributes in elements:
                if tag == "location":
                    return _location(attributes)
    except InputError as exc:
        raise InputError(net, None, f"cannot read the network: {exc.message}") from None
    raise InputError(net, None, "the network has no <location> element (not a SUMO .net.xml?)")


def _location(element: Mapping[str, str]) -> NetLocation:
    @overload
    def numbers(name: str, count: Literal[2]) -> tuple[float, float] | None: ...
    @overload
    def numbers(name: str, count: Literal[4]) -> tuple[float, float, float, float] | None: ...
    def numbers(name: str, count: int) -> tuple[float, ...] | None:
        text = element.get(name)
        try:
            values = tuple(float(v) for v in (text or "").split(","))
        except ValueError:
            return None
        return values if len(values) == count and all(map(math.isfinite, values)) else None

    boundary = numbers("convBoundary", 4) or (0.0, 0.0, 0.0, 0.0)
    offset = numbers("netOffset", 2) or (0.0, 0.0)
    projection = element.get("projParameter", "!")
    geo = projection not in ("", "!")
    return NetLocation(boundary, offset, numbers("origBoundary", 4), geo, projection if geo else None)
