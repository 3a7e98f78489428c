"""Scenario loading and the CLI's handling of bad input: one line, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.errors import InputError
from cosim.scenario_loader import load_scenario

runner = CliRunner()


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_key_is_named_with_a_suggestion(grid_small, tmp_path):
    bad = _write(tmp_path, grid_small.read_text().replace("mobility:", "mobilty:", 1))
    line = _one_error_line(runner.invoke(app, ["validate", str(bad)]))
    assert "mobilty" in line and "did you mean 'mobility'" in line and str(bad) in line


def test_nested_unknown_key(grid_small):
    line = _one_error_line(runner.invoke(
        app, ["validate", str(grid_small), "--set", "mobility.demand.fringe_factr=2"]))
    assert "mobility.demand.fringe_factr" in line and "'fringe_factor'" in line


def test_wrong_type(grid_small):
    line = _one_error_line(runner.invoke(
        app, ["validate", str(grid_small), "--set", "mobility.step_length_s=fast"]))
    assert "mobility.step_length_s" in line and "fast" in line


def test_negative_duration(grid_small):
    line = _one_error_line(runner.invoke(app, ["validate", str(grid_small), "--set", "duration_s=-5"]))
    assert ": duration_s: " in line and "greater than 0" in line


def test_missing_network_file(sf_downtown):
    result = runner.invoke(app, ["run", str(sf_downtown), "--set", "mobility.plain.nodes=gone.nod.xml"])
    line = _one_error_line(result)
    assert "mobility.plain.nodes" in line and "gone.nod.xml" in line


def test_unreadable_yaml(tmp_path):
    bad = _write(tmp_path, "name: x\n  oops: [\n")
    line = _one_error_line(runner.invoke(app, ["validate", str(bad)]))
    assert str(bad) in line and "not valid YAML" in line and "line 2" in line


def test_missing_scenario_file(tmp_path):
    line = _one_error_line(runner.invoke(app, ["run", str(tmp_path / "nope.yaml")]))
    assert "nope.yaml" in line and "file not found" in line


def test_top_level_must_be_a_mapping(tmp_path):
    line = _one_error_line(runner.invoke(app, ["validate", str(_write(tmp_path, "- a\n- b\n"))]))
    assert "mapping" in line


def test_unknown_aggregation_method_is_an_error(grid_small):
    line = _one_error_line(runner.invoke(
        app, ["validate", str(grid_small), "--set", "aggregation.method=magic"]))
    assert "aggregation.method" in line


def test_learning_states_and_its_need_for_radio(grid_small):
    ok = runner.invoke(app, ["validate", str(grid_small), "--set", "learning.enabled=false"])
    assert ok.exit_code == 0, ok.output
    assert "learning: disabled" in ok.stdout
    ok = runner.invoke(app, ["validate", str(grid_small), "--set", "learning.enabled=true"])
    assert ok.exit_code == 0 and "learning: federated trainer" in ok.stdout
    result = runner.invoke(app, ["validate", str(grid_small), "--set", "learning.enabled=true",
                                 "--set", "radio=null"])
    assert "needs a radio section" in _one_error_line(result)


def test_sampling_period_must_be_whole_steps(grid_small):
    line = _one_error_line(runner.invoke(
        app, ["validate", str(grid_small), "--set", "output.mobility_period_s=1.5"]))
    assert "mobility_period_s" in line


def test_bad_override_syntax(grid_small):
    line = _one_error_line(runner.invoke(app, ["validate", str(grid_small), "--set", "no_equals_sign"]))
    assert "--set" in line


def test_overrides_are_typed_and_paths_resolve_against_the_yaml_folder(sf_downtown):
    sc = load_scenario(sf_downtown, ["duration_s=600", "mobility.backend=traci",
                                     "mobility.demand.parking.duration_s=[10, 20]"], seed=7)
    assert sc.duration_s == 600 and sc.seed == 7 and sc.mobility.backend == "traci"
    assert sc.mobility.demand.parking.duration_s == (10.0, 20.0)
    assert sc.mobility.plain.nodes == (sf_downtown.parent / "sf_downtown/sf_downtown.nod.xml").resolve()


def test_exactly_one_network_source(grid_small, sf_downtown):
    with pytest.raises(InputError, match="exactly one network source"):
        load_scenario(grid_small, [f"mobility.net={sf_downtown}"])


def test_console_script_exit_code_and_single_line(tmp_path):
    """The installed ``cosim`` entry point (not just the Typer app) honours the contract."""
    bad = _write(tmp_path, "name: x\nduration_s: 10\nmobilty: {}\n")
    proc = subprocess.run([sys.executable, "-m", "cosim.cli", "validate", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "did you mean 'mobility'" in proc.stderr
    assert proc.stdout == ""


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("cosim ")


def test_another_methods_setting_is_named_and_compare_leaves_it_out():
    from cosim.compare import aggregation_section
    from cosim.scenario_loader import ScenarioSpec

    sf = Path(__file__).resolve().parent.parent / "scenarios" / "sf_downtown.yaml"  # sync, min_round_gap_s
    with pytest.raises(InputError, match="min_round_gap_s: not a setting of 'fedbuff'.*belongs to sync"):
        load_scenario(sf, ["aggregation.method=fedbuff"])
    spec = ScenarioSpec.read(sf, ["aggregation.round_deadline_s=90"])
    override, left = aggregation_section(spec, "fedbuff")
    assert left == ["min_round_gap_s"]
    agg = spec.plus(override).load().aggregation
    assert (agg.method, agg.round_deadline_s, agg.eval_every_rounds) == ("fedbuff", 90, 5)
    spec = ScenarioSpec.read(sf)
    override, left = aggregation_section(spec, "sync")
    assert left == [] and spec.plus(override).load().aggregation.min_round_gap_s == 20
