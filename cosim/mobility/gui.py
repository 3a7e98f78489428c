"""What a sumo-gui run shows beyond SUMO's own drawing: the cells and who is served by which.

The cells are drawn once as POIs (one colour per cell, sites labelled by their id); every
``period_s`` each vehicle is coloured by its serving cell (grey when not connected). Only TraCI
calls that change the drawing are made, so the simulation (and every trace) is the same as
without the GUI.
"""

from __future__ import annotations

import colorsys
from typing import Any

from cosim.engine import Engine, until

UNSERVED = (140, 140, 140, 255)
POI_TYPE = "cosim-cell"


def cell_colour(cell: int) -> tuple[int, int, int, int]:
    """A distinct, saturated colour per cell index (golden-angle hues), fully opaque."""
    hue = (cell * 0.381966) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255), 255


class GuiLayer:
    """Draws the radio layer's cells into a TraCI-driven SUMO and colours vehicles by cell."""

    name = "gui"

    def __init__(self, connection: Any, period_s: float = 1.0, poi_size_m: float = 12.0):
        self.conn = connection
        self.period_s = period_s
        self.poi_size_m = poi_size_m
        self._colour_of: dict[str, int] = {}

    def attach(self, engine: Engine) -> None:
        self.mobility = engine.layer("mobility")
        self.radio = radio = engine.layers.get("radio")
        if radio is not None:
            self._draw_cells(radio)
        engine.env.process(self._colour(engine))

    def _draw_cells(self, radio: Any) -> None:
        cells = radio.cells
        for index, (cell_id, x, y) in enumerate(zip(cells.ids, cells.x, cells.y, strict=True)):
            self.conn.poi.add(f"cell:{cell_id}", float(x), float(y), cell_colour(index),
                              poiType=POI_TYPE, layer=100, width=self.poi_size_m,
                              height=self.poi_size_m)

    def _colour(self, engine: Engine):
        k = 0
        while True:
            self.paint()
            k += 1
            yield until(engine.env, k * self.period_s)

    def paint(self) -> None:
        """Colour every vehicle whose serving cell changed since the last call."""
        states = self.mobility.current
        if states is None:
            return
        present = set(states.ids)
        for vehicle in states.ids:
            cell = self.radio.serving_cell(vehicle) if self.radio is not None else -1
            if self._colour_of.get(vehicle) == cell:
                continue
            try:
                self.conn.vehicle.setColor(vehicle, cell_colour(cell) if cell >= 0 else UNSERVED)
            except Exception:  # noqa: BLE001 - SUMO (a step ahead) may have removed it already
                continue
            self._colour_of[vehicle] = cell
        for gone in [v for v in self._colour_of if v not in present]:
            del self._colour_of[gone]

    def colours(self) -> dict[str, tuple[int, int, int, int]]:
        """The colours SUMO holds for the vehicles it still has (for checks)."""
        return {v: tuple(self.conn.vehicle.getColor(v)) for v in self.conn.vehicle.getIDList()}
