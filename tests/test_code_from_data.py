"""Nothing is imported or run because a data file or the working folder says so: a scenario's
module:Class policy is imported only after the rest of it validates (and must be a policy class
by signature), a run.json given to --resume never names a module to import, and figures ignore a
matplotlibrc in the working folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.scenario import EXTENSION_FIELDS

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
GRID = REPO / "scenarios" / "grid_small.yaml"
LEARNING = ["learning.enabled=true", "duration_s=30", "learning.data.synthetic.segments=5",
            "learning.data.synthetic.frames=2", "learning.data.clients=3",
            "learning.data.heldout_segments=2"]


def _sets(items: list[str]) -> list[str]:
    return [a for o in items for a in ("--set", o)]


@pytest.fixture
def policy_module(tmp_path, monkeypatch):
    """A module on sys.path whose import leaves a mark, with classes good and bad."""
    (tmp_path / "mark_policies.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        Path({str(tmp_path / "imported")!r}).write_text("yes")

        class Good:
            def select(self, view, candidates, k):
                return list(candidates)[:k]

        class SelectIsData:
            select = print  # callable, but not a method taking (view, candidates, k)

        class SelectTakesTwo:
            def select(self, view):
                return []

        class NeedsArguments:
            def __init__(self, weight):
                self.weight = weight

            def select(self, view, candidates, k):
                return []
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mark_policies", None)
    yield tmp_path / "imported"
    sys.modules.pop("mark_policies", None)


def test_a_policy_module_is_not_imported_when_the_scenario_is_otherwise_bad(policy_module, tmp_path):
    result = CliRunner().invoke(app, ["validate", str(GRID), *_sets(
        [*LEARNING, "scheduling.policy=mark_policies:Good",
         f"learning.data.root={tmp_path}", "learning.data.format=v2"])])  # no v2 data there
    assert result.exit_code == 2, result.output
    assert not policy_module.exists()


@pytest.mark.parametrize("cls", ["SelectIsData", "SelectTakesTwo", "NeedsArguments"])
def test_a_class_that_cannot_act_as_a_policy_is_refused_before_the_run(policy_module, tmp_path, cls):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(GRID), "--out", str(out), "-q", *_sets(
        [*LEARNING, f"scheduling.policy=mark_policies:{cls}"])])
    assert result.exit_code == 2, result.output
    assert "is not a usable policy: it" in result.output
    assert not out.exists() and not (tmp_path / "run.partial").exists()


def test_resume_never_imports_a_module_run_json_names(policy_module, tmp_path):
    out = tmp_path / "run"
    done = CliRunner().invoke(app, ["run", str(GRID), "--out", str(out), "-q",
                                    *_sets([*LEARNING, "learning.enabled=false"])])
    assert done.exit_code == 0, done.output
    partial = tmp_path / "run.partial"
    out.rename(partial)
    info = json.loads((partial / "run.json").read_text())
    from cosim.scenario_loader import load_scenario

    learned = load_scenario(GRID, LEARNING).model_dump(mode="json")
    info["status"] = "interrupted"
    info["scenario"]["learning"] = learned["learning"]
    info["scenario"]["scheduling"]["policy"] = "mark_policies:Good"  # a hand edit
    (partial / "run.json").write_text(json.dumps(info))
    result = CliRunner().invoke(app, ["run", "--resume", str(partial)])
    assert result.exit_code == 2, result.output
    assert "code from a module" in result.output
    assert not policy_module.exists()


@pytest.fixture(scope="module")
def resumable(tmp_path_factory) -> Path:
    """An interrupted learning run's folder (as run.json says), to copy and edit."""
    root = tmp_path_factory.mktemp("resumable")
    done = CliRunner().invoke(app, ["run", str(GRID), "--out", str(root / "run"), "-q",
                                    *_sets([*LEARNING, "learning.enabled=false"])])
    assert done.exit_code == 0, done.output
    partial = root / "run.partial"
    (root / "run").rename(partial)
    info = json.loads((partial / "run.json").read_text())
    from cosim.scenario_loader import load_scenario

    info["status"] = "interrupted"
    info["scenario"]["learning"] = load_scenario(GRID, LEARNING).model_dump(mode="json")["learning"]
    (partial / "run.json").write_text(json.dumps(info))
    return partial


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _set_field(scenario: dict, field: str, value) -> None:
    *sections, key = field.split(".")
    for section in sections:
        scenario = scenario.setdefault(section, {})
    scenario[key] = value


@pytest.mark.parametrize("field", EXTENSION_FIELDS)
def test_resume_refuses_every_module_run_json_names_before_reading_it(
        policy_module, resumable, tmp_path, field):
    """Any field where a scenario may name a module: run.json naming one is refused first
    (before the journal's model is built or the inputs are checked), nothing imported, the
    attempt left as it was."""
    partial = tmp_path / "work" / "run.partial"
    shutil.copytree(resumable, partial)
    info = json.loads((partial / "run.json").read_text())
    reference = "mark_policies:Good"
    list_field = field.endswith(".tasks")
    _set_field(info["scenario"], field, ["seg3d", reference] if list_field else reference)
    (partial / "run.json").write_text(json.dumps(info))
    before = _contents(partial)
    result = CliRunner().invoke(app, ["run", "--resume", str(partial)])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "run.json" in result.output and f"scenario.{field}" in result.output
    assert "code from a module" in result.output
    assert not policy_module.exists()
    assert _contents(partial) == before and list(partial.parent.iterdir()) == [partial]


def test_a_matplotlibrc_in_the_working_folder_changes_no_figure(tmp_path):
    """The report draws in Matplotlib's default style; a matplotlibrc where cosim runs (read by
    Matplotlib at import) changes none of its figures."""
    probe = ("import sys, hashlib, pathlib; from cosim.analysis.report import write_report; "
             "page = write_report(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])); "
             "print(hashlib.sha256(page.read_bytes()).hexdigest())")
    run = tmp_path / "run"
    done = CliRunner().invoke(app, ["run", str(GRID), "--out", str(run), "-q",
                                    "--set", "learning=null", "--set", "duration_s=20"])
    assert done.exit_code == 0, done.output
    pages = []
    for name, rc in (("plain", None), ("styled", "figure.dpi: 13\nlines.linewidth: 20\n"
                                                 "axes.facecolor: red\nfont.size: 30\n")):
        cwd = tmp_path / name
        cwd.mkdir()
        if rc:
            (cwd / "matplotlibrc").write_text(rc)
        result = subprocess.run([sys.executable, "-c", probe, str(run), str(tmp_path / f"rep-{name}")],
                                cwd=cwd, capture_output=True, text=True,
                                env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                     "HOME": str(tmp_path)})
        assert result.returncode == 0, result.stderr
        pages.append(result.stdout.strip())
    assert pages[0] == pages[1]
