"""sumo-gui: its pace and window options, the cells drawn as POIs, vehicles coloured by serving
cell, and traces unchanged by the drawing. Drawn through TraCI into plain ``sumo`` (the same API;
no display here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosim.mobility.gui import UNSERVED, GuiLayer, cell_colour
from cosim.mobility.session import GuiOptions
from cosim.runner import run_scenario
from cosim.scenario_loader import load_scenario

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

GRID = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
BASE = ["learning=null", "duration_s=40", "mobility.backend=traci"]


def test_gui_options_reach_sumo_gui(tmp_path):
    settings = tmp_path / "view.xml"
    watch = GuiOptions(delay_ms=250, settings_file=settings, keep_open=True).options()
    assert watch[watch.index("--delay") + 1] == "250"
    assert watch[watch.index("--quit-on-end") + 1] == "false"
    assert watch[watch.index("--gui-settings-file") + 1] == str(settings)
    default = GuiOptions().options()
    assert default[default.index("--delay") + 1] == "100"  # watchable, not SUMO's 0
    assert default[default.index("--quit-on-end") + 1] == "true"
    assert "--gui-settings-file" not in default


def test_cells_drawn_and_vehicles_coloured_by_serving_cell(tmp_path):
    seen: dict = {}

    class Checked(GuiLayer):
        def finish(self) -> None:  # SUMO is still open here
            self.paint()
            seen["pois"] = set(self.conn.poi.getIDList())
            seen["cells"] = list(self.radio.cells.ids)
            colours = self.colours()
            seen["pairs"] = [(colours[v], self.radio.serving_cell(v))
                             for v in self.mobility.current.ids if v in colours]

    def gui(engine):
        return Checked(engine.layer("mobility").session.connection)

    sc = load_scenario(GRID, BASE)
    drawn = run_scenario(sc, source=GRID, out=tmp_path / "gui", quiet=True, extra_layers=[gui])
    plain = run_scenario(sc, source=GRID, out=tmp_path / "plain", quiet=True)
    assert drawn.status == plain.status == "complete"

    assert seen["pois"] == {f"cell:{c}" for c in seen["cells"]} and seen["cells"]
    assert len(seen["pairs"]) >= 5
    served = [cell for _, cell in seen["pairs"] if cell >= 0]
    assert len(set(served)) >= 2  # more than one cell serves: colours tell them apart
    for colour, cell in seen["pairs"]:
        assert colour == (cell_colour(cell) if cell >= 0 else UNSERVED)
    assert len({cell_colour(i) for i in range(len(seen["cells"]))}) == len(seen["cells"])
    for name in ("mobility", "radio", "handoffs", "link_windows", "cells"):
        assert ((tmp_path / "gui" / f"{name}.parquet").read_bytes()
                == (tmp_path / "plain" / f"{name}.parquet").read_bytes()), name


def test_backend_gui_adds_the_drawing(tmp_path, monkeypatch):
    """backend: gui through the runner, with plain sumo standing in for sumo-gui (no display)."""
    import cosim.mobility.session as session

    real = session.binary
    monkeypatch.setattr(session, "binary", lambda name: real("sumo" if name == "sumo-gui" else name))
    monkeypatch.setattr(session.GuiOptions, "options", lambda self: [])  # sumo-gui's own flags
    layers: dict = {}

    class Spy:
        name = "spy"

        def __init__(self, engine):
            self.engine = engine

        def attach(self, engine):
            pass

        def finish(self):
            gui = self.engine.layers["gui"]
            layers["pois"] = len(gui.conn.poi.getIDList())
            layers["cells"] = len(gui.radio.cells.ids)
            layers["period"] = gui.period_s

    sc = load_scenario(GRID, [*BASE[:-1], "mobility.backend=gui", "mobility.gui={colour_period_s: 2}"])
    result = run_scenario(sc, source=GRID, out=tmp_path / "g", quiet=True, extra_layers=[Spy])
    assert result.status == "complete"
    assert layers["pois"] == layers["cells"] > 0 and layers["period"] == 2
