"""A compare's results depend only on what compare.json pins: the resolved scenario and the bytes
of every file it names. `--resume` after the scenario or one of its files changed is refused,
instead of mixing runs of two scenarios in one summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.compare import scenario_digest
from cosim.scenario_loader import ScenarioSpec

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
GRID = REPO / "scenarios" / "grid_small.yaml"
COMPARE = ["--set", "duration_s=20", "--set", "aggregation.max_rounds=1", "--set",
           "learning.enabled=true", "--set", "clients.count=2", "--set", "scheduling.per_round=1",
           "--set", "aggregation.round_deadline_s=10", "--set",
           "learning.data.synthetic.segments=4", "--set", "learning.data.synthetic.frames=2",
           "--set", "learning.data.clients=2", "--set", "learning.data.heldout_segments=2",
           "--set", "learning.local.batch_size=2"]


def test_the_digest_follows_the_scenario_and_its_files(tmp_path):
    scenario = tmp_path / "s.yaml"
    shutil.copy(GRID, scenario)
    base = scenario_digest(ScenarioSpec.read(scenario))
    assert scenario_digest(ScenarioSpec.read(scenario)) == base
    assert scenario_digest(ScenarioSpec.read(scenario, ["seed=3"])) != base
    scenario.write_text(scenario.read_text().replace("duration_s:", "# edited\nduration_s:"))
    assert scenario_digest(ScenarioSpec.read(scenario)) == base  # a comment changes nothing the runs compute
    extra = tmp_path / "extra.add.xml"
    extra.write_text("<additional/>\n")
    with_file = scenario_digest(ScenarioSpec.read(scenario, [f"mobility.additional=[{extra}]"]))
    extra.write_text("<additional><!-- edited --></additional>\n")
    assert scenario_digest(ScenarioSpec.read(scenario, [f"mobility.additional=[{extra}]"])) != with_file


def _edited_changes_the_digest(spec: ScenarioSpec, edit) -> bool:
    before = scenario_digest(spec)
    edit()
    return scenario_digest(spec) != before


def test_the_digest_follows_the_files_the_scenarios_files_name(tmp_path):
    """Files SUMO and its tools read because a named file or option says so: an include of a
    route or additional file, a file ``sumo_options`` names, randomTrips' weights; and a data
    folder's files (by name, size and modification time)."""
    scenario = tmp_path / "s.yaml"
    shutil.copy(GRID, scenario)
    inner = tmp_path / "inner.add.xml"
    inner.write_text("<additional/>\n")
    outer = tmp_path / "outer.add.xml"
    outer.write_text(f'<additional><include href="{inner.name}"/></additional>\n')
    spec = ScenarioSpec.read(scenario, [f"mobility.additional=[{outer}]"])
    assert _edited_changes_the_digest(
        spec, lambda: inner.write_text("<additional><!-- edited --></additional>\n"))

    trips = tmp_path / "trips.rou.xml"
    trips.write_text(f'<routes><include href="{inner.name}"/></routes>\n')
    spec = ScenarioSpec.read(scenario, [f"mobility.routes=[{trips}]",
                                        "mobility.demand.add_random=true"])
    assert _edited_changes_the_digest(spec, lambda: inner.write_text("<additional/>\n"))

    weights = tmp_path / "w.src.xml"
    weights.write_text("<edgedata/>\n")
    spec = ScenarioSpec.read(scenario, [
        f'mobility.demand.random_trips_options=["--weights-prefix","{tmp_path / "w"}"]'])
    assert _edited_changes_the_digest(spec, lambda: weights.write_text("<edgedata></edgedata>\n"))

    data = tmp_path / "data"
    (data / "camera_image").mkdir(parents=True)
    (data / "camera_image" / "s.parquet").write_bytes(b"x")
    spec = ScenarioSpec.read(scenario, ["learning.enabled=true", f"learning.data.root={data}"])
    assert _edited_changes_the_digest(
        spec, lambda: (data / "camera_image" / "s.parquet").write_bytes(b"xy"))


def test_resume_after_the_scenario_changed_is_refused(tmp_path):
    scenario = tmp_path / "s.yaml"
    shutil.copy(GRID, scenario)
    args = ["compare", str(scenario), "--policies", "random,availability_aware", "--seeds", "0",
            "-q", "--out", str(tmp_path / "cmp"), *COMPARE]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    (tmp_path / "cmp" / "summary.parquet").unlink()  # as if interrupted before the summary
    info = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    spec = ScenarioSpec.read(scenario, [a for a in COMPARE if a != "--set"])
    assert info["scenario_digest"] == scenario_digest(spec)
    scenario.write_text(scenario.read_text().replace("\nseed: 1\n", "\nseed: 2\n", 1))
    resumed = CliRunner().invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 2, resumed.output
    assert "scenario_digest" in resumed.output and "other settings" in resumed.output


def test_resume_refuses_a_kept_run_of_another_scenario(tmp_path):
    """A complete run in the compare's folder is kept only if it ran this compare's scenario, value
    for value (a run copied in from a compare of other settings would stand in for this one's)."""
    out = tmp_path / "cmp"
    args = ["compare", str(GRID), "--policies", "random,availability_aware", "--seeds", "0", "-q",
            "--out", str(out), *COMPARE]
    assert CliRunner().invoke(app, args).exit_code == 0
    kept = sorted((out / "runs").iterdir())[0]
    resumed = CliRunner().invoke(app, [*args, "--resume"])  # genuine runs are kept
    assert resumed.exit_code == 0, resumed.output
    info = json.loads((kept / "run.json").read_text())
    info["scenario"]["scheduling"]["per_round"] = 2  # a run of another scenario, copied in
    (kept / "run.json").write_text(json.dumps(info))
    before = (out / "compare.json").read_bytes()
    refused = CliRunner().invoke(app, [*args, "--resume"])
    assert refused.exit_code == 2, refused.output
    assert "scheduling.per_round differs" in refused.output and str(kept) in refused.output
    assert (out / "compare.json").read_bytes() == before  # refused before the folder changed
    assert json.loads((kept / "run.json").read_text())["scenario"]["scheduling"]["per_round"] == 2


def test_a_moved_compare_folder_resumes_and_keeps_its_runs(tmp_path):
    """The kept runs name the recordings where the compare first was; moved, it still resumes
    (nothing else differs) and keeps them instead of computing them again."""
    first, moved = tmp_path / "cmp", tmp_path / "elsewhere" / "cmp"
    args = ["compare", str(GRID), "--policies", "random,availability_aware", "--seeds", "0", "-q",
            *COMPARE]
    assert CliRunner().invoke(app, [*args, "--out", str(first)]).exit_code == 0
    (first / "summary.parquet").unlink()  # as if interrupted before the summary
    moved.parent.mkdir()
    first.rename(moved)
    kept = {p: p.stat().st_mtime_ns for p in moved.glob("runs/*/metrics.parquet")}
    resumed = CliRunner().invoke(app, [*args, "--out", str(moved), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert kept and all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert (moved / "summary.parquet").is_file()


@pytest.fixture(scope="module")
def finished_compare(tmp_path_factory) -> tuple[Path, list[str]]:
    """A complete compare of one seed, to copy and edit."""
    out = tmp_path_factory.mktemp("finished") / "cmp"
    args = ["compare", str(GRID), "--policies", "random,availability_aware", "--seeds", "0", "-q",
            "--out", str(out), *COMPARE]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    return out, args


def _shift_x(path: Path) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    column = table.schema.get_field_index("x")
    pq.write_table(table.set_column(column, "x", pc.add(table.column("x"), 2.0)), path)


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("edit", ["recording moved 2 m", "recording replaced by a link",
                                  "kept run's metrics", "trace digest removed"])
def test_resume_refuses_a_kept_trace_changed_since_its_run_wrote_it(finished_compare, tmp_path,
                                                                    edit):
    """Every kept run's traces (a seed's recording first) are the bytes its run.json holds the
    SHA-256 of: an edited one is refused before any run, the folder left as it was."""
    source, args = finished_compare
    out = tmp_path / "cmp"
    shutil.copytree(source, out, symlinks=True)
    (out / "summary.parquet").unlink()  # as if interrupted before the summary
    recording = out / "recordings" / "seed-0"
    if edit == "recording moved 2 m":
        changed = recording / "mobility.parquet"
        _shift_x(changed)
    elif edit == "recording replaced by a link":
        changed = recording / "radio.parquet"
        shutil.copy(changed, tmp_path / "radio.parquet")
        changed.unlink()
        changed.symlink_to(tmp_path / "radio.parquet")
    elif edit == "kept run's metrics":
        changed = sorted((out / "runs").iterdir())[0] / "metrics.parquet"
        changed.write_bytes(changed.read_bytes()[:-1] + b"\0")
    else:
        changed = recording / "run.json"
        info = json.loads(changed.read_text())
        del info["trace_sha256"]
        changed.write_text(json.dumps(info))
    before = _contents(out)
    args = [a if a != str(source) else str(out) for a in args]
    refused = CliRunner().invoke(app, [*args, "--resume"])
    assert refused.exit_code == 2, refused.output
    assert len(refused.output.strip().splitlines()) == 1, refused.output
    if edit == "recording replaced by a link":  # no file of cosim's: not the study's own
        assert "did not write" in refused.output
        assert "recordings/seed-0/radio.parquet" in refused.output, refused.output
    else:
        assert str(changed) in refused.output and "trace_sha256" in refused.output
        assert "to compute it again" in refused.output
    assert _contents(out) == before


def test_a_users_folder_that_looks_like_a_compare_is_not_written(tmp_path):
    out = tmp_path / "cu"
    out.mkdir()
    (out / "compare.json").write_text('{"note": "my compare notes"}')
    (out / "pairs.csv").write_text("MY PAIRS")
    args = ["compare", str(GRID), "--policies", "random,availability_aware", "--seeds", "0", "-q",
            "--out", str(out), *COMPARE]
    for how in ("--overwrite", "--resume"):
        refused = CliRunner().invoke(app, [*args, how])
        assert refused.exit_code == 2 and "not a cosim compare folder" in refused.output
    assert (out / "pairs.csv").read_text() == "MY PAIRS"


def test_a_compare_never_replaces_a_users_file_in_its_folder(tmp_path):
    """Beside its results, or one of its own files the user changed: --overwrite and --resume
    are refused until it is moved away."""
    out = tmp_path / "cmp"
    args = ["compare", str(GRID), "--policies", "random,availability_aware", "--seeds", "0", "-q",
            "--out", str(out), *COMPARE]
    assert CliRunner().invoke(app, args).exit_code == 0
    for name, text in (("ch1.tex", "thesis"), ("pairs.csv", "MY PAIRS"),
                       ("runs/mine.txt", "mine"), ("recordings/x", "mine"),
                       ("runs/.thesis.previous-1/ch1.tex", "thesis"),
                       ("runs/.random-sync-seed0.lock", "mydata")):
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_text(text)
        for how in ("--overwrite", "--resume"):
            refused = CliRunner().invoke(app, [*args, how])
            assert refused.exit_code == 2, refused.output
            shown = name.split("/ch1.tex")[0]
            assert "did not write" in refused.output and shown in refused.output, refused.output
            assert (out / name).read_text() == text
        (out / name).unlink()
        if name.endswith("/ch1.tex"):
            (out / name).parent.rmdir()
    again = CliRunner().invoke(app, [*args, "--overwrite"])
    assert again.exit_code == 0, again.output


def test_the_compare_pins_the_source_of_the_users_policy(tmp_path, monkeypatch):
    """A policy from the user's module: its file is part of what compare.json pins, so a resume
    after the policy was edited is refused."""
    import importlib
    import sys

    from cosim.compare import CompareGrid, user_code_digest

    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "pinned_policies.py").write_text("from cosim.learning.federated.policies import "
                                                "RandomPolicy as Mine\n")
    monkeypatch.syspath_prepend(str(folder))
    importlib.import_module("pinned_policies")
    try:
        spec = ScenarioSpec.read(GRID)
        grid = CompareGrid(("random", "pinned_policies:Mine"), ("sync",), (0,))
        before = user_code_digest(spec, grid)
        assert before is not None
        assert user_code_digest(spec, CompareGrid(("random",), ("sync",), (0,))) is None
        (folder / "pinned_policies.py").write_text("# edited\n" + (
            folder / "pinned_policies.py").read_text())
        assert user_code_digest(spec, grid) != before
    finally:
        sys.modules.pop("pinned_policies", None)
