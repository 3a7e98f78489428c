"""What SUMO will load is loaded by SUMO before the run's folder: a route over a missing edge (even
one departing late), a truncated network, a broken additional file, and buildings that cannot be
placed are one line and exit 2, with no run folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

SCENARIO = """name: own-inputs
duration_s: 20
seed: 1
mobility:
  net: grid.net.xml
  routes: [mine.rou.xml]
radio:
  cells:
    - {id: a, x: 150, y: 150, height_m: 25}
"""
GOOD_ROUTE = ('<routes><vehicle id="v0" depart="0"><route edges="{edge}"/></vehicle></routes>\n')


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> tuple[Path, str]:
    import sumolib

    from cosim.mobility.sumo_tools import binary

    net = tmp_path_factory.mktemp("net") / "grid.net.xml"
    subprocess.run([binary("netgenerate"), "--grid", "--grid.number", "3", "--grid.length", "300",
                    "-o", str(net)], check=True, capture_output=True)
    edge = next(e.getID() for e in sumolib.net.readNet(str(net)).getEdges())
    return net, edge


def _scenario(tmp_path: Path, network: tuple[Path, str], routes: str, net_text: str | None = None,
              extra: str = "") -> Path:
    net, _ = network
    (tmp_path / "grid.net.xml").write_text(net_text if net_text is not None else net.read_text())
    (tmp_path / "mine.rou.xml").write_text(routes)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO + extra)
    return scenario


def _refused(scenario: Path, tmp_path: Path, *sets: str) -> str:
    out = tmp_path / "r"
    args = ["run", str(scenario), "--out", str(out), "-q", *[a for s in sets for a in ("--set", s)]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip() and not x.startswith("warning")]
    assert len(lines) == 1, result.output
    assert not out.exists() and not (tmp_path / "r.partial").exists()
    return lines[0]


def test_good_own_inputs_run(tmp_path, network):
    scenario = _scenario(tmp_path, network, GOOD_ROUTE.format(edge=network[1]))
    result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("depart", [0, 5000])
def test_a_route_over_a_missing_edge_is_refused_before_the_folder(tmp_path, network, depart):
    routes = f'<routes><vehicle id="v0" depart="{depart}"><route edges="nosuch"/></vehicle></routes>\n'
    line = _refused(_scenario(tmp_path, network, routes), tmp_path)
    assert "mobility" in line and "nosuch" in line and "is not known" in line


def test_a_truncated_network_is_refused_before_the_folder(tmp_path, network):
    text = network[0].read_text()
    line = _refused(_scenario(tmp_path, network, GOOD_ROUTE.format(edge=network[1]),
                              net_text=text[: len(text) // 2]), tmp_path)
    assert "grid.net.xml" in line


def test_a_broken_additional_file_is_refused_before_the_folder(tmp_path, network):
    scenario = _scenario(tmp_path, network, GOOD_ROUTE.format(edge=network[1]))
    (tmp_path / "extra.add.xml").write_text("<additional><busStop id='s' lane='nosuch_0' "
                                            "startPos='0' endPos='10'/></additional>\n")
    line = _refused(scenario, tmp_path, f"mobility.additional=[{tmp_path / 'extra.add.xml'}]")
    assert "mobility" in line and "nosuch_0" in line


@pytest.mark.parametrize(("shape", "geo", "says"), [
    ("10,10 nan,20 30,30", "", "not a number"),
    ("10,10 inf,20 30,30", "", "not a number"),
    ("-122.41,37.77 -122.41,37.771 -122.409,37.771", ' geo="1"', "no projection"),
])
def test_buildings_that_cannot_be_placed_are_refused_before_the_folder(tmp_path, network, shape,
                                                                        geo, says):
    scenario = _scenario(tmp_path, network, GOOD_ROUTE.format(edge=network[1]))
    poly = tmp_path / "b.poly.xml"
    poly.write_text(f'<additional><poly id="b1" type="building"{geo} shape="{shape}"/></additional>\n')
    line = _refused(scenario, tmp_path, "radio.channel.los=geometry",
                    f"radio.channel.buildings={poly}")
    assert "radio.channel.buildings" in line and says in line


@pytest.mark.parametrize("pipeline", [True, False])
@pytest.mark.parametrize("attribute", ['departLane="7"', 'departSpeed="500"'])
def test_a_vehicle_sumo_refuses_only_at_its_departure_is_bad_input(tmp_path, network, pipeline,
                                                                   attribute):
    """SUMO loads the vehicle, then refuses it when it departs (a lane its edge lacks, a speed
    above the lane's): one line, exit 2, SUMO's reason; the run stays failed in OUT.partial
    (SUMO says it only once the simulation reaches the vehicle)."""
    routes = (f'<routes><vehicle id="v0" depart="5" {attribute}><route edges="{network[1]}"/>'
              '</vehicle></routes>\n')
    scenario = _scenario(tmp_path, network, routes)
    result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(tmp_path / "r"), "-q",
                                      "--set", f"mobility.pipeline={str(pipeline).lower()}"])
    lines = [x for x in result.output.splitlines() if x.strip() and not x.startswith("warning")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "mobility: SUMO stopped the simulation at 5 s" in lines[0] and "v0" in lines[0], lines
    assert "mine.rou.xml" in lines[0], lines
    from cosim.run_folder import read_status

    assert read_status(tmp_path / "r.partial")[0] == "failed"


def test_a_tool_killed_by_the_system_is_said_to_have_run_out_of_memory(tmp_path):
    """SIGKILL is the kernel's out-of-memory killer's (cosim never sends it): the line says so."""
    from cosim.mobility.sumo_tools import SumoToolError, run_tool

    with pytest.raises(SumoToolError, match=r"sh failed \(-9\): crashed \(SIGKILL, killed by the "
                                            r"system: most often out of memory"):
        run_tool(["sh", "-c", "kill -9 $$"], tmp_path / "tool.log")
