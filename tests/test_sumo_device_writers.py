"""The files a scenario makes SUMO read, read safely (regular files, bounded, streamed). SUMO's
SSM and ToC devices write files of their own naming (``ssm_<vehicle>.xml`` in the working
folder): asked for by a vehicle's or type's ``<param>`` in any file SUMO reads, or by a sumocfg
option, they are refused before anything runs. Generated cases: every equipping element, key and
file kind, plain, gzipped and namespaced."""

from __future__ import annotations

import gzip
import itertools
import os
from pathlib import Path

import pytest

from cosim import sumo_xml
from cosim.errors import InputError
from cosim.mobility.declared_outputs import refuse_device_writers

KEYS = ["has.ssm.device", "device.ssm.file", "device.ssm.measures", "has.toc.device",
        "device.toc.file", "device.toc.manualType"]
PARENTS = ["vType", "vehicle", "trip", "flow", "person", "personFlow", "container"]
KINDS = ["plain", "gzip", "namespaced"]
HARMLESS = ["has.rerouting.device", "device.rerouting.period", "device.battery.capacity",
            "ssm.file", "has.ssmx.device"]


def _element(parent: str, key: str) -> str:
    attributes = {"vType": 'id="t"', "person": 'id="p" depart="0"'}.get(parent, 'id="v" depart="0"')
    return f'<{parent} {attributes}><param key="{key}" value="x.xml"/></{parent}>'


def _write(path: Path, root: str, body: str, kind: str) -> Path:
    xmlns = ' xmlns="http://sumo.dlr.de/xsd"' if kind == "namespaced" else ""
    text = f'<?xml version="1.0"?>\n<{root}{xmlns}>\n{body}\n</{root}>\n'.encode()
    if kind == "gzip":
        path.write_bytes(gzip.compress(text))
    else:
        path.write_bytes(text)
    return path


@pytest.mark.parametrize(("key", "parent", "kind"), list(itertools.product(KEYS, PARENTS, KINDS)))
def test_a_device_that_writes_its_own_files_is_refused_in_a_route_file(tmp_path, key, parent, kind):
    routes = _write(tmp_path / "r.rou.xml", "routes", _element(parent, key), kind)
    with pytest.raises(InputError) as refused:
        refuse_device_writers([("mobility.routes", routes)], [], None)
    line = str(refused.value)
    assert "\n" not in line and str(routes) in line and "mobility.routes" in line, line
    assert key in line and key.split(".")[1] in line, line


@pytest.mark.parametrize("key", KEYS)
def test_a_device_param_in_an_included_additional_file_is_refused(tmp_path, key):
    (tmp_path / "sub").mkdir()
    inner = _write(tmp_path / "sub" / "types.add.xml", "additional", _element("vType", key),
                   "plain")
    outer = _write(tmp_path / "a.add.xml", "additional", '<include href="sub/types.add.xml"/>',
                   "plain")
    with pytest.raises(InputError, match="mobility.additional") as refused:
        refuse_device_writers([("mobility.additional", outer)], [], None)
    assert str(inner) in str(refused.value)


@pytest.mark.parametrize(("key", "listed_as"), list(itertools.product(
    KEYS, ["route-files", "additional-files"])))
def test_a_device_in_the_files_a_sumocfg_lists_is_refused(tmp_path, key, listed_as):
    _write(tmp_path / "x.xml", "routes", _element("vType", key), "plain")
    cfg = _write(tmp_path / "s.sumocfg", "configuration",
                 f'<input><{listed_as} value="x.xml"/></input>', "plain")
    with pytest.raises(InputError, match="mobility.sumocfg"):
        refuse_device_writers([], [], cfg)


@pytest.mark.parametrize("option", ["device.ssm.probability", "device.ssm.file",
                                    "device.toc.explicit", "device.ssm.deterministic"])
@pytest.mark.parametrize("group", [True, False])
def test_a_sumocfg_option_that_equips_a_device_is_refused(tmp_path, option, group):
    entry = f'<{option} value="1"/>'
    cfg = _write(tmp_path / "s.sumocfg", "configuration",
                 f"<processing>{entry}</processing>" if group else entry, "plain")
    with pytest.raises(InputError, match=f"<{option}>") as refused:
        refuse_device_writers([], [], cfg)
    assert "mobility.sumocfg" in str(refused.value)


@pytest.mark.parametrize("key", HARMLESS)
def test_other_devices_and_keys_pass(tmp_path, key):
    routes = _write(tmp_path / "r.rou.xml", "routes", _element("vehicle", key), "plain")
    refuse_device_writers([("mobility.routes", routes)], [], None)


def test_a_device_key_outside_a_vehicle_or_type_equips_nothing(tmp_path):
    add = _write(tmp_path / "a.add.xml", "additional",
                 '<tlLogic id="j" type="static" programID="1" offset="0">'
                 '<param key="device.ssm.file" value="x"/></tlLogic>', "plain")
    refuse_device_writers([("mobility.additional", add)], [], None)


def test_files_that_cannot_be_read_as_xml_are_input_errors(tmp_path, monkeypatch):
    fifo = tmp_path / "fifo.rou.xml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        refuse_device_writers([("mobility.routes", fifo)], [], None)
    with pytest.raises(InputError, match="cannot read it"):
        refuse_device_writers([("mobility.routes", tmp_path / "gone.rou.xml")], [], None)
    bad_gzip = tmp_path / "bad.rou.xml"
    bad_gzip.write_bytes(b"\x1f\x8b" + os.urandom(64))
    with pytest.raises(InputError, match="mobility.routes"):
        refuse_device_writers([("mobility.routes", bad_gzip)], [], None)
    bomb = tmp_path / "bomb.rou.xml"
    bomb.write_bytes(gzip.compress(b"<routes>" + b" " * 4_000_000 + b"</routes>"))
    assert bomb.stat().st_size < 20_000
    monkeypatch.setattr(sumo_xml, "XML_LIMIT_BYTES", 1_000_000)
    with pytest.raises(InputError, match="too big to read"):
        refuse_device_writers([("mobility.routes", bomb)], [], None)


@pytest.mark.parametrize("kind", ["plain", "gzip"])
@pytest.mark.parametrize("where", ["attribute", "text", "comment"])
def test_a_tag_longer_than_any_sumo_element_is_refused_unparsed(tmp_path, kind, where):
    """Python's expat re-reads an unfinished token on every chunk: one 300 MB attribute would
    take hours. A tag of more than MAX_TOKEN_BYTES is refused after reading about that much."""
    huge = "A" * (sumo_xml.MAX_TOKEN_BYTES + 10)
    body = {"attribute": f'<poi id="p" x="1" y="1" type="{huge}"/>',
            "text": f"<poi>{huge}</poi>", "comment": f"<!-- {huge} -->"}[where]
    add = _write(tmp_path / "a.add.xml", "additional", body, kind)
    with pytest.raises(InputError, match="in one tag") as refused:
        refuse_device_writers([("mobility.additional", add)], [], None)
    assert "mobility.additional" in str(refused.value) and str(add) in str(refused.value)
    long_but_sane = "1,2 " * 200_000  # a 800 kB polygon shape
    _write(add, "additional", f'<poly id="p" shape="{long_but_sane}"/>' * 8, kind)
    refuse_device_writers([("mobility.additional", add)], [], None)


def test_an_include_loop_is_one_line(tmp_path):
    _write(tmp_path / "a.add.xml", "additional", '<include href="b.add.xml"/>', "plain")
    _write(tmp_path / "b.add.xml", "additional", '<include href="a.add.xml"/>', "plain")
    with pytest.raises(InputError, match="includes nested deeper than"):
        refuse_device_writers([], [("mobility.additional", tmp_path / "a.add.xml")], None)


@pytest.mark.parametrize("target", ["fifo", "folder", "missing", "dev_zero"])
def test_the_network_a_sumocfg_names_is_a_regular_file(tmp_path, target):
    from cosim.mobility.build import SumoInputs, network_file

    net = tmp_path / "n.net.xml"
    if target == "fifo":
        os.mkfifo(net)
    elif target == "folder":
        net.mkdir()
    elif target == "dev_zero":
        net.symlink_to("/dev/zero")
    cfg = _write(tmp_path / "s.sumocfg", "configuration",
                 '<input><net-file value="n.net.xml"/></input>', "namespaced")
    with pytest.raises(InputError, match="<net-file>") as refused:
        network_file(SumoInputs(net=None, sumocfg=cfg))
    assert "mobility.sumocfg" in str(refused.value) and str(cfg) in str(refused.value)


# --- saved states and traffic-light outputs: files SUMO names from a prefix or a <param> ---------

@pytest.mark.parametrize(("options", "refused"), [
    ("--save-state.times 10", True), ("--save-state.period 10", True),
    ("--save-state.period=10 --save-state.files s.xml", True),
    ("--save-state.times 10 --save-state.prefix st", True),
    ("--save-state.times 10,20 --save-state.files a.xml,b.xml", False),
    ("--save-state.times=10 --save-state.files=a.xml", False), ("--save-state.rng", False)])
def test_states_sumo_would_name_itself_are_refused(options, refused):
    from cosim.scenario_loader import load_scenario

    grid = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    sets = [f"mobility.sumo_options={options}"]
    if refused:
        with pytest.raises(InputError, match="save-state.files") as error:
            load_scenario(grid, sets)
        assert "mobility.sumo_options" in str(error.value)
    else:
        assert load_scenario(grid, sets).mobility.sumo_options == options.split()


@pytest.mark.parametrize("entries", ['<save-state.times value="10"/>',
                                     '<output><save-state.period value="5"/></output>'])
def test_a_sumocfg_saving_states_by_prefix_is_refused(tmp_path, entries):
    from cosim.mobility.declared_outputs import sumocfg_entries

    cfg = _write(tmp_path / "s.sumocfg", "configuration", entries, "plain")
    with pytest.raises(InputError, match="save-state.files"):
        sumocfg_entries(cfg, lambda name: False)
    named = '<save-state.times value="10"/><save-state.files value="st.xml"/>'
    _write(cfg, "configuration", named, "plain")
    assert sumocfg_entries(cfg, lambda name: name == "save-state.files").outputs == [
        ("save-state.files", tmp_path / "st.xml")]


def _tls(params: str) -> str:
    return f'<tlLogic id="j" type="actuated" programID="1" offset="0">{params}</tlLogic>'


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field", ["mobility.net", "mobility.additional"])
def test_a_traffic_lights_detector_file_is_a_declared_output(tmp_path, kind, field):
    from cosim.mobility.declared_outputs import declared_sumo_outputs

    (tmp_path / "sub").mkdir()
    body = _tls('<param key="max-gap" value="3"/><param key="file" value="det/out.xml"/>'
                '<param key="freq" value="60"/>') + _tls('<param key="file" value="NUL"/>')
    declaring = _write(tmp_path / "sub" / "f.xml", "net" if field == "mobility.net" else "additional",
                       body, kind)
    found = (declared_sumo_outputs([], None, lambda n: False, net=declaring)
             if field == "mobility.net" else declared_sumo_outputs([declaring], None, lambda n: False))
    assert [(d.field, d.path) for d in found] == [(field, tmp_path / "sub" / "det" / "out.xml")]


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "on", "x"])
def test_a_nema_state_output_is_refused(tmp_path, value):
    from cosim.mobility.declared_outputs import declared_sumo_outputs

    add = _write(tmp_path / "a.add.xml", "additional",
                 _tls(f'<param key="whetherOutputState" value="{value}"/>'), "plain")
    with pytest.raises(InputError, match="whetherOutputState"):
        declared_sumo_outputs([add], None, lambda n: False)
    _write(add, "additional", _tls('<param key="whetherOutputState" value="false"/>'), "plain")
    assert declared_sumo_outputs([add], None, lambda n: False) == []


def test_a_screenshot_the_gui_view_settings_ask_for_is_a_declared_output(tmp_path):
    from cosim.mobility.declared_outputs import declared_sumo_outputs

    settings = _write(tmp_path / "view.xml", "viewsettings",
                      '<scheme name="real world"/><snapshot file="shots/t10.png" time="10"/>',
                      "plain")
    found = declared_sumo_outputs([], None, lambda n: False, gui_settings=settings)
    assert [(d.field, d.path) for d in found] == [("mobility.gui.settings_file",
                                                   tmp_path / "shots" / "t10.png")]


# --- a sumocfg as SUMO reads it: v= attributes, element text, synonyms, commas -----------------

def _writes(name: str) -> bool:
    return name.endswith("-output")


@pytest.mark.parametrize("form", ['<fcd-output v="out/f.xml"/>', "<fcd-output>out/f.xml</fcd-output>",
                                  '<output><fcd-output value="out/f.xml"/></output>'])
def test_every_form_of_a_sumocfg_output_option_is_found(tmp_path, form):
    from cosim.mobility.declared_outputs import sumocfg_entries

    cfg = _write(tmp_path / "s.sumocfg", "configuration", form, "plain")
    assert sumocfg_entries(cfg, _writes).outputs == [("fcd-output", tmp_path / "out" / "f.xml")]


def test_a_sumocfgs_synonyms_name_the_files_it_loads(tmp_path):
    from cosim.mobility.declared_outputs import sumocfg_entries

    cfg = _write(tmp_path / "s.sumocfg", "configuration",
                 '<input><net v="n.net.xml"/><routes value="a.rou.xml,b.rou.xml"/>'
                 "<additional>x.add.xml</additional></input>", "plain")
    entries = sumocfg_entries(cfg, _writes)
    assert entries.nets == [tmp_path / "n.net.xml"]
    assert entries.routes == [tmp_path / "a.rou.xml", tmp_path / "b.rou.xml"]
    assert entries.additional == [tmp_path / "x.add.xml"]


@pytest.mark.parametrize("entry", ['<route-files v="r.rou.xml"/>', "<routes>r.rou.xml</routes>",
                                   '<r value="r.rou.xml"/>'])
def test_a_device_in_a_route_file_any_sumocfg_form_names_is_refused(tmp_path, entry):
    _write(tmp_path / "r.rou.xml", "routes", _element("vType", "has.ssm.device"), "plain")
    cfg = _write(tmp_path / "s.sumocfg", "configuration", entry, "plain")
    with pytest.raises(InputError, match="has.ssm.device"):
        refuse_device_writers([], [], cfg)


@pytest.mark.parametrize("entry", ['<output-prefix v="p_"/>', '<device.ssm.probability v="1"/>',
                                   "<vtk-output>v</vtk-output>"])
def test_sumocfg_options_sumo_names_files_for_are_refused_in_any_form(tmp_path, entry):
    from cosim.mobility.declared_outputs import sumocfg_entries

    cfg = _write(tmp_path / "s.sumocfg", "configuration", entry, "plain")
    with pytest.raises(InputError, match="mobility.sumocfg"):
        sumocfg_entries(cfg, _writes)


def test_a_sumocfg_sumo_cannot_read_is_one_line(tmp_path):
    from cosim.mobility.declared_outputs import sumocfg_entries

    cfg = _write(tmp_path / "s.sumocfg", "configuration", '<no-such-option value="1"/>', "plain")
    with pytest.raises(InputError, match="SUMO cannot read it") as refused:
        sumocfg_entries(cfg, _writes)
    assert "\n" not in str(refused.value) and "no-such-option" in str(refused.value)


def test_an_output_path_with_a_comma_is_one_file():
    from cosim.destinations import sumo_written_paths

    assert sumo_written_paths(["--fcd-output", "/u/a.xml,b.xml"]) == [
        ("--fcd-output", Path("/u/a.xml,b.xml"))]
    assert sumo_written_paths(["--save-state.files=a.xml,b.xml"]) == [
        ("--save-state.files", Path("a.xml")), ("--save-state.files", Path("b.xml"))]


# --- SUMO's synonyms: an option is judged as the option SUMO takes it for -----------------------

def test_the_synonym_table_is_sumos_own(tmp_path):
    """Checked against the installed SUMO's option template (every ``synonymes`` entry)."""
    import subprocess
    import xml.etree.ElementTree as ET

    from cosim.mobility.sumo_tools import binary
    from cosim.scenario.mobility import SUMO_SYNONYMS

    template = tmp_path / "template.xml"
    subprocess.run([binary("sumo"), "--save-template", str(template)], check=True,
                   capture_output=True)
    sumos = {synonym: option.tag for group in ET.parse(template).getroot() for option in group
             for synonym in (option.get("synonymes") or "").split()}
    assert sumos == SUMO_SYNONYMS


@pytest.mark.parametrize(("option", "says"), [
    ("--additional d.add.xml", "cosim's to set"), ("--configuration x.sumocfg", "cosim's to set"),
    ("--abs-rand true", "cosim's to set"), ("--srand 42", "cosim's to set"),
    ("--net n.net.xml", "cosim's to set"), ("-r r.rou.xml", "cosim's to set"),
    ("--log-file l.txt", "cosim's to set"), ("--save-config c.xml", "stop instead of simulating"),
    ("-C c.xml", "stop instead of simulating"), ("-?", "stop instead of simulating"),
    ("--device.ssm.knownveh v0", "ssm device")])
def test_a_sumo_option_given_by_a_synonym_is_judged_as_sumo_takes_it(option, says):
    from cosim.scenario_loader import load_scenario

    grid = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    with pytest.raises(InputError, match="mobility.sumo_options") as refused:
        load_scenario(grid, [f"mobility.sumo_options={option}"])
    assert says in str(refused.value) and option.split()[0] in str(refused.value)


def test_a_file_with_more_elements_than_a_sumo_file_holds_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sumo_xml, "MAX_ELEMENTS", 1000)
    add = _write(tmp_path / "a.add.xml", "additional", '<poi id="p" x="1" y="1"/>' * 1000, "gzip")
    with pytest.raises(InputError, match="more than 1,000 elements"):
        refuse_device_writers([], [("mobility.additional", add)], None)


def _scan_peak(path: Path, elements: int, shape: str) -> int:
    import tracemalloc

    from cosim.sumo_xml import xml_elements

    body = ('<poi id="p" x="1" y="1"/>' * elements if shape == "flat" else
            '<poly id="x" shape="0,0 1,1">' + '<param key="k" value="v"/>' * elements + "</poly>")
    add = _write(path, "additional", body, "gzip")
    tracemalloc.start()
    try:
        count = sum(1 for _ in xml_elements(add, "mobility.additional"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count >= elements
    return peak


@pytest.mark.parametrize("shape", ["flat", "nested"])
def test_the_scan_keeps_no_element_it_has_read(tmp_path, shape):
    """Memory stays flat however many elements a file holds, side by side or in one parent
    (tracemalloc's peak: four times the elements, not four times the memory)."""
    small = _scan_peak(tmp_path / "small.add.xml", 100_000, shape)
    large = _scan_peak(tmp_path / "large.add.xml", 400_000, shape)
    assert large < 1.5 * small, (small, large)


def test_the_files_an_element_reads_are_found_in_what_is_included(tmp_path):
    from cosim.mobility.declared_outputs import read_by_elements

    _write(tmp_path / "inc.add.xml", "additional",
           '<variableSpeedSign id="v" lanes="l_0" file="steps/vss.xml"/>'
           '<e1Detector id="d" lane="l_0" pos="1" period="5" file="out.xml"/>', "plain")
    top = _write(tmp_path / "a.add.xml", "additional",
                 '<include href="inc.add.xml"/><calibrator id="c" edge="e" file="flows.xml" '
                 'output="cal.xml"/>', "plain")
    assert read_by_elements(top, "mobility.additional") == [tmp_path / "steps" / "vss.xml",
                                                            tmp_path / "flows.xml"]


def test_the_files_sumo_options_give_sumo_to_read_are_known():
    from cosim.destinations import sumo_read_paths, sumo_readers
    from cosim.mobility.sumo_tools import binary

    readers = sumo_readers(binary("sumo"))
    assert {"weight-files", "w", "load-state", "gui-settings-file"} <= readers
    assert not {"fcd-output", "log", "summary"} & readers
    assert sumo_read_paths(["--weights", "a.xml,b.xml", "--fcd-output", "f.xml",
                            "--load-state=s.xml"], readers) == [Path("a.xml"), Path("b.xml"),
                                                                Path("s.xml")]


def test_a_sumo_that_cannot_list_its_options_is_a_broken_install(tmp_path):
    """Guessing that it reads no file would leave those files out of the load check's key."""
    from cosim.destinations import sumo_readers
    from cosim.errors import MissingDependencyError

    broken = tmp_path / "sumo"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(MissingDependencyError, match="cannot list its options"):
        sumo_readers(str(broken))


SUMO_XML = (b'<?xml version="1.0" encoding="UTF-8"?>\n\n<!-- generated on 2026-01-01T00:00:00 by '
            b'Eclipse SUMO sumo 1.28.0\n-->\n<fcd-export>\n</fcd-export>\n')


@pytest.mark.parametrize(("content", "gzipped", "sumos"), [
    (SUMO_XML, False, True),
    (SUMO_XML, True, True),
    (b"\xef\xbb\xbf" + SUMO_XML, False, True),
    (SUMO_XML.split(b"\n", 2)[2], False, True),  # no XML declaration
    (b"% my thesis\n" + SUMO_XML, False, False),  # quotes SUMO's header, but is not SUMO's
    (b"step_time;step_loaded\n0.00;3\n", False, False),  # a CSV output: known from its run only
    (b"", False, False),
    (b"\x1f\x8b not gzip", False, False),
])
def test_a_file_sumo_wrote_is_known_by_its_header(tmp_path, content, gzipped, sumos):
    """What --overwrite lets SUMO replace without a run's record: SUMO's own XML outputs."""
    import gzip

    from cosim.destinations import sumo_wrote

    path = tmp_path / "f.xml"
    path.write_bytes(gzip.compress(content) if gzipped else content)
    assert sumo_wrote(path) is sumos
