"""Scenario input that must be refused before any run folder exists: each
case exits 2 with ONE line on stderr that names the field."""

from __future__ import annotations

import math
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError
from tiny_inputs import tiny_osm
from typer.testing import CliRunner

import cosim.errors
from cosim.cli import app
from cosim.errors import InputError
from cosim.scenario import CellConfig, HexLayout, IntersectionLayout, Scenario
from cosim.scenario_loader import load_scenario

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _one_line(result, field: str | None = None) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    if field is not None:
        assert f": {field}: " in lines[0], lines[0]
    return lines[0]


def _run_refused(scenario: Path, tmp_path: Path, *sets: str, field: str | None = None) -> str:
    """``cosim run --out DIR`` refuses the scenario in one line and leaves no DIR."""
    out = tmp_path / "run"
    args = ["run", str(scenario), "--out", str(out), "--quiet"]
    for item in sets:
        args += ["--set", item]
    line = _one_line(runner.invoke(app, args), field)
    assert not out.exists(), "a run folder was created for a refused scenario"
    return line


def _validate(scenario: Path, *sets: str):
    return runner.invoke(app, ["validate", str(scenario), *[a for s in sets for a in ("--set", s)]])


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# 1. Finite numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("radio.cells.0.x", ".nan"), ("radio.cells.1.y", "-.inf"),
    ("radio.cells.0.tx_power_dbm", ".inf"), ("radio.cells.0.antenna_gain_dbi", ".nan"),
    ("radio.cells.2.bandwidth_mhz", ".inf"), ("radio.handoff.qout_db", ".nan"),
    ("radio.handoff.a3_offset_db", "-.inf"), ("learning.model.peft.scale", "nan"),
    ("duration_s", ".nan"), ("radio.step_s", ".nan"), ("mobility.step_length_s", "inf"),
    ("mobility.demand.period_s", ".inf"), ("mobility.geo_origin.lat", ".nan"),
    ("radio.channel.max_sinr_db", ".inf"), ("learning.local.lr", ".nan"),
])
def test_non_finite_numbers_are_refused_naming_the_field(grid_small, field, value):
    line = _one_line(_validate(grid_small, f"{field}={value}"), field)
    assert "finite" in line


def test_a_non_finite_number_never_reaches_a_run_folder(grid_small, tmp_path):
    _run_refused(grid_small, tmp_path, "radio.cells.1.x=.nan", field="radio.cells.1.x")


def _models(root: type[BaseModel]) -> set[type[BaseModel]]:
    """Every model class reachable from ``root``'s fields."""
    seen: set[type[BaseModel]] = set()
    todo = [root]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for info in model.model_fields.values():
            stack = [info.annotation]
            while stack:
                ann = stack.pop()
                if isinstance(ann, type) and issubclass(ann, BaseModel):
                    todo.append(ann)
                stack.extend(typing.get_args(ann))
    return seen


def test_every_float_field_of_the_schema_refuses_nan():
    """Generic (StrictModel's allow_inf_nan=False): no float field anywhere takes NaN or inf."""
    checked = 0
    for model in _models(Scenario):
        for name, info in model.model_fields.items():
            if info.annotation is not float:
                continue
            for bad in (math.nan, math.inf, -math.inf):
                with pytest.raises(ValidationError) as caught:
                    model.model_validate({name: bad})
                assert any(e["loc"] == (name,) and e["type"] == "finite_number"
                           for e in caught.value.errors()), (model.__name__, name)
            checked += 1
    assert checked > 60


# 2. Bounds and resource estimates ------------------------------------------------------------

@pytest.mark.parametrize(("setting", "field", "estimate"), [
    ("duration_s=1e300", "duration_s", "1e+300 SUMO steps; at most 1e+08"),
    ("radio.step_s=1e-12", "radio.step_s", "1.2e+14 radio steps; at most 1e+08"),
    ("mobility.demand.period_s=1e-6", "mobility.demand.period_s", "1e+08 trips; at most 1e+07"),
    ("learning.data.synthetic.segments=1000000000000", "learning.data.synthetic.segments",
     "4e+12 synthetic frames to generate; at most 1e+06"),
    ("aggregation.eval_every_s=1e-9", "aggregation.eval_every_s", "evaluations; at most 1e+06"),
    ("mobility.warmup_s=1e12", "mobility.warmup_s", "SUMO steps; at most 1e+08"),
    ('mobility.netgenerate=["--grid","--grid.number","4000"]', "mobility.netgenerate",
     "1.6e+07 junctions; at most 1e+06"),
    ('mobility.netgenerate=["-s","--spider.arm-number=5000","--spider.circle-number","1000"]',
     "mobility.netgenerate", "5e+06 junctions; at most 1e+06"),
    # netgenerate's synonyms of its size options, read as netgenerate reads them
    ('mobility.netgenerate=["--grid","--number","4000"]', "mobility.netgenerate",
     "1.6e+07 junctions; at most 1e+06"),
    ('mobility.netgenerate=["-g","--x-no","2000","--y-no","2000"]', "mobility.netgenerate",
     "4e+06 junctions; at most 1e+06"),
    ('mobility.netgenerate=["--spider","--arms","5000","--circles","1000"]',
     "mobility.netgenerate", "5e+06 junctions; at most 1e+06"),
    ('mobility.netgenerate=["--rand","--iterations","5000000"]', "mobility.netgenerate",
     "5e+06 junctions; at most 1e+06"),
    ('mobility.netgenerate=["--grid","--grid.number","4","-L","1000"]', "mobility.netgenerate",
     "1000 lanes per road (--default.lanenumber); at most 16"),  # -L: netgenerate's synonym
    # randomTrips options that multiply its work, however spelt (argparse abbreviations too)
    ('mobility.demand.random_trips_options=["--flows","100000000"]',
     "mobility.demand.random_trips_options", "1e+08 elements to write"),
    ('mobility.demand.random_trips_options=["--interm","100000000"]',
     "mobility.demand.random_trips_options", "elements to write for randomTrips; at most 1e+07"),
    ('mobility.demand.random_trips_options=["-i100000000"]',
     "mobility.demand.random_trips_options", "elements to write for randomTrips; at most 1e+07"),
    ('mobility.demand.random_trips_options=["--binomial","1000000000"]',
     "mobility.demand.random_trips_options", "Bernoulli draws"),
    ('mobility.demand.random_trips_options=["--maxtries=100000000000"]',
     "mobility.demand.random_trips_options", "tries to find trips"),
])
def test_absurd_sizes_are_refused_with_the_estimate(grid_small, tmp_path, setting, field, estimate):
    line = _run_refused(grid_small, tmp_path, setting, field=field)
    assert estimate in line


@pytest.mark.parametrize(("setting", "says"), [
    ("learning.drift={events: [{at_s: 10, clients: [99], tasks: [seg3d]}]}", "99 is no client"),
    ("learning.drift={events: [{at_s: 10, clients: [-1], tasks: [seg3d]}]}", "-1 is no client"),
    ('aggregation={method: hierarchical, tiers: [{modules: ["nothing.*"], tier: edge}]}',
     "'nothing.*' names no module of the model"),
    ('learning.frozen_modules=["peft.image.nothing"]', "'peft.image.nothing' is no module"),
    ("learning.drift={events: [{at_s: 300, tasks: [seg3d]}]}", "would never happen"),
    ("learning.drift={events: [{at_s: 10, clients: [], tasks: [seg3d]}]}", "at least 1 item"),
    ("learning.drift={events: [{at_s: 10, clients: [0, 1], tasks: [seg3d]}, "
     "{at_s: 10, clients: [1], tasks: [det3d]}]}", "events.0 would have no effect"),
    ("learning.drift={events: [{at_s: 0, tasks: [seg3d]}, {at_s: 5e3, modalities: [image]}]}",
     "would never happen")])
def test_names_of_clients_and_modules_the_run_lacks_are_refused_before_the_folder(
        grid_small, tmp_path, setting, says):
    """A drift event for a client that does not exist, or a tier or frozen module matching no
    module, would change nothing silently, or fail once the folder exists."""
    line = _run_refused(grid_small, tmp_path, "learning.enabled=true", setting)
    assert says in line, line


def test_a_drift_to_a_task_the_model_lacks_is_refused_before_the_folder(grid_small, tmp_path):
    line = _run_refused(grid_small, tmp_path, "learning.enabled=true",
                        "learning.model.tasks=[seg3d, det3d]",
                        "learning.drift={events: [{at_s: 10, tasks: [seg3d, det2d]}]}",
                        field="learning.drift.events.0.tasks")
    assert "det2d is not among learning.model.tasks (seg3d, det3d)" in line, line


def test_infinite_duration_and_out_of_range_values(grid_small):
    assert "finite" in _one_line(_validate(grid_small, "duration_s=.inf"), "duration_s")
    assert "0.001" in _one_line(_validate(grid_small, "mobility.step_length_s=1e-6"),
                                "mobility.step_length_s")
    _one_line(_validate(grid_small, "seed=99999999999"), "seed")
    _one_line(_validate(grid_small, "radio.cells.0.tx_power_dbm=1e300"),
              "radio.cells.0.tx_power_dbm")
    _one_line(_validate(grid_small, "clients.count=10000000000"), "clients.count")


def test_real_scenarios_stay_within_the_limits():
    for name in ("grid_small", "sf_downtown", "task_onboarding"):
        load_scenario(REPO / "scenarios" / f"{name}.yaml", ["duration_s=86400"])


# 3. Duplicate keys, and what YAML 1.1 and 1.2 read differently --------------------------------

@pytest.mark.parametrize(("line", "says"), [
    ("seed: 012", "012: a number with a leading zero"),  # octal 10 to YAML 1.1, 12 to 1.2
    ("seed: -007", "-007: a number with a leading zero"),
    ("on: 1", "key 'on' is read by YAML as a yes/no value"),  # True to YAML 1.1
    ("seed: 1:30", "1:30: a base-60 number, which YAML reads as 90"),  # a string to YAML 1.2
    ("seed: !!set {1, 2}", "a !!set value, which no scenario field takes; write a list"),  # no order
    ("seed: !!omap [{a: 1}]", "a !!omap value"), ("seed: !!binary AQ==", "a !!binary value"),
    ('seed: !!int "012"', "012: a number with a leading zero"),  # tagged: read as 10
    ('seed: !!float "1:30"', "1:30: a base-60 number"),
    ("<<: {on: 1}", "key 'on' is read by YAML as a yes/no value")])  # merged: a key True
def test_a_value_yaml_versions_read_differently_is_refused_with_its_line(grid_small, tmp_path,
                                                                         line, says):
    text = grid_small.read_text().replace("seed: 1\n", line + "\n", 1)
    number = text.splitlines().index(line) + 1
    refused = _one_line(runner.invoke(app, ["validate", str(_write(tmp_path, text))]))
    assert says in refused and f"line {number}" in refused, refused


def test_a_set_given_on_the_command_line_is_refused(grid_small):
    """A task list in a set's order would change with the hash seed, and the traces with it."""
    line = _one_line(_validate(grid_small, "learning.model.tasks=!!set {seg3d, det3d}"))
    assert "a !!set value" in line, line


def test_a_quoted_or_plain_number_is_read_as_written(grid_small, tmp_path):
    for line in ('seed: "012"', "seed: 12"):
        text = grid_small.read_text().replace("seed: 1\n", line + "\n", 1)
        assert load_scenario(_write(tmp_path, text)).seed == 12


def test_a_key_given_twice_is_refused_with_its_line(grid_small, tmp_path):
    text = grid_small.read_text().replace("seed: 1\n", "seed: 1\nduration_s: 60\n", 1)
    lines = text.splitlines()
    first = lines.index("duration_s: 60") + 1  # the one added: the scenario's own comes later
    second = next(i for i, x in enumerate(lines, 1) if x.startswith("duration_s:") and i != first)
    line = _one_line(runner.invoke(app, ["validate", str(_write(tmp_path, text))]))
    assert "'duration_s' given twice" in line and f"line {second}" in line \
        and f"first on line {first}" in line


def test_a_nested_duplicate_key_is_refused(grid_small, tmp_path):
    text = grid_small.read_text().replace("  step_s: 0.1\n", "  step_s: 0.1\n  step_s: 0.2\n", 1)
    line = _run_refused(_write(tmp_path, text), tmp_path)
    assert "'step_s' given twice" in line


def test_anchors_and_merge_keys_still_work(grid_small, tmp_path):
    """yaml.safe_load semantics otherwise: a merge may be overridden by the mapping's own key."""
    text = grid_small.read_text().replace(
        "    - {id: east, x: 500, y: 300,",
        "    - &east {id: east, x: 500, y: 300,", 1) + "\nonboarding: {rounds: 2}\n"
    text = text.replace("    - {id: rsu-center", "    - {<<: *east, id: twin, x: 520}\n"
                        "    - {id: rsu-center", 1)
    sc = load_scenario(_write(tmp_path, text))
    twin = next(c for c in sc.radio.cells if c.id == "twin")
    assert (twin.x, twin.y, twin.tx_power_dbm) == (520, 300, 46)


# 4. Alias bombs, deep nesting, long values ---------------------------------------------------

def _billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "name: bomb\nduration_s: 10\n" + "\n".join(lines) + "\nmobility: {a: *a9}\n"


def test_an_alias_bomb_fails_fast_in_one_line(tmp_path):
    started = time.perf_counter()
    line = _run_refused(_write(tmp_path, _billion_laughs()), tmp_path)
    assert time.perf_counter() - started < 5
    assert "aliases are expanded" in line and "line" in line


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["flat_list", "many_keys", "too_big"])
def test_a_huge_scenario_is_refused_before_it_is_all_read(tmp_path, kind):
    """A long flat list is refused by its node count while it is read, not after (memory), and
    a file over the size cap before any of it is read."""
    from cosim.safe_yaml import MAX_NODES
    from cosim.scenario_loader import MAX_FILE_BYTES

    if kind == "flat_list":
        text = "name: big\nx: [" + ",".join(["1"] * (MAX_NODES + 10)) + "]\n"
    elif kind == "many_keys":
        text = "name: big\nx:\n" + "".join(f"  k{i}: 1\n" for i in range(MAX_NODES // 2 + 10))
    else:
        text = "name: big\n# " + "x" * MAX_FILE_BYTES + "\n"
    line = _run_refused(_write(tmp_path, text), tmp_path)
    assert ("not a scenario" in line or "too big" in line), line


def test_an_alias_bomb_in_an_override_is_refused(grid_small):
    levels = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    line = _one_line(_validate(grid_small, f"name={{{', '.join(levels)}}}"), "name")
    assert "aliases are expanded" in line
    deep = "[" * 200 + "]" * 200
    assert "nested" in _one_line(_validate(grid_small, f"name={deep}"), "name")


def test_a_cyclic_alias_and_deep_nesting_are_one_line(tmp_path):
    line = _one_line(runner.invoke(app, ["validate", str(_write(tmp_path, "a: &x [1, *x]\n"))]))
    assert "cycle" in line
    for deep in ("a: " + "[" * 5000 + "]" * 5000 + "\n",
                 "".join("  " * i + f"k{i}:\n" for i in range(1400)) + "  " * 1400 + "v: 1\n"):
        line = _run_refused(_write(tmp_path, deep, "deep.yaml"), tmp_path)
        assert "nested more than" in line


def test_long_input_is_cut_in_the_error_line(grid_small):
    long_key = "k" * 5000
    line = _one_line(_validate(grid_small, f"radio.{long_key}=1"))
    assert len(line) < 600 and "unknown key" in line
    line = _one_line(_validate(grid_small, f"duration_s=[{', '.join(['1'] * 10000)}]"),
                     "duration_s")
    assert len(line) < 400
    assert len(InputError("f", "x", "y" * 10**6).line()) < 600


def test_ctrl_c_while_loading_still_interrupts(grid_small, monkeypatch):
    """No blanket except in the loader: an interrupt stays an interrupt (exit 130)."""
    from cosim import safe_yaml

    def interrupted(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(safe_yaml.ScenarioLoader, "compose_node", interrupted)
    result = runner.invoke(app, ["validate", str(grid_small)])
    assert result.exit_code == 130 and "interrupted" in result.stderr


# 5. Cells against the network; geo_origin ----------------------------------------------------

def test_a_cell_far_outside_the_network_is_refused_naming_it(grid_small, tmp_path):
    line = _run_refused(grid_small, tmp_path, "learning=null", "radio.cells.1.x=9000",
                        field="radio.cells.1")
    assert "'east'" in line and "8.4 km outside" in line and "allow_cells_outside" in line


def test_hex_sites_outside_the_network_are_refused(grid_small, tmp_path):
    line = _run_refused(grid_small, tmp_path, "learning=null",
                        "radio.cells={hex: {isd_m: 5000, rings: 1}}", field="radio.cells.hex")
    assert "'macro1'" in line


def test_cells_near_or_explicitly_allowed_outside_pass(grid_small):
    from cosim.mobility.build import prepare_inputs

    near = load_scenario(grid_small, ["learning=null", "radio.cells.1.x=2500"])  # 1.9 km out
    assert prepare_inputs(near.mobility, near.seed, near.duration_s, grid_small).net is not None
    far = load_scenario(grid_small, ["learning=null", "radio.cells.1.x=9000",
                                     "radio.allow_cells_outside=true"])
    assert prepare_inputs(far.mobility, far.seed, far.duration_s, grid_small).net is not None


def test_missing_geo_origin_warns_in_one_line(grid_small, monkeypatch, capsys):
    from cosim.mobility.build import prepare_inputs

    monkeypatch.setattr(cosim.errors, "_warned", set())
    sc = load_scenario(grid_small, ["mobility.geo_origin=null"])
    prepare_inputs(sc.mobility, sc.seed, sc.duration_s, grid_small)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {grid_small}: mobility.geo_origin: ")
    assert "lon/lat" in lines[0]
    sc = load_scenario(grid_small)
    prepare_inputs(sc.mobility, sc.seed, sc.duration_s, grid_small)
    assert capsys.readouterr().err == ""


def test_a_refused_input_is_its_one_line_without_the_warnings_before_it(grid_small, tmp_path,
                                                                       monkeypatch):
    """The geo_origin warning is said once the checks pass: with an input refused later, the
    error is the only line."""
    monkeypatch.setattr(cosim.errors, "_warned", set())
    routes = tmp_path / "r.rou.xml"
    routes.write_text('<routes><vehicle id="v" depart="0"><route edges="nowhere"/></vehicle>'
                      "</routes>\n")
    _one_line(_validate(grid_small, "mobility.geo_origin=null", f"mobility.routes=[{routes}]",
                        "mobility.demand.add_random=true"), "mobility")
    good = _validate(grid_small, "mobility.geo_origin=null")
    assert good.exit_code == 0 and "warning: " in good.stderr and "mobility.geo_origin" in good.stderr


# 6. One string where a list of files (or options) is expected --------------------------------

def test_single_strings_are_accepted_for_lists(grid_small, tmp_path):
    (tmp_path / "my.rou.xml").write_text("<routes/>\n")
    (tmp_path / "my.add.xml").write_text("<additional/>\n")
    text = grid_small.read_text().replace(
        "  geo_origin:", "  routes: my.rou.xml\n  additional: my.add.xml\n"
        "  sumo_options: --time-to-teleport 300 --no-warnings\n  geo_origin:", 1).replace(
        "    period_s: 4.0\n", "    period_s: 4.0\n    add_random: true\n", 1)
    sc = load_scenario(_write(tmp_path, text))
    assert sc.mobility.routes == [tmp_path / "my.rou.xml"]
    assert sc.mobility.additional == [tmp_path / "my.add.xml"]
    assert sc.mobility.sumo_options == ["--time-to-teleport", "300", "--no-warnings"]
    _one_line(_validate(grid_small, "mobility.routes=gone.rou.xml"), "mobility.routes.0")


# 7. validate --show --------------------------------------------------------------------------

def test_validate_show_prints_the_resolved_scenario(grid_small, tmp_path):
    result = runner.invoke(app, ["validate", str(grid_small), "--show", "--set", "seed=5"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["radio"]["handoff"]["a3_offset_db"] == 3.0  # a default grid_small leaves out
    assert shown["seed"] == 5 and shown["aggregation"]["method"] == "sync"
    again = load_scenario(_write(tmp_path, result.stdout, "shown.yaml"))
    assert again == load_scenario(grid_small, ["seed=5"])


@pytest.mark.parametrize("name", ["1e3", "0o17", "0x1F", ".5", "-2.5E-3", "12"])
def test_validate_show_quotes_a_name_a_yaml_12_reader_would_take_for_a_number(grid_small, name):
    """PyYAML (YAML 1.1) reads `1e3` as a string, a YAML 1.2 reader as 1000.0: quoted, the
    shown scenario means the same to both."""
    result = runner.invoke(app, ["validate", str(grid_small), "--show", "--set", f"name='{name}'"])
    assert result.exit_code == 0, result.output
    assert f"name: '{name}'" in result.stdout.splitlines(), result.stdout[:200]


# 8. cosim new --------------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--net", "--osm"])
def test_a_network_without_extent_is_refused_naming_where_it_came_from(option):
    """A network converted from --osm that is one point is said of --osm, not of --net."""
    from cosim.errors import InputError
    from cosim.mobility.location import NetLocation
    from cosim.starter import starter_yaml

    point = NetLocation((5.0, 5.0, 5.0, 5.0), (0.0, 0.0), None, False)
    with pytest.raises(InputError) as refused:
        starter_yaml("city", "city.net.xml", point, option=option)
    assert refused.value.field == option and "no extent" in refused.value.line()

def _netgenerate(path: Path) -> Path:
    from cosim.mobility.sumo_tools import binary

    subprocess.run([binary("netgenerate"), "--grid", "--grid.number", "3", "--grid.length", "300",
                    "-o", str(path)], check=True, capture_output=True)
    return path


@pytest.mark.slow
def test_new_from_a_network_validates_and_runs(tmp_path):
    net = _netgenerate(tmp_path / "grid.net.xml")
    result = runner.invoke(app, ["new", "mine", "--net", str(net), "--dir", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    scenario = tmp_path / "s" / "mine.yaml"
    assert "learning.enabled=true" in scenario.read_text()
    ok = runner.invoke(app, ["validate", str(scenario)])
    assert ok.exit_code == 0 and "learning: disabled" in ok.stdout, ok.output
    sc = load_scenario(scenario)
    assert sc.radio.cells.hex is not None and sc.mobility.net == net.resolve()
    done = runner.invoke(app, ["run", str(scenario), "--out", str(tmp_path / "run"), "--quiet",
                               "--set", "duration_s=10", "--set", "mobility.warmup_s=10"])
    assert done.exit_code == 0, done.output


def test_new_refuses_an_input_named_with_a_line_break(tmp_path):
    """The network's name is written into the starter's lines: a line break in it would add a
    line of its own (``seed: 99``) to the scenario."""
    net = _netgenerate(tmp_path / "grid.net.xml")
    odd = tmp_path / "inj\nseed: 99\n#.net.xml"
    odd.write_bytes(net.read_bytes())
    result = runner.invoke(app, ["new", "mine", "--net", str(odd), "--dir", str(tmp_path / "s")])
    line = _one_line(result, "--net")
    assert "control characters" in line and not (tmp_path / "s").exists()


@pytest.mark.parametrize("name", ["012", "true", "1e3", "null", ".inf"])
def test_new_names_its_scenario_as_written(tmp_path, name):
    """A name YAML would read as a number, a yes/no or nothing is written quoted: the scenario
    is named as the command was told."""
    net = _netgenerate(tmp_path / "grid.net.xml")
    result = runner.invoke(app, ["new", name, "--net", str(net), "--dir", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert load_scenario(tmp_path / "s" / f"{name}.yaml").name == name


@pytest.mark.parametrize("suffix", [".yaml", ".net.xml", ".poly.xml", ".netconvert.log",
                                    ".polyconvert.log"])
def test_new_from_osm_never_writes_over_a_users_file_unasked(tmp_path, suffix):
    """Every file `cosim new --osm` writes, its converters' logs too, is checked before any is."""
    osm = tiny_osm(tmp_path / "town.osm")
    mine = tmp_path / "d" / f"town{suffix}"
    mine.parent.mkdir()
    mine.write_text("MY LOG")
    result = runner.invoke(app, ["new", "town", "--osm", str(osm), "--dir", str(mine.parent)])
    assert f"town{suffix}: exists already (--force" in _one_line(result)
    assert [p.name for p in mine.parent.iterdir()] == [mine.name] and mine.read_text() == "MY LOG"
    mine.unlink()
    mine.mkdir()  # a folder in its place: refused even with --force (a move would go into it)
    refused = runner.invoke(app, ["new", "town", "--osm", str(osm), "--dir", str(mine.parent),
                                  "--force"])
    assert "not a regular file" in _one_line(refused)
    assert [p.name for p in mine.parent.iterdir()] == [mine.name] and not any(mine.iterdir())


@pytest.mark.slow
def test_new_from_osm_converts_and_geo_references(tmp_path):
    osm = tiny_osm(tmp_path / "town.osm")
    result = runner.invoke(app, ["new", "town", "--osm", str(osm), "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "town.net.xml").is_file()
    (tmp_path / "town.yaml").unlink()  # the network the user keeps is not replaced unasked
    again = runner.invoke(app, ["new", "town", "--osm", str(osm), "--dir", str(tmp_path)])
    assert "town.net.xml: exists already (--force" in _one_line(again)
    (tmp_path / "town.net.xml").rename(tmp_path / "kept.net.xml")
    assert "town.poly.xml: exists already (--force" in _one_line(
        runner.invoke(app, ["new", "town", "--osm", str(osm), "--dir", str(tmp_path)]))
    assert runner.invoke(app, ["new", "town", "--osm", str(osm), "--dir", str(tmp_path),
                               "--force"]).exit_code == 0
    sc = load_scenario(tmp_path / "town.yaml")
    assert sc.mobility.geo_origin == "network"  # lon/lat through the network's own projection
    # the building became a polygon the radio's line of sight reads; the downtown handoff
    from cosim.radio.buildings import read_buildings

    assert sc.radio.channel.los == "geometry" and sc.radio.channel.buildings == tmp_path / "town.poly.xml"
    assert len(read_buildings(tmp_path / "town.poly.xml")) == 1
    assert (sc.radio.handoff.hysteresis_db, sc.radio.handoff.ttt_s) == (1.0, 0.32)
    assert runner.invoke(app, ["validate", str(tmp_path / "town.yaml")]).exit_code == 0
    # the junctions netconvert made from the OSM nodes map back onto those nodes' lat/lon
    import sumolib

    from cosim.mobility.layer import geo_reference

    net = sumolib.net.readNet(str(tmp_path / "town.net.xml"))
    ref = geo_reference("network", tmp_path / "town.net.xml")
    for i, j in ((0, 1), (1, 0), (1, 1), (1, 2), (2, 1)):  # the corners are no junctions
        x, y = net.getNode(str(1 + 3 * i + j)).getCoord()
        lon, lat = ref.lonlat([x], [y])
        north_m = (lat[0] - (37.770 + 0.003 * i)) * 111_195
        east_m = (lon[0] - (-122.420 + 0.004 * j)) * 111_195 * math.cos(math.radians(37.77))
        assert math.hypot(north_m, east_m) < 0.5, (i, j, north_m, east_m)
    done = runner.invoke(app, ["run", str(tmp_path / "town.yaml"), "--out", str(tmp_path / "run"),
                               "--quiet", "--set", "duration_s=20", "--set", "mobility.warmup_s=60"])
    assert done.exit_code == 0, done.output
    import pyarrow.parquet as pq

    trace = pq.read_table(tmp_path / "run" / "mobility.parquet").to_pandas()
    assert len(trace) and trace.lat.between(37.769, 37.777).all()
    assert trace.lon.between(-122.421, -122.411).all()
    # and validate checks its cells against that network (no building needed)
    moved = _validate(tmp_path / "town.yaml", "radio.cells.hex.center=[50000, 0]")
    assert "no site of the lattice is within" in _one_line(moved, "radio.cells")
    moved = _validate(tmp_path / "town.yaml", "radio.cells.hex.center=[50000, 0]",
                      "radio.cells.hex.max_road_distance_m=null")
    assert "outside the network" in _one_line(moved, "radio.cells.hex")


@pytest.mark.slow
def test_new_never_writes_through_a_hard_link(tmp_path):
    """NAME.yaml as another name of a user's file: --force would change that file too."""
    net = _netgenerate(tmp_path / "grid.net.xml")
    precious = tmp_path / "precious.txt"
    precious.write_text("PRECIOUS")
    (tmp_path / "x.yaml").hardlink_to(precious)
    line = _one_line(runner.invoke(app, ["new", "x", "--net", str(net), "--dir", str(tmp_path),
                                         "--force"]))
    assert "hard link" in line and precious.read_text() == "PRECIOUS"


@pytest.mark.slow
def test_new_refuses_bad_arguments(tmp_path):
    net = _netgenerate(tmp_path / "grid.net.xml")
    _one_line(runner.invoke(app, ["new", "bad name", "--net", str(net)]), "NAME")
    _one_line(runner.invoke(app, ["new", "x", "--dir", str(tmp_path)]), "--net/--osm")
    _one_line(runner.invoke(app, ["new", "x", "--net", str(tmp_path / "gone.net.xml"),
                                  "--dir", str(tmp_path)]), "--net")
    assert runner.invoke(app, ["new", "x", "--net", str(net), "--dir", str(tmp_path)]).exit_code == 0
    assert "--force" in _one_line(runner.invoke(app, ["new", "x", "--net", str(net), "--dir",
                                                      str(tmp_path)]))
    (tmp_path / "broken.osm").write_text("<osm><way")
    _one_line(runner.invoke(app, ["new", "y", "--osm", str(tmp_path / "broken.osm"), "--dir",
                                  str(tmp_path)]), "--osm")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["text_as_net", "missing_net", "fifo_net", "text_as_osm",
                                  "broken_osm", "missing_osm", "missing_route", "dir_in_a_run"])
def test_new_refuses_bad_inputs_before_making_its_folder(tmp_path, case):
    import os

    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "broken.osm").write_text("<osm><way")
    os.mkfifo(tmp_path / "fifo.net.xml")
    net = _netgenerate(tmp_path / "grid.net.xml")
    run = tmp_path / "done"
    assert runner.invoke(app, ["run", str(REPO / "scenarios" / "grid_small.yaml"), "--out", str(run),
                               "-q", "--set", "duration_s=10", "--set", "learning=null"]).exit_code == 0
    target = run / "mine" if case == "dir_in_a_run" else tmp_path / "new"
    args = {"text_as_net": ["--net", tmp_path / "notes.txt"], "missing_net": ["--net", tmp_path / "x"],
            "fifo_net": ["--net", tmp_path / "fifo.net.xml"],
            "text_as_osm": ["--osm", tmp_path / "notes.txt"],
            "broken_osm": ["--osm", tmp_path / "broken.osm"], "missing_osm": ["--osm", tmp_path / "x"],
            "missing_route": ["--net", net, "--routes", tmp_path / "x.rou.xml"],
            "dir_in_a_run": ["--net", net]}[case]
    _one_line(runner.invoke(app, ["new", "city", *map(str, args), "--dir", str(target)]))
    assert not target.exists()


# 9. compare and grid_small's learning section ------------------------------------------------

def test_grid_small_learns_and_compare_says_how_to_turn_learning_on(grid_small, tmp_path):
    assert load_scenario(grid_small).learning_enabled
    result = runner.invoke(app, ["compare", str(grid_small), "--out", str(tmp_path / "c"),
                                 "--set", "learning=null", "--quiet"])
    line = _one_line(result, "learning")
    assert "learning.enabled=true" in line
    assert not (tmp_path / "c").exists()


# 10. The docs document every cell field and the frame -------------------------------------

def test_docs_document_every_cell_field_and_the_frame():
    section = (REPO / "docs" / "reference" / "cells.md").read_text()
    for model in (CellConfig, HexLayout, IntersectionLayout):
        for name in model.model_fields:
            assert f"`{name}`" in section, (model.__name__, name)
    for word in ("netOffset", "geo_origin", "x east", "y north", "allow_cells_outside"):
        assert word in section, word


def test_console_script_one_line_for_a_refused_scenario(grid_small, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "cosim.cli", "run", str(grid_small), "--out",
                           str(out), "--set", "radio.step_s=1e-12"], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert ": radio.step_s: " in proc.stderr and not out.exists()


@pytest.mark.parametrize(("policy", "says"), [
    (":Foo", "give a module and a name, as module:Name"),
    ("os:getcwd", "is not a usable policy: it is a builtin_function_or_method, not a class"),
    ("nosuchmodule:Policy", "No module named 'nosuchmodule'"),
    ("cosim.learning.federated.policies:Nothing", "cannot load"),
])
def test_a_policy_that_is_not_a_policy_class_is_bad_input(grid_small, tmp_path, policy, says):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(grid_small), "--out", str(out), "-q",
                                      "--set", f"scheduling.policy={policy}"])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "scheduling.policy: " in lines[0] and says in lines[0]
    assert not out.exists() and not (tmp_path / "run.partial").exists()


def test_own_routes_with_a_demand_section_are_refused_unless_asked(grid_small, tmp_path):
    """A user's routes are what runs: a demand section beside them (as in a copied scenario)
    would add random trips silently, so it is refused unless demand.add_random says so."""
    routes = tmp_path / "mine.rou.xml"
    routes.write_text("<routes/>\n")
    line = _run_refused(grid_small, tmp_path, f"mobility.routes={routes}", field="mobility")
    assert "routes and demand" in line and "demand.add_random" in line
    sc = load_scenario(grid_small, [f"mobility.routes={routes}", "mobility.demand.add_random=true"])
    assert sc.mobility.routes == [routes] and sc.mobility.demand.add_random


def test_new_with_routes_runs_the_routes_only(tmp_path):
    import pyarrow.parquet as pq
    import sumolib

    net = _netgenerate(tmp_path / "grid.net.xml")
    edges = [e.getID() for e in sumolib.net.readNet(str(net)).getEdges()]
    routes = tmp_path / "mine.rou.xml"
    routes.write_text("<routes>\n" + "".join(
        f'  <vehicle id="mine{i}" depart="{i}"><route edges="{edges[i]}"/></vehicle>\n'
        for i in range(3)) + "</routes>\n")
    result = runner.invoke(app, ["new", "own", "--net", str(net), "--routes", str(routes),
                                 "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    sc = load_scenario(tmp_path / "own.yaml")
    assert sc.mobility.routes == [routes.resolve()] and sc.mobility.demand is None
    done = runner.invoke(app, ["run", str(tmp_path / "own.yaml"), "--out", str(tmp_path / "run"),
                               "--quiet", "--set", "duration_s=5"])
    assert done.exit_code == 0, done.output
    vehicles = set(pq.read_table(tmp_path / "run" / "mobility.parquet").column("vehicle").to_pylist())
    assert vehicles and vehicles <= {"mine0", "mine1", "mine2"}
    _one_line(runner.invoke(app, ["new", "x", "--net", str(net), "--routes",
                                  str(tmp_path / "gone.rou.xml"), "--dir", str(tmp_path)]), "--routes")


def test_validate_runs_the_checks_run_runs_before_its_folder(grid_small, tmp_path):
    """A cell far off a generated network and a malformed buildings file: run refuses them
    before its folder exists, and validate refuses them the same way."""
    far = ("radio.cells.0.x=1.0e7",)
    assert "outside the network" in _one_line(_validate(grid_small, *far), "radio.cells.0")
    _run_refused(grid_small, tmp_path, *far, field="radio.cells.0")
    broken = tmp_path / "city.poly.xml"
    broken.write_text("<additional><poly id='a' type='building' shape='0,0 1,0")
    bad = ("radio.channel.los=geometry", f"radio.channel.buildings={broken}")
    assert "cannot read city.poly.xml" in _one_line(_validate(grid_small, *bad),
                                                     "radio.channel.buildings")
    _run_refused(grid_small, tmp_path, *bad, field="radio.channel.buildings")
    ok = _validate(grid_small)
    assert ok.exit_code == 0, ok.output
    said = ok.stdout.splitlines()[1]
    assert "network " in said and " cells" in said and "traffic: random trips" in said, said
    assert "clients on" in said and "held out" in said


def test_geo_origin_network_needs_a_projected_network(grid_small, tmp_path):
    """netgenerate's grid has no projection: lon/lat through it are refused before the folder."""
    line = _run_refused(grid_small, tmp_path, "mobility.geo_origin=network",
                        field="mobility.geo_origin")
    assert "no projection" in line


def test_converter_warnings_are_summarised_by_kind(tmp_path):
    from cosim.mobility.sumo_tools import warning_summary

    log = tmp_path / "city.netconvert.log"
    log.write_text("Parsing types...\n"
                   "Warning: Discarding unusable type 'waterway.river' (first occurrence for edge '-12').\n"
                   "Warning: Discarding unusable type 'railway.rail' (first occurrence for edge '7').\n"
                   "Warning: Removing self-loop edge 'x'\n"
                   "Warning: Discarding unusable type 'aeroway' (first occurrence for edge '99').\n"
                   "Success.\n")
    line = warning_summary(log, "netconvert")
    assert line.startswith("netconvert: 4 warnings, most often: 3x Discarding unusable type '…' "
                           "(first occurrence for edge '…').; 1x Removing self-loop edge '…'"), line
    log.write_text("Success.\n")
    assert warning_summary(log, "netconvert") is None


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["run", "scenarios/grid_small.yaml", "--seed", "abc"],
    ["run", "scenarios/grid_small.yaml", "--bogus"],
    ["compare", "scenarios/grid_small.yaml", "--out", "X", "--jobs", "0"],
    ["compare", "scenarios/grid_small.yaml"],
    ["pretrain", "--out", "x.pt", "--steps", "many"],
    ["data", "synth", "--out", "d", "--segments", "-1"],
])
def test_a_usage_error_is_one_line_and_exit_2(tmp_path, args):
    """What the command line's parser refuses is said as every input error is: one line."""
    done = subprocess.run([sys.executable, "-m", "cosim.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert not (REPO / "X").exists() and not (REPO / "d").exists()


@pytest.mark.parametrize("setting, field", [
    ("seed=true", "seed"),
    ("duration_s=yes", "duration_s"),
    ("learning.evaluation.det3d_center_thresholds_m=[1.0, true]",
     "learning.evaluation.det3d_center_thresholds_m"),
])
def test_a_truth_value_where_a_number_belongs_is_refused(grid_small, setting, field):
    with pytest.raises(InputError) as refused:
        load_scenario(grid_small, [setting])
    assert refused.value.field == field and "true or false" in str(refused.value)


def test_an_unknown_deployed_model_is_refused_at_validate(grid_small):
    """Its cost is counted mid-run on the meta device: its name is checked before any folder."""
    result = CliRunner().invoke(app, ["validate", str(grid_small), "--set", "learning.enabled=true",
                                      "--set", "learning.deployed_model.name=zzz"])
    assert result.exit_code == 2, result.output
    assert "learning.deployed_model.name" in _one_line(result)


@pytest.mark.slow
def test_new_on_a_network_no_cells_fit_writes_nothing_and_replaces_nothing(tmp_path):
    """A network whose extent puts the cells beyond any Earth (convBoundary of 1e12 m): the
    scenario is checked before it is written, even with --force over an earlier one."""
    import re as regex

    net = _netgenerate(tmp_path / "grid.net.xml")
    huge = tmp_path / "huge.net.xml"
    huge.write_text(regex.sub(r'convBoundary="[^"]*"', 'convBoundary="0.00,0.00,1e12,1e12"',
                              net.read_text()))
    mine = tmp_path / "city.yaml"
    assert runner.invoke(app, ["new", "city", "--net", str(net), "--dir", str(tmp_path)]).exit_code == 0
    before = mine.read_bytes()
    line = _one_line(runner.invoke(app, ["new", "city", "--net", str(huge), "--dir", str(tmp_path),
                                         "--force"]))
    assert str(huge) in line and "no starter scenario fits" in line
    assert mine.read_bytes() == before
    _one_line(runner.invoke(app, ["new", "town", "--net", str(huge), "--dir", str(tmp_path / "d")]))
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("sets", "field"), [
    # grid_small keeps 4 clients and 2 held-out segments: 3 segments cannot serve them
    (["learning.data.synthetic.segments=3"], "learning.data.clients"),
    (["learning.data.partition=dirichlet", "learning.data.dirichlet_alpha=0.01",
      "learning.data.clients=3", "clients.count=3", "learning.data.synthetic.segments=3",
      "learning.data.heldout_segments=1"], "learning.data.dirichlet_alpha"),
    (["learning.data.heldout_segments=0"], "learning.data.heldout_segments"),
])
def test_a_data_split_that_cannot_serve_the_clients_is_refused_before_the_folder(
        grid_small, tmp_path, sets, field):
    """Too few segments, a client without frames, or nothing held out to score on: `validate`
    and a run say so in one line (a run failed after making its folder, or scored nothing)."""
    sets = ["learning.enabled=true", "learning.data.synthetic.frames=2", *sets]
    _run_refused(grid_small, tmp_path, *sets, field=field)
    result = _validate(grid_small, *sets)
    assert result.exit_code == 2 and field in result.output, result.output


def test_data_synth_is_held_to_the_scenarios_limit_on_synthetic_frames(tmp_path):
    from typer.testing import CliRunner

    from cosim.cli import app

    result = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "d"),
                                      "--segments", "10000", "--frames", "2000"])
    assert result.exit_code == 2 and "at most 1e+06" in result.output, result.output
    assert not (tmp_path / "d").exists()
