"""Only a run writes its folder (and, after it, `cosim report` its report/ and `cosim export` its
export-FORMAT/): every other writer — export or report elsewhere, pretrain, data synth, a SUMO
output option — is refused with exit 2 before it writes, and never writes over a user's files."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from layers import ctrl_c_at
from typer.testing import CliRunner

from cosim.cli import app

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
GRID = REPO / "scenarios" / "grid_small.yaml"
QUICK = ["--set", "duration_s=20", "--set", "learning=null"]


def _cosim(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, Path]:
    """Two runs, and folders marked as a compare's and an onboarding's."""
    root = tmp_path_factory.mktemp("results")
    for name in ("a", "b"):
        done = _cosim("run", GRID, "--out", root / name, "-q", *QUICK)
        assert done.exit_code == 0, done.output
    for name, marker in (("cmp", "compare.json"), ("onb", "onboarding.json")):
        (root / name / "runs").mkdir(parents=True)
        (root / name / marker).write_text(json.dumps({"grid": {}}))
    (root / "lnk").symlink_to(root / "cmp" / "runs")
    return {"a": root / "a", "b": root / "b", "cmp": root / "cmp", "onb": root / "onb",
            "lnk": root / "lnk"}


# where a foreign writer aims, relative to the result folders
TARGETS = {
    "the_run_itself": lambda r: r["b"],
    "a_new_folder_in_a_run": lambda r: r["b"] / "mine",
    "deep_in_a_run": lambda r: r["b"] / "x" / "y",
    "a_compare_folder": lambda r: r["cmp"],
    "inside_a_compare": lambda r: r["cmp"] / "runs" / "new",
    "inside_an_onboarding": lambda r: r["onb"] / "out",
    "another_runs_report": lambda r: r["b"] / "report",
    "through_a_link_into_a_compare": lambda r: r["lnk"] / "x",
    "past_a_missing_folder_into_a_run": lambda r: r["b"].parent / "nothere" / ".." / "b" / "x",
}
WRITERS = {
    "export": lambda r, t: ("export", r["a"], "--format", "parquet", "--out", t),
    "report": lambda r, t: ("report", r["a"], "--out", t),
    "data_synth": lambda r, t: ("data", "synth", "--out", t, "--segments", "1", "--frames", "1"),
    "pretrain": lambda r, t: ("pretrain", "--out", t / "model.pt", "--steps", "1"),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_no_other_command_writes_into_a_result_folder(results, writer, target):
    before = {k: _digest(v) for k, v in results.items() if k != "lnk"}
    aim = TARGETS[target](results)
    if writer == "report" and target == "another_runs_report":
        aim = results["b"] / "report"
    result = _cosim(*WRITERS[writer](results, aim))
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    # a step back out of a missing folder is refused before the path is judged further
    said = "cannot step back" if target == "past_a_missing_folder_into_a_run" else \
        "folder of cosim's results"
    assert len(lines) == 1 and said in lines[0], result.output
    assert {k: _digest(v) for k, v in results.items() if k != "lnk"} == before


def test_a_runs_own_report_and_export_are_written_and_rewritten(results):
    for _ in range(2):
        assert _cosim("export", results["a"], "--format", "csv").exit_code == 0
        assert _cosim("report", results["a"]).exit_code == 0
    assert (results["a"] / "export-csv" / "schema.json").is_file()
    assert (results["a"] / "report" / "report.html").is_file()


# a user's file in a destination folder: named as the command names its own files (at the top or
# in its own sub-folders), or in a sub-folder of the user's
USERS_FILES = {
    "export": ["ch1.tex", "mobility.parquet", "run.json", "schema.json", "old/mobility.parquet"],
    "report": ["ch1.tex", "report.html", "figures/fig.png", "figures/old/coverage_map.png"],
    "data_synth": ["ch1.tex", "camera_image/10017090168044687777_6380_000_6400_000.parquet",
                   "lidar/notes.txt", "mine/camera_image/a.parquet"],
}


@pytest.mark.parametrize(("writer", "name"), [(w, n) for w, names in USERS_FILES.items()
                                              for n in names])
def test_a_users_folder_is_never_written_over(results, tmp_path, writer, name):
    mine = tmp_path / "thesis"
    (mine / name).parent.mkdir(parents=True, exist_ok=True)
    (mine / name).write_text("mine")
    result = _cosim(*WRITERS[writer](results, mine))
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "cosim did not write" in lines[0] and name in lines[0], lines
    assert _digest(mine) == {name: hashlib.sha256(b"mine").hexdigest()}


@pytest.mark.parametrize("writer", ["export", "report", "data_synth"])
def test_a_folder_cosim_filled_is_filled_again_unless_a_user_changed_it(results, tmp_path, writer):
    out = tmp_path / "made"
    for _ in range(2):
        result = _cosim(*WRITERS[writer](results, out))
        assert result.exit_code == 0, result.output
        assert (out / ".cosim-output.json").is_file()  # an export's run.json included
    edited = sorted(p for p in out.rglob("*") if p.is_file() and p.name != ".cosim-output.json")[0]
    edited.write_bytes(edited.read_bytes() + b"mine")
    before = _digest(out)
    result = _cosim(*WRITERS[writer](results, out))
    assert result.exit_code == 2, result.output
    assert _digest(out) == before


@pytest.mark.parametrize(("entry", "name"), [("export-csv", "mine.csv"),
                                             ("export-csv", "notes/mine.csv"),
                                             ("report", "figures/mine.png"),
                                             ("report", "mine.html")])
@pytest.mark.parametrize("written_before", [True, False])  # False: an entry without a manifest
def test_a_users_file_in_a_runs_own_report_or_export_is_kept(results, entry, name, written_before):
    run = results["a"]
    command = ("export", run, "--format", "csv") if entry == "export-csv" else ("report", run)
    assert _cosim(*command).exit_code == 0
    if not written_before:
        (run / entry / ".cosim-output.json").unlink()
    (run / entry / name).parent.mkdir(exist_ok=True)
    (run / entry / name).write_text("mine")
    before = _digest(run)
    result = _cosim(*command)
    assert result.exit_code == 2 and "cosim did not write" in result.output, result.output
    assert _digest(run) == before
    top = run / entry / Path(name).parts[0]
    shutil.rmtree(top) if top.is_dir() else top.unlink()
    result = _cosim(*command)
    assert result.exit_code == 0, result.output


def test_pretrain_replaces_a_file_only_when_asked(tmp_path):
    mine = tmp_path / "model.pt"
    mine.write_bytes(b"my weights")
    result = _cosim("pretrain", "--out", mine, "--steps", "1", "-q")
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert mine.read_bytes() == b"my weights"
    # asked, it replaces an earlier checkpoint only, never a user's other file
    refused = _cosim("pretrain", "--out", mine, "--steps", "1", "-q", "--overwrite")
    assert refused.exit_code == 2 and "not a torch checkpoint" in refused.output, refused.output
    assert mine.read_bytes() == b"my weights"
    import torch

    torch.save({"w": torch.zeros(1)}, mine)
    replaced = _cosim("pretrain", "--out", mine, "--steps", "1", "-q", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert "visual.proj" in torch.load(mine, weights_only=True)


# the last three: synonyms and writers that SUMO's own option list names (--save-template)
@pytest.mark.parametrize("option", ["--fcd-output", "--tripinfo-output", "--summary-output",
                                    "--netstate-dump", "--error-log", "--save-configuration",
                                    "--summary", "--tripinfo", "--save-schema"])
@pytest.mark.parametrize("aim", ["another_run", "this_run", "this_runs_staging",
                                 "this_runs_lock"])
def test_sumo_output_options_never_write_into_result_folders(results, tmp_path, option, aim):
    """Nor into the lock file beside the run, which cosim removes when the run ends."""
    out = tmp_path / "r"
    path = {"another_run": results["b"] / "fcd.xml", "this_run": out / "fcd.xml",
            "this_runs_staging": tmp_path / "r.partial" / "fcd.xml",
            "this_runs_lock": tmp_path / ".r.lock"}[aim]
    before = _digest(results["b"])
    result = _cosim("run", GRID, "--out", out, "-q", *QUICK,
                    "--set", f"mobility.sumo_options={option} {path}")
    assert result.exit_code == 2, result.output
    assert "mobility.sumo_options" in result.output and option in result.output
    assert not out.exists() and not (tmp_path / "r.partial").exists()
    assert _digest(results["b"]) == before


def test_a_sumo_output_outside_result_folders_is_written(tmp_path):
    fcd = tmp_path / "mine" / "fcd.xml"
    fcd.parent.mkdir()
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                    "--set", f"mobility.sumo_options=--fcd-output {fcd}")
    assert result.exit_code == 0, result.output
    assert fcd.is_file() and fcd.stat().st_size > 0


@pytest.mark.parametrize("option", ["--fcd-output", "--summary-output", "--error-log"])
def test_a_sumo_output_never_replaces_a_users_file(tmp_path, option):
    """Not even with --overwrite: that replaces only what SUMO wrote."""
    mine = tmp_path / "mine" / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("precious")
    args = ["run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
            "--set", f"mobility.sumo_options={option} {mine}"]
    result = _cosim(*args)
    assert result.exit_code == 2 and "--overwrite" in result.output, result.output
    assert mine.read_text() == "precious" and not (tmp_path / "r").exists()
    result = _cosim(*args, "--overwrite")
    assert result.exit_code == 2 and "move it away" in result.output, result.output
    assert mine.read_text() == "precious" and not (tmp_path / "r").exists()


@pytest.mark.parametrize("option", ["--fcd-output", "--summary-output", "--error-log"])
def test_overwrite_replaces_the_sumo_outputs_an_earlier_run_wrote(tmp_path, option):
    """The run at --out recorded them (any format); SUMO's XML outputs say so themselves, so
    another run may replace them too; once a user edits a file, it is theirs."""
    out = tmp_path / "o" / {"--fcd-output": "out.xml", "--summary-output": "out.csv",
                            "--error-log": "out.log"}[option]  # SUMO writes CSV for .csv
    out.parent.mkdir()
    args = ["run", GRID, "-q", *QUICK, "--set", f"mobility.sumo_options={option} {out}"]
    assert _cosim(*args, "--out", tmp_path / "r").exit_code == 0
    written = out.read_bytes()
    assert _cosim(*args, "--out", tmp_path / "r", "--overwrite").exit_code == 0
    again = _cosim(*args, "--out", tmp_path / "r2", "--overwrite")
    assert again.exit_code == (0 if option == "--fcd-output" else 2), again.output
    out.write_bytes(b"my notes\n" + written)
    edited = _cosim(*args, "--out", tmp_path / "r", "--overwrite")
    assert edited.exit_code == 2 and "move it away" in edited.output, edited.output
    assert out.read_bytes().startswith(b"my notes")


# a file SUMO cannot create: refused before the run's folder, not when SUMO opens it
UNWRITABLE = {
    "no_such_folder": lambda tmp: tmp / "nofolder" / "f.xml",
    "a_file_as_folder": lambda tmp: tmp / "mine.txt" / "f.xml",
    "an_existing_folder": lambda tmp: tmp / "afolder",
    "a_dangling_link": lambda tmp: tmp / "dangling.xml",
    "a_device": lambda tmp: Path("/dev/full"),  # (/dev/null and NUL are SUMO's no-output)
    "a_kernel_folder": lambda tmp: Path("/proc/cosim-f.xml"),
    "a_link_to_a_file": lambda tmp: tmp / "link.xml",
}


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("option", ["--fcd-output", "--tripinfo-output", "--error-log"])
@pytest.mark.parametrize("aim", sorted(UNWRITABLE))
def test_a_sumo_output_that_cannot_be_created_is_refused_before_the_run(tmp_path, aim, option,
                                                                         overwrite):
    (tmp_path / "mine.txt").write_text("mine")
    (tmp_path / "afolder").mkdir()
    (tmp_path / "dangling.xml").symlink_to(tmp_path / "nowhere")
    (tmp_path / "link.xml").symlink_to(tmp_path / "mine.txt")
    path = UNWRITABLE[aim](tmp_path)
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                    "--set", f"mobility.sumo_options=[{option},{path}]",
                    *(["--overwrite"] if overwrite else []))
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "mobility.sumo_options" in lines[0] and option in lines[0], lines
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.partial").exists()
    assert (tmp_path / "mine.txt").read_text() == "mine" and not any((tmp_path / "afolder").iterdir())


@pytest.mark.parametrize("nothing", ["/dev/null", "NUL"])
def test_an_output_sumo_discards_is_no_file(tmp_path, monkeypatch, nothing):
    monkeypatch.chdir(tmp_path)
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                    "--set", f"mobility.sumo_options=--fcd-output {nothing}")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "run.json").read_text())["sumo_outputs"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


@pytest.mark.parametrize("option", ["--step-length 0.5", "--seed=3", "-n other.net.xml",
                                    "--log mine.log", "--end 10", "--output-prefix p_", "--random"])
def test_sumo_options_cosim_sets_are_refused(tmp_path, option):
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                    "--set", f"mobility.sumo_options={option}")
    assert result.exit_code == 2, result.output
    assert "cosim's to set" in result.output and not (tmp_path / "r").exists()


@pytest.mark.parametrize("option", ["--save-configuration x.sumocfg", "-C x.sumocfg",
                                    "--save-template x.xml", "--help", "-?", "--version", "-V"])
def test_sumo_options_that_stop_sumo_are_refused(tmp_path, option):
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                    "--set", f"mobility.sumo_options={option}")
    assert result.exit_code == 2, result.output
    assert "makes SUMO stop" in result.output and not (tmp_path / "r").exists()


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_destination_nothing_can_be_written_in_is_bad_input(results, writer):
    """/proc takes no new file, even for root: exit 2 and one line, not an internal error."""
    result = _cosim(*WRITERS[writer](results, Path("/proc/cosim-out")))
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "cannot write in /proc" in lines[0], result.output


STUDIES = {  # checked before any run: the scenario need not be small
    "compare": ("compare", GRID, "--set", "learning.enabled=true", "--policies", "random",
                "--seeds", "0", "-q", "--out"),
    "onboarding": ("onboarding", GRID, "--set", "learning.enabled=true", "-q", "--out"),
}


@pytest.mark.parametrize("target", sorted(set(TARGETS) - {"a_compare_folder"}))
@pytest.mark.parametrize("study", sorted(STUDIES))
def test_a_study_never_writes_into_a_result_folder(results, study, target):
    before = {k: _digest(v) for k, v in results.items()}
    result = _cosim(*STUDIES[study], TARGETS[target](results))
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "--out" in lines[0], result.output
    assert "folder of cosim's results" in lines[0] or f"not a cosim {study} folder" in lines[0] \
        or target == "past_a_missing_folder_into_a_run" and "cannot step back" in lines[0], lines
    assert {k: _digest(v) for k, v in results.items()} == before


@pytest.mark.parametrize("name", ["table.csv", "fig4_gated.png", "runs/notes.txt", "compare.json",
                                  "onboarding.json"])
def test_onboarding_never_writes_over_a_users_folder(tmp_path, name):
    """Also a user's own onboarding.json (any object, or one with some of the study's keys)."""
    for text in ("{}", '{"title": "my notes", "status": "complete", "seeds": [0]}'):
        mine = tmp_path / "thesis"
        shutil.rmtree(mine, ignore_errors=True)
        (mine / name).parent.mkdir(parents=True)
        (mine / name).write_text(text)
        result = _cosim(*STUDIES["onboarding"], mine)
        assert result.exit_code == 2 and "not a cosim onboarding folder" in result.output, result.output
        assert _digest(mine) == {name: hashlib.sha256(text.encode()).hexdigest()}


@pytest.mark.parametrize("inside", ["b", "cmp", "onb", "lnk"])
def test_a_run_is_not_written_inside_a_result_folder(results, inside):
    before = {k: _digest(v) for k, v in results.items() if k != "lnk"}
    aim = results[inside] / "runs" / "sub" if inside != "lnk" else results["lnk"] / "sub"
    result = _cosim("run", GRID, "--out", aim, "-q", *QUICK)
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "folder of cosim's results" in lines[0], result.output
    assert {k: _digest(v) for k, v in results.items() if k != "lnk"} == before
    from cosim import api
    from cosim.errors import InputError

    with pytest.raises(InputError, match="folder of cosim's results"):
        api.run(GRID, out=aim, overrides=["duration_s=20", "learning=null"])
    assert {k: _digest(v) for k, v in results.items() if k != "lnk"} == before


_StopAt = ctrl_c_at(10.0)


def _interrupted(out: Path, *sets: str) -> Path:
    from cosim.runner import run_scenario
    from cosim.scenario_loader import load_scenario

    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario(GRID, ["duration_s=20", "learning=null", *sets]), source=GRID,
                     out=out, quiet=True, extra_layers=[_StopAt])
    return out.with_name(out.name + ".partial")


def test_a_resumed_run_rewrites_its_own_sumo_output(tmp_path):
    fcd = tmp_path / "fcd.xml"
    partial = _interrupted(tmp_path / "r", f"mobility.sumo_options=--fcd-output {fcd}")
    recorded = json.loads((partial / "run.json").read_text())["sumo_outputs"]
    assert recorded == {str(fcd): hashlib.sha256(fcd.read_bytes()).hexdigest()}
    result = _cosim("run", "--resume", tmp_path / "r", "-q")
    assert result.exit_code == 0, result.output
    assert "</fcd-export>" in fcd.read_text()


def test_a_resume_never_replaces_a_file_its_run_did_not_write(tmp_path):
    """Neither a user's file that run.json's options were edited to name, nor the run's own
    output once the user has changed it."""
    precious = tmp_path / "precious.txt"
    precious.write_text("PRECIOUS")
    partial = _interrupted(tmp_path / "r")
    info = json.loads((partial / "run.json").read_text())
    info["scenario"]["mobility"]["sumo_options"] = ["--fcd-output", str(precious)]
    (partial / "run.json").write_text(json.dumps(info))
    result = _cosim("run", "--resume", tmp_path / "r", "-q")
    assert result.exit_code == 2 and "mobility.sumo_options" in result.output, result.output
    assert precious.read_text() == "PRECIOUS" and partial.is_dir()
    result = _cosim("run", "--resume", tmp_path / "r", "-q", "--overwrite")
    assert result.exit_code == 2 and "mobility.sumo_options" in result.output, result.output
    assert precious.read_text() == "PRECIOUS" and partial.is_dir()

    fcd = tmp_path / "fcd.xml"
    partial = _interrupted(tmp_path / "s", f"mobility.sumo_options=--fcd-output {fcd}")
    fcd.write_text("MY EDIT")
    result = _cosim("run", "--resume", tmp_path / "s", "-q")
    assert result.exit_code == 2 and "mobility.sumo_options" in result.output, result.output
    assert fcd.read_text() == "MY EDIT" and partial.is_dir()


def test_an_export_folder_is_no_run_and_takes_only_its_own_export(results, tmp_path):
    ex = tmp_path / "ex"
    for _ in range(2):  # written, then written again by the same export
        done = _cosim("export", results["a"], "--format", "csv", "--out", ex)
        assert done.exit_code == 0, done.output
    before = _digest(ex)
    for args in (("export", results["b"], "--format", "csv", "--out", ex),
                 ("export", results["a"], "--format", "parquet", "--out", ex),
                 ("report", results["a"], "--out", ex)):
        refused = _cosim(*args)
        assert refused.exit_code == 2 and "not this" in refused.output, refused.output
    assert _digest(ex) == before
    assert "complete" not in _cosim("status", ex).output
    assert _cosim("report", ex, "--out", tmp_path / "rep").exit_code == 2
    for args in (("run", GRID, "--out", ex / "sub", "-q", *QUICK),
                 ("compare", GRID, "--out", ex / "cmp", "-q", "--set", "duration_s=20"),
                 ("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                  "--set", f"mobility.sumo_options=--fcd-output {ex / 'fcd.xml'}")):
        inside = _cosim(*args)
        assert inside.exit_code == 2 and "folder of cosim's results" in inside.output, inside.output
    assert _digest(ex) == before
    (ex / "mine.txt").write_text("mine")
    mine = _cosim("export", results["a"], "--format", "csv", "--out", ex)
    assert mine.exit_code == 2 and "did not write: mine.txt" in mine.output, mine.output


def test_a_resume_names_run_json_for_its_bad_values(tmp_path):
    partial = _interrupted(tmp_path / "r")
    info = json.loads((partial / "run.json").read_text())
    info["scenario"]["duration_s"] = -5
    (partial / "run.json").write_text(json.dumps(info))
    result = _cosim("run", "--resume", tmp_path / "r", "-q")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {partial / 'run.json'}: duration_s"), result.output


def test_a_sumo_output_through_a_linked_folder_into_results_is_refused(results, tmp_path):
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                    "--set", f"mobility.sumo_options=--fcd-output {results['lnk'] / 'fcd.xml'}")
    assert result.exit_code == 2 and "folder of cosim's results" in result.output, result.output
    assert not (results["cmp"] / "runs" / "fcd.xml").exists()


def test_a_users_file_named_as_a_lock_is_never_removed(tmp_path):
    lock = tmp_path / ".r.lock"
    lock.write_text("mydata")
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK)
    assert result.exit_code == 2 and ".r.lock" in result.output, result.output
    assert lock.read_text() == "mydata" and not (tmp_path / "r.partial").exists()
    lock.write_text("")  # an empty one is what a run killed before its first write leaves
    assert _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK).exit_code == 0


def test_outputs_an_additional_file_declares_follow_the_output_rules(tmp_path):
    """An additional file's edgeData names a file SUMO writes: never a user's file without
    --overwrite, and `cosim validate` (SUMO's loader check) writes none of them."""
    precious = tmp_path / "precious.txt"
    precious.write_text("PRECIOUS")
    add = tmp_path / "add.xml"
    add.write_text('<additional>\n <edgeData id="e1" file="precious.txt" begin="0" end="20" '
                   'period="5"/>\n</additional>\n')
    sets = [*QUICK, "--set", f"mobility.additional=[{add}]"]
    assert _cosim("validate", GRID, *sets).exit_code == 0
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *sets)
    assert result.exit_code == 2 and "mobility.additional" in result.output, result.output
    assert precious.read_text() == "PRECIOUS" and not (tmp_path / "r.partial").exists()
    add.write_text(add.read_text().replace("precious.txt", "edges.xml"))
    assert _cosim("validate", GRID, *sets).exit_code == 0
    assert not (tmp_path / "edges.xml").exists()  # the loader check wrote it aside
    assert _cosim("run", GRID, "--out", tmp_path / "r", "-q", *sets).exit_code == 0
    assert "<meandata" in (tmp_path / "edges.xml").read_text()


def test_a_networks_traffic_light_detector_file_follows_the_output_rules(tmp_path):
    """An actuated traffic light's ``<param key="file">`` in the network names the file its
    detectors write: never a user's file, and `cosim validate` (SUMO's loader check, on a copy
    of the network) writes none of them."""
    import subprocess
    import xml.etree.ElementTree as ET

    from cosim.mobility.sumo_tools import binary

    net = tmp_path / "n.net.xml"
    subprocess.run([binary("netgenerate"), "--grid", "--grid.number", "4", "--grid.length", "200",
                    "--default.lanenumber", "1", "--no-turnarounds", "true", "-j", "traffic_light",
                    "--tls.default-type", "actuated", "-o", str(net)], check=True,
                   capture_output=True)
    tree = ET.parse(net)
    for tls in tree.getroot().iter("tlLogic"):
        ET.SubElement(tls, "param", key="file", value="precious.txt")
    tree.write(net)
    precious = tmp_path / "precious.txt"
    precious.write_text("PRECIOUS")
    sets = [*QUICK, "--set", f"mobility.net={net}", "--set", "mobility.netgenerate=null"]
    assert _cosim("validate", GRID, *sets).exit_code == 0
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *sets)
    assert result.exit_code == 2 and "mobility.net" in result.output, result.output
    assert "tlLogic" in result.output and precious.read_text() == "PRECIOUS"
    net.write_text(net.read_text().replace("precious.txt", "detectors.xml"))
    assert _cosim("validate", GRID, *sets).exit_code == 0
    assert not (tmp_path / "detectors.xml").exists()  # the loader check wrote it aside
    assert _cosim("run", GRID, "--out", tmp_path / "r", "-q", *sets).exit_code == 0
    assert "<interval" in (tmp_path / "detectors.xml").read_text()
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert str(tmp_path / "detectors.xml") in info["sumo_outputs"]


def test_states_sumo_names_itself_are_refused_before_it_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                    "--set", "mobility.sumo_options=--save-state.times 10")
    assert result.exit_code == 2 and "save-state.files" in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def _sumocfg_scenario(folder: Path, body: str) -> list[str]:
    """``--set`` arguments that run GRID from ``folder/s.sumocfg`` (``body`` inside its root),
    beside a 4 x 4 grid network ``n.net.xml`` and a route file ``r.rou.xml``."""
    import subprocess

    from cosim.mobility.sumo_tools import binary

    subprocess.run([binary("netgenerate"), "--grid", "--grid.number", "4", "--grid.length", "200",
                    "--default.lanenumber", "1", "--no-turnarounds", "true",
                    "-o", str(folder / "n.net.xml")], check=True, capture_output=True)
    (folder / "r.rou.xml").write_text(
        '<routes><vType id="car"/><flow id="f" type="car" begin="0" end="100" period="4" '
        'from="A0A1" to="A1A2"/></routes>\n')
    (folder / "s.sumocfg").write_text(f"<configuration>{body}</configuration>\n")
    return [*QUICK, "--set", f"mobility.sumocfg={folder / 's.sumocfg'}",
            "--set", "mobility.netgenerate=null", "--set", "mobility.demand=null"]


def test_a_sumocfg_is_read_as_sumo_reads_it(tmp_path):
    """``v=`` attributes, element text and option synonyms name the same files as ``value=``:
    an output over a user's file is refused by run, and validate writes no output at all."""
    precious = tmp_path / "precious.xml"
    precious.write_text("PRECIOUS")
    (tmp_path / "ed.add.xml").write_text('<additional><edgeData id="e" file="ed.xml"/>'
                                         "</additional>\n")  # an interval from begin to end
    sets = _sumocfg_scenario(tmp_path, '<input><net v="n.net.xml"/><routes>r.rou.xml</routes>'
                             '<additional value="ed.add.xml"/></input>'
                             '<output><fcd-output v="precious.xml"/></output>')
    assert _cosim("validate", GRID, *sets).exit_code == 0
    assert precious.read_text() == "PRECIOUS" and not (tmp_path / "ed.xml").exists()
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *sets)
    assert result.exit_code == 2 and "mobility.sumocfg" in result.output, result.output
    assert result.output.startswith(f"error: {GRID}: ") and "<fcd-output>" in result.output
    assert precious.read_text() == "PRECIOUS" and not (tmp_path / "r.partial").exists()


def test_an_edited_route_a_sumocfg_names_is_loaded_again(tmp_path):
    sets = _sumocfg_scenario(tmp_path, '<input><net-file value="n.net.xml"/>'
                             '<route-files value="r.rou.xml"/></input>')
    routes = tmp_path / "r.rou.xml"
    _refused_once_edited(tmp_path, sets, lambda: routes.write_text(
        routes.read_text().replace('to="A1A2"', 'to="ZZZZ"')), "ZZZZ")


def _refused_once_edited(tmp_path: Path, sets: list[str], edit, says: str) -> None:
    """Validate passes (the loader check cached), then ``edit`` breaks a file SUMO reads:
    validate and run both refuse, run before its folder."""
    assert _cosim("validate", GRID, *sets).exit_code == 0
    edit()
    for command in (["validate"], ["run", "--out", tmp_path / "r", "-q"]):
        result = _cosim(command[0], GRID, *command[1:], *sets)
        assert result.exit_code == 2 and says in result.output, result.output
    assert not (tmp_path / "r.partial").exists()


def test_an_edited_file_an_additional_element_reads_is_loaded_again(tmp_path):
    steps = tmp_path / "vss_steps.xml"
    steps.write_text('<vss><step time="0" speed="10"/></vss>\n')
    add = tmp_path / "vss.add.xml"
    add.write_text('<additional><variableSpeedSign id="v" lanes="A0A1_0" file="vss_steps.xml"/>'
                   "</additional>\n")
    sets = [*QUICK, "--set", f"mobility.additional=[{add}]"]
    _refused_once_edited(tmp_path, sets, lambda: steps.write_text(
        '<vss><step time="0" speed="10"'), "vss_steps.xml")  # cut short


def test_an_edited_file_a_sumo_option_reads_is_loaded_again(tmp_path):
    import os

    weights = tmp_path / "w.xml"
    weights.write_text('<meandata><interval begin="0" end="100"><edge id="A0A1" traveltime="9"/>'
                       "</interval></meandata>\n")
    sets = [*QUICK, "--set", f"mobility.sumo_options=--weight-files {weights}"]
    assert _cosim("validate", GRID, *sets).exit_code == 0
    weights.write_text('<meandata><interval begin="0" end="100"><edge id="A0A1"')  # cut short
    result = _cosim("validate", GRID, *sets)
    assert result.exit_code == 2 and "w.xml" in result.output, result.output
    weights.unlink()
    os.mkfifo(weights)
    result = _cosim("validate", GRID, *sets)
    assert result.exit_code == 2 and "not a regular file" in result.output, result.output


def test_validate_refuses_a_sumo_output_into_a_folder_of_results(results, tmp_path):
    result = _cosim("validate", GRID, *QUICK, "--set",
                    f"mobility.sumo_options=--fcd-output {results['a'] / 'fcd.xml'}")
    assert result.exit_code == 2 and "folder of cosim's results" in result.output, result.output
    assert result.output.startswith(f"error: {GRID}: mobility.sumo_options: ")


def test_a_vehicle_type_that_equips_the_ssm_device_is_refused_before_sumo_runs(tmp_path,
                                                                               monkeypatch):
    """The SSM device writes ssm_<vehicle>.xml into the working folder: a type in an additional
    file that asks for it is refused by validate and run, and SUMO writes nothing."""
    monkeypatch.chdir(tmp_path)
    add = tmp_path / "types.add.xml"
    add.write_text('<additional><vType id="ssm"><param key="has.ssm.device" value="true"/>'
                   '</vType></additional>\n')
    sets = [*QUICK, "--set", f"mobility.additional=[{add}]"]
    for command in (["validate", GRID], ["run", GRID, "--out", tmp_path / "r", "-q"]):
        result = _cosim(*command, *sets)
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert "mobility.additional" in result.output and "has.ssm.device" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["types.add.xml"]


def test_a_study_refuses_sumo_outputs_before_its_folder(tmp_path):
    result = _cosim("compare", GRID, "--out", tmp_path / "cmp", "-q", "--seeds", "0,1",
                    "--set", "duration_s=20", "--set", "learning.enabled=true",
                    "--set", f"mobility.sumo_options=--fcd-output {tmp_path / 'fcd.xml'}")
    assert result.exit_code == 2 and "mobility.sumo_options" in result.output, result.output
    assert not (tmp_path / "cmp").exists() and not (tmp_path / "fcd.xml").exists()


def test_data_synth_regenerates_only_its_own_settings(tmp_path):
    args = ["data", "synth", "--out", tmp_path / "ds", "--segments", "2", "--frames", "1"]
    assert _cosim(*args).exit_code == 0
    assert _cosim(*args).exit_code == 0  # the same set again
    before = _digest(tmp_path / "ds")
    other = _cosim(*args[:-1], "2", "--seed", "7")
    assert other.exit_code == 2 and "not this data synth's" in other.output, other.output
    assert _digest(tmp_path / "ds") == before
    manifest = tmp_path / "ds" / ".cosim-output.json"  # one that does not say its settings
    manifest.write_text(json.dumps({k: v for k, v in json.loads(manifest.read_text()).items()
                                    if k != "of"}))
    assert _cosim(*args[:-1], "2", "--seed", "7").exit_code == 2


KILLED_AT_10_S = """
import os, sys
from pathlib import Path
from cosim.runner import run_scenario
from cosim.scenario_loader import load_scenario


class Kill:
    name = "kill"

    def __init__(self, engine):
        pass

    def attach(self, engine):
        def kill():
            yield engine.env.timeout(10.0)
            os._exit(9)  # as SIGKILL: no finally, no final run.json

        engine.env.process(kill())


grid, out, fcd = sys.argv[1:]
run_scenario(load_scenario(Path(grid), ["duration_s=20", "learning=null",
                                        f"mobility.sumo_options=--fcd-output {fcd}"]),
             source=Path(grid), out=Path(out), quiet=True, extra_layers=[Kill])
"""


def test_a_killed_run_resumes_over_its_own_sumo_output(tmp_path):
    import subprocess
    import sys

    fcd = tmp_path / "fcd.xml"
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_10_S, str(GRID), str(tmp_path / "k"),
                             str(fcd)], capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    info = json.loads((tmp_path / "k.partial" / "run.json").read_text())
    assert info["status"] == "running" and str(fcd) in info["sumo_outputs"]
    kept = tmp_path / "kept"
    shutil.copytree(tmp_path / "k.partial", kept)
    result = _cosim("run", "--resume", tmp_path / "k", "-q")
    assert result.exit_code == 0, result.output
    assert "</fcd-export>" in fcd.read_text()
    # the same killed attempt again, its output since edited by hand: never replaced
    shutil.copytree(kept, tmp_path / "k2.partial")
    fcd.write_text("MY NOTES")
    result = _cosim("run", "--resume", tmp_path / "k2", "-q")
    assert result.exit_code == 2 and "--fcd-output" in result.output, result.output
    assert fcd.read_text() == "MY NOTES"


DECLARED = {  # an additional file naming a user's file as the output SUMO writes
    "namespaced_edge_data": '<additional xmlns="http://sumo.dlr.de/xsd/additional_file.xsd">'
                            '<edgeData id="e1" file="{mine}" period="5"/></additional>',
    "timed_event": '<additional><timedEvent type="SaveTLSStates" source="A1" dest="{mine}"/>'
                   '</additional>',
    "calibrator_from_the_working_folder": '<additional><calibrator id="c1" edge="A0A1" pos="10" '
                                          'output="{name}" period="10"/></additional>',
}


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("case", sorted(DECLARED))
def test_every_kind_of_declared_output_is_checked(tmp_path, monkeypatch, case, gzipped):
    import gzip

    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine.txt"
    mine.write_text("MINE")
    (tmp_path / "adds").mkdir()
    add = tmp_path / "adds" / ("a.add.xml.gz" if gzipped else "a.add.xml")
    text = DECLARED[case].format(mine=mine, name=mine.name).encode()
    add.write_bytes(gzip.compress(text) if gzipped else text)
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                    "--set", f"mobility.additional=[{add}]")
    assert result.exit_code == 2 and "mobility.additional" in result.output, result.output
    assert str(mine) in result.output and mine.read_text() == "MINE"


def test_a_plain_gzipped_additional_file_still_runs(tmp_path):
    import gzip

    add = tmp_path / "a.add.xml.gz"
    add.write_bytes(gzip.compress(b'<additional><poi id="p" x="1" y="1"/></additional>'))
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                    "--set", f"mobility.additional=[{add}]")
    assert result.exit_code == 0, result.output


def test_a_sumo_output_that_is_a_hard_link_is_refused_even_with_overwrite(results, tmp_path):
    link = tmp_path / "hard.xml"
    link.hardlink_to(results["a"] / "mobility.parquet")
    before = _digest(results["a"])
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK, "--overwrite",
                    "--set", f"mobility.sumo_options=--fcd-output {link}")
    assert result.exit_code == 2 and "hard link" in result.output, result.output
    assert _digest(results["a"]) == before


@pytest.mark.parametrize("option", ["--output-suffix _2", "--device.ssm.probability 1",
                                    "--device.toc.file x.xml"])
def test_options_that_rename_or_add_outputs_are_refused(tmp_path, option):
    result = _cosim("run", GRID, "--out", tmp_path / "r", "-q", *QUICK,
                    "--set", f"mobility.sumo_options={option}")
    assert result.exit_code == 2 and "mobility.sumo_options" in result.output, result.output
    assert not (tmp_path / "r.partial").exists()


def test_dot_dot_out_of_a_run_folder_is_outside_it(results, tmp_path, monkeypatch):
    monkeypatch.chdir(results["a"])
    result = _cosim("run", GRID, "--out", Path("..") / ".." / tmp_path.name / "r", "-q", *QUICK)
    assert result.exit_code == 0, result.output


def test_a_study_with_a_bad_input_leaves_no_folder(tmp_path):
    add = tmp_path / "broken.add.xml"
    add.write_text('<additional><busStop id="b" lane="nowhere_0" startPos="0" endPos="10"/>'
                   '</additional>')  # well-formed: SUMO's loader refuses it
    result = _cosim("compare", GRID, "--out", tmp_path / "cmp", "-q", "--seeds", "0",
                    "--set", "duration_s=20", "--set", "learning.enabled=true",
                    "--set", f"mobility.additional=[{add}]")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_data_synth_is_not_taken_for_a_data_set(tmp_path, how):
    """Its manifest says incomplete from the start: `data check` and a run refuse the folder in
    one line; the same command again finishes it."""
    out = tmp_path / "ds"
    args = ["data", "synth", "--out", str(out), "--segments", "60", "--frames", "4"]
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((out / "lidar").glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(how)
    assert proc.wait(60) != 0
    assert len(list((out / "camera_image").glob("*.parquet"))) < 60
    check = _cosim("data", "check", out)
    assert check.exit_code == 2 and "unfinished `cosim data synth`" in check.output, check.output
    run = _cosim("run", GRID, "--out", tmp_path / "r", "-q", "--set", "duration_s=10",
                 "--set", "learning.enabled=true", "--set", f"learning.data.root={out}")
    assert run.exit_code == 2 and "unfinished" in run.output and not (tmp_path / "r").exists()
    # its files are cosim's, even those a kill kept its mark from listing: the same command
    # finishes the set
    again = _cosim(*args)
    assert again.exit_code == 0, again.output
    assert _cosim("data", "check", out).exit_code == 0


def test_a_report_killed_while_it_drew_is_finished_by_the_same_command(tmp_path):
    """A report killed part way leaves figures its mark could not list yet, the mark saying
    incomplete: the report runs again there, and --overwrite can replace the run."""
    from cosim.destinations import write_manifest

    run = tmp_path / "r"
    assert _cosim("run", GRID, "--out", run, "-q", *QUICK).exit_code == 0
    (run / "report" / "figures").mkdir(parents=True)  # as the report left it when killed
    write_manifest(run / "report", "report", str(run.resolve()), status="incomplete")
    (run / "report" / "figures" / "link_windows.png").write_bytes(b"\x89PNG half")
    result = _cosim("report", run)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "report" / ".cosim-output.json").read_text())["status"] == "complete"
    assert _cosim("run", GRID, "--out", run, "-q", *QUICK, "--overwrite").exit_code == 0


def test_a_users_file_in_a_killed_reports_folder_stays_theirs(tmp_path):
    """A file dropped into a killed report's folder is not one the report writes again: finishing
    the report does not list it as cosim's, so replacing the run is refused, naming it."""
    from cosim.destinations import write_manifest

    run = tmp_path / "r"
    assert _cosim("run", GRID, "--out", run, "-q", *QUICK).exit_code == 0
    (run / "report").mkdir()
    write_manifest(run / "report", "report", str(run.resolve()), status="incomplete")
    (run / "report" / "notes.txt").write_text("mine")
    assert _cosim("report", run).exit_code == 0
    assert "notes.txt" not in json.loads((run / "report" / ".cosim-output.json").read_text())["files"]
    again = _cosim("run", GRID, "--out", run, "-q", *QUICK, "--overwrite")
    assert again.exit_code == 2 and "notes.txt" in again.output, again.output
    assert (run / "report" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("command", [["report"], ["export", "--format", "csv"]])
def test_an_output_folder_that_is_a_link_is_refused(tmp_path, command):
    """A run's report/ or export-csv/ made a link to a user's folder: writing through it would
    replace the user's files, so the command refuses in one line and changes nothing there."""
    run = tmp_path / "r"
    assert _cosim("run", GRID, "--out", run, "-q", *QUICK).exit_code == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("mine")
    (run / ("report" if command == ["report"] else "export-csv")).symlink_to(mine)
    result = _cosim(command[0], run, *command[1:])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "symbolic link" in lines[0], result.output
    assert sorted(p.name for p in mine.iterdir()) == ["report.html"]
    assert (mine / "report.html").read_text() == "mine"


def test_a_users_page_in_an_unmarked_report_folder_is_not_replaced(tmp_path):
    """report/ without cosim's mark (as a report from before marks left it) holding a
    report.html that is not one cosim wrote: the report refuses, naming it, and it stays."""
    run = tmp_path / "r"
    assert _cosim("run", GRID, "--out", run, "-q", *QUICK).exit_code == 0
    (run / "report").mkdir()
    (run / "report" / "report.html").write_text("<html>my notes</html>")
    result = _cosim("report", run)
    assert result.exit_code == 2 and "report.html" in result.output, result.output
    assert (run / "report" / "report.html").read_text() == "<html>my notes</html>"


def test_a_marked_report_whose_page_a_user_rewrote_keeps_its_run(tmp_path):
    """The report's mark lists its page's SHA-256: a page the user rewrote afterwards is theirs,
    so --overwrite refuses to replace the run that holds it."""
    run = tmp_path / "r"
    assert _cosim("run", GRID, "--out", run, "-q", *QUICK).exit_code == 0
    assert _cosim("report", run).exit_code == 0
    page = run / "report" / "report.html"
    page.write_text(page.read_text().replace("</body>", "<p>my annotations</p></body>"))
    again = _cosim("run", GRID, "--out", run, "-q", *QUICK, "--overwrite")
    assert again.exit_code == 2 and "report/report.html" in again.output, again.output
    assert "my annotations" in page.read_text()
