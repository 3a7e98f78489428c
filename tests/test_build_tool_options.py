"""Options a scenario gives SUMO's build tools never write a file (outputs, logs, saved
configurations) nor replace what cosim sets: refused in one line, before anything runs, by
`cosim validate` too. The writers below are the ones SUMO's documentation lists for each tool."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app

pytestmark = pytest.mark.slow  # each try builds or checks a SUMO network

GRID = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
GRID_NET = ["--grid", "--grid.number", "4", "--grid.length", "200"]

# (scenario key, options writing OUT, how the option is spelt)
WRITERS = {
    "randomtrips_routes": ("mobility.demand.random_trips_options", ["-r", "OUT"]),
    "randomtrips_trips_attached": ("mobility.demand.random_trips_options", ["-oOUT"]),
    "randomtrips_vtypes": ("mobility.demand.random_trips_options", ["--vtype-output", "OUT"]),
    "randomtrips_vtypes_abbreviated": ("mobility.demand.random_trips_options", ["--vtype-out", "OUT"]),
    "randomtrips_weights_equals": ("mobility.demand.random_trips_options",
                                   ["--weights-output-prefix=OUT"]),
    "randomtrips_error_log": ("mobility.demand.random_trips_options", ["--error-log", "OUT"]),
    "randomtrips_saved_configuration": ("mobility.demand.random_trips_options", ["-C", "OUT"]),
    "netgenerate_plain": ("mobility.netgenerate", [*GRID_NET, "--plain-output-prefix", "OUT"]),
    "netgenerate_error_log": ("mobility.netgenerate", [*GRID_NET, "--error-log", "OUT"]),
    "netgenerate_log_short": ("mobility.netgenerate", [*GRID_NET, "-l", "OUT"]),
    "netgenerate_output": ("mobility.netgenerate", [*GRID_NET, "-o", "OUT"]),
    "netgenerate_join_output": ("mobility.netgenerate", [*GRID_NET, "--junctions.join-output=OUT"]),
    "netconvert_plain": ("mobility.plain.netconvert_options", ["--plain-output-prefix", "OUT"]),
    "netconvert_opendrive": ("mobility.plain.netconvert_options", ["--opendrive-output", "OUT"]),
    "netconvert_saved_configuration": ("mobility.plain.netconvert_options",
                                       ["--save-configuration", "OUT"]),
}
SF = Path(__file__).resolve().parent.parent / "scenarios" / "sf_downtown.yaml"


def _validate(scenario: Path, key: str, options: list[str]):
    value = "[" + ",".join(f'"{o}"' for o in options) + "]"
    return CliRunner().invoke(app, ["validate", str(scenario), "--set", f"{key}={value}"])


@pytest.mark.parametrize("case", sorted(WRITERS))
def test_a_build_tool_option_that_writes_a_file_is_refused(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    key, options = WRITERS[case]
    mine = tmp_path / "mine.txt"
    mine.write_text("mine")
    result = _validate(SF if "netconvert" in key else GRID, key,
                       [o.replace("OUT", str(mine)) for o in options])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and key in lines[0] and "writes a file" in lines[0], lines
    assert mine.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize(("key", "options", "says"), [
    ("mobility.demand.random_trips_options", ["--seed", "5"], "seed is cosim's to set"),
    ("mobility.demand.random_trips_options", ["-n", "other.net.xml"], "net-file is cosim's"),
    ("mobility.demand.random_trips_options", ["-c", "my.cfg"], "a configuration file"),
    ("mobility.netgenerate", [*GRID_NET, "-c", "my.cfg"], "a configuration file"),
])
def test_a_build_tool_option_cosim_sets_is_refused(key, options, says):
    result = _validate(GRID, key, options)
    assert result.exit_code == 2 and says in result.output, result.output


def test_other_build_tool_options_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _validate(GRID, "mobility.demand.random_trips_options", ["--allow-fringe", "-l"])
    assert result.exit_code == 0, result.output
    assert not any(tmp_path.iterdir())


def _weights(path: Path, edge: str) -> None:
    path.write_text(f'<edgedata><interval begin="0" end="1e9"><edge id="{edge}" value="100"/>'
                    '</interval></edgedata>\n')


def test_a_file_a_build_tool_reads_is_part_of_its_cache_key(tmp_path, monkeypatch):
    """randomTrips' --weights-prefix reads PREFIX.src.xml: edited, the demand is built again
    (it reused the old weights' demand, a complete run of the wrong traffic)."""
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    prefix = tmp_path / "w"
    departures = {}
    for run, edge in (("before", "A0A1"), ("after", "D3D2")):
        _weights(Path(f"{prefix}.src.xml"), edge)
        result = CliRunner().invoke(app, [
            "run", str(GRID), "--out", str(tmp_path / run), "-q", "--set", "duration_s=30",
            "--set", "learning=null", "--set",
            f'mobility.demand.random_trips_options=["--weights-prefix","{prefix}"]'])
        assert result.exit_code == 0, result.output
        rows = pq.read_table(tmp_path / run / "mobility.parquet").to_pandas()
        departures[run] = set(rows.sort_values("t").groupby("vehicle").edge.first())
    assert departures["before"] == {"A0A1"} and departures["after"] == {"D3D2"}, departures


@pytest.mark.parametrize("spelt", [
    ["-a", "{f}"], ["-a{f}"], ["-a={f}"], ["--additional-files", "{f}"],
    ["--additional-files={f}"], ["--additional", "{f}"], ["--allow-fringe", "-a{f},{g}"]])
def test_every_spelling_of_a_file_option_reaches_the_cache_key(tmp_path, spelt):
    """argparse accepts these spellings of randomTrips' --additional-files (its own --help lists
    -a); each names a file the build reads, whose content must key the cache."""
    from cosim.mobility.build import tool
    from cosim.mobility.tool_options import files_read, random_trips_options

    f, g = tmp_path / "a.add.xml", tmp_path / "b.add.xml"
    f.write_text("<additional/>\n")
    g.write_text("<additional/>\n")
    options = [o.format(f=f, g=g) for o in spelt]
    found = files_read(options, random_trips_options(str(tool("randomTrips.py"))), "field", None)
    assert set(found) == ({f, g} if "{g}" in "".join(spelt) else {f}), (options, found)


@pytest.mark.parametrize(("key", "option"), [
    ("mobility.demand.random_trips_options", "--help"), ("mobility.demand.random_trips_options", "-h"),
    ("mobility.demand.random_trips_options", "--he"), ("mobility.netgenerate", "-?"),
    ("mobility.netgenerate", "--version"), ("mobility.netgenerate", "-V")])
def test_a_build_tool_option_that_only_prints_is_refused(tmp_path, monkeypatch, key, option):
    """Help and version make the tool print and stop, building nothing the run could use."""
    monkeypatch.chdir(tmp_path)
    result = _validate(GRID, key, [*GRID_NET, option] if key == "mobility.netgenerate" else [option])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert key in lines[0] and "prints the tool's help or version" in lines[0], lines


@pytest.mark.parametrize(("key", "option"), [
    ("mobility.demand.random_trips_options", "--random"), ("mobility.netgenerate", "--random")])
def test_a_build_tool_option_that_ignores_the_seed_is_refused(tmp_path, monkeypatch, key, option):
    """The same scenario and seed build the same traffic and network: an option seeding the
    tool from the clock would not."""
    monkeypatch.chdir(tmp_path)
    result = _validate(GRID, key, [*GRID_NET, option] if key == "mobility.netgenerate" else [option])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert key in lines[0] and "not from the scenario's seed" in lines[0], lines
