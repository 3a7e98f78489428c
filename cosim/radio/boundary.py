"""The check that every cell stands near the network (``cosim.mobility.location`` reads where it
lies): a cell kilometres away from every street is a typo or a frame mix-up (lon/lat, or
coordinates before SUMO's netOffset), and it would silently serve no one.
"""

from __future__ import annotations

import math
from pathlib import Path

from cosim.errors import InputError
from cosim.mobility.location import NetLocation, read_location
from cosim.radio.cells import hex_sites
from cosim.scenario import RadioConfig

OUTSIDE_MARGIN_M = 2000.0  # a cell may stand this far beyond the network's boundary


def placed_cells(radio: RadioConfig, where: NetLocation) -> list[tuple[str, str, float, float]]:
    """(field, id, x, y) of every cell whose position the scenario decides: listed
    cells, extra cells and hexagonal sites (intersection cells stand on the network)."""
    if isinstance(radio.cells, list):
        return [(f"radio.cells.{i}", c.id, c.x, c.y) for i, c in enumerate(radio.cells)]
    gen = radio.cells
    out = [(f"radio.cells.extra.{i}", c.id, c.x, c.y) for i, c in enumerate(gen.extra)]
    # sites kept only near a road stand within OUTSIDE_MARGIN_M of the network: nothing to check
    road_bound = gen.hex is not None and (gen.hex.max_road_distance_m or math.inf) <= OUTSIDE_MARGIN_M
    if gen.hex is not None and not road_bound:
        center = gen.hex.center or where.center
        for i, (x, y) in enumerate(hex_sites(center, gen.hex.isd_m, gen.hex.rings)):
            out.append(("radio.cells.hex", f"{gen.hex.id_prefix}{i}", x, y))
    return out


def check_cells_inside(radio: RadioConfig | None, net: Path | None, source: Path | None) -> None:
    """Refuse (one line, naming the cell) a cell more than OUTSIDE_MARGIN_M outside the network,
    unless ``radio.allow_cells_outside``."""
    if radio is None or net is None or radio.allow_cells_outside:
        return
    where = read_location(net)
    x0, y0, x1, y1 = where.boundary
    for field, cell_id, x, y in placed_cells(radio, where):
        off = math.hypot(max(x0 - x, 0.0, x - x1), max(y0 - y, 0.0, y - y1))
        if off > OUTSIDE_MARGIN_M:
            raise InputError(source, field, (
                f"cell {cell_id!r} at ({x:.6g}, {y:.6g}) m is {off / 1000:.3g} km outside the "
                f"network (x {x0:g}..{x1:g}, y {y0:g}..{y1:g} m in {net.name}'s frame, after "
                f"its netOffset); cells may stand at most {OUTSIDE_MARGIN_M / 1000:g} km outside: "
                "fix the position, or set radio.allow_cells_outside: true"))
