"""cosim.api given what the command line's parsers would refuse: the same InputError, before any
folder exists, never a TypeError from deep inside or a run on a NaN setting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cosim import api
from cosim.errors import InputError

GRID_SMALL = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"

BAD_COMPARE = {
    "jobs_fraction": ({"jobs": 1.5}, "jobs"),
    "jobs_text": ({"jobs": "2"}, "jobs"),
    "jobs_zero": ({"jobs": 0}, "jobs"),
    "jobs_bool": ({"jobs": True}, "jobs"),
    "margin_unknown_measure": ({"margins": {"auc": 0.1}}, "margins"),
    "margin_nan": ({"margins": {"seg3d": math.nan}}, "margins"),
    "margin_negative": ({"margins": {"time": -5}}, "margins"),
    "margins_not_a_dict": ({"margins": [0.1]}, "margins"),
    "target_text": ({"targets": {"det2d": "abc"}}, "targets"),
    "target_unknown_task": ({"targets": {"detection": 0.5}}, "targets"),
    "target_infinite": ({"targets": {"det2d": math.inf}}, "targets"),
    "eval_every_s_nan": ({"eval_every_s": math.nan}, "eval_every_s"),
    "eval_every_s_zero": ({"eval_every_s": 0.0}, "eval_every_s"),
    "eval_every_rounds_zero": ({"eval_every_rounds": 0}, "eval_every_rounds"),
    "eval_every_rounds_fraction": ({"eval_every_rounds": 1.5}, "eval_every_rounds"),
    "seed_fraction": ({"seeds": [1.5]}, "seeds"),
    "seed_negative": ({"seeds": [-1]}, "seeds"),
    "data_seed_beyond_sumo": ({"data_seeds": [2**40]}, "data_seeds"),
    "training_seed_text": ({"training_seeds": ["1"]}, "training_seeds"),
    "policy_not_a_name": ({"policies": [1]}, "policies"),
    "policies_a_number": ({"policies": 7}, "policies"),
    "decide_a_number": ({"seeds": "auto", "decide": 123}, "decide"),
    "decide_on_a_number": ({"seeds": "auto", "decide_on": 5}, "decide_on"),
    "min_seeds_text": ({"seeds": "auto", "min_seeds": "a"}, "--min-seeds"),
    "max_seeds_fraction": ({"seeds": "auto", "max_seeds": 4.5}, "--max-seeds"),
    "budget_min_text": ({"seeds": "auto", "budget_min": "5"}, "--budget-min"),
    "budget_min_nan": ({"seeds": "auto", "budget_min": math.nan}, "--budget-min"),
}


@pytest.mark.parametrize("case", sorted(BAD_COMPARE))
def test_a_compare_argument_the_cli_refuses_is_refused_before_the_folder(tmp_path, case):
    kwargs, field = BAD_COMPARE[case]
    with pytest.raises(InputError) as caught:
        api.compare(GRID_SMALL, tmp_path / "c", **kwargs)
    assert caught.value.field == field, caught.value.line()
    assert "\n" not in caught.value.line()
    assert not (tmp_path / "c").exists()


def _nested(depth: int) -> dict:
    scenario: dict = {}
    for _ in range(depth):
        scenario = {"x": scenario}
    return scenario


def _circular() -> dict:
    scenario: dict = {"name": "loop"}
    scenario["self"] = scenario
    return scenario


@pytest.mark.parametrize(("scenario", "says"), [
    (_circular(), "refers to itself"),
    (_nested(5000), "nested"),
    (_nested(100), "nested more than 64"),
    ({"name": "x", "values": {"v": set()}}, "not a scenario's data"),
    ({"name": "x", "values": list(range(200_000))}, "more than 100,000 values"),
])
def test_a_scenario_dict_a_file_could_not_hold_is_an_input_error(tmp_path, scenario, says):
    with pytest.raises(InputError, match=says):
        api.run(scenario, out=tmp_path / "r")
    assert not any(tmp_path.iterdir())


def _run_json(folder: Path, **fields) -> Path:
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({
        "status": "complete", "seed": 0, "scenario": {"name": "s"}, **fields}))
    return folder


@pytest.mark.parametrize("name", [5, "../../outside.parquet", "/etc/passwd", ".."])
def test_a_run_json_whose_trace_is_no_file_name_in_the_run_is_refused(tmp_path, name):
    """run.json names its trace files; a number or a path out of the folder is not one."""
    run = _run_json(tmp_path / "r", traces={"mobility": name})
    with pytest.raises(InputError, match="traces.mobility"):
        api.load_run(run)


def test_a_compare_json_that_is_not_an_object_is_refused(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "compare.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not the object cosim writes"):
        api.load_compare(tmp_path / "c")


@pytest.mark.slow  # a SUMO run
def test_a_complete_runs_edited_trace_is_refused_as_report_refuses_it(tmp_path):
    """run.json holds each trace's SHA-256: a trace rewritten since is not the run's result."""
    import pyarrow.parquet as pq

    from cosim.runner import run_scenario
    from cosim.scenario_loader import load_scenario

    run = tmp_path / "r"
    run_scenario(load_scenario(GRID_SMALL, ["duration_s=10", "learning=null"]), source=GRID_SMALL,
                 out=run, quiet=True)
    assert len(api.load_run(run).arrow("mobility")) > 3
    table = pq.read_table(run / "mobility.parquet")
    pq.write_table(table.slice(0, 3), run / "mobility.parquet")
    with pytest.raises(InputError, match="changed since its run wrote it"):
        api.load_run(run)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"overrides": [1]}, "overrides"), ({"overrides": "duration_s=10"}, "overrides"),
    ({"out": 7}, "out")])
def test_a_run_argument_of_the_wrong_kind_is_an_input_error(tmp_path, kwargs, field):
    with pytest.raises(InputError) as caught:
        api.run(GRID_SMALL, **{"out": tmp_path / "r", **kwargs})
    assert caught.value.field == field, caught.value.line()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("where", ["in_the_run", "file", "the_run_itself", "a_study_itself",
                                   "a_link_to_the_run", "empty", "dev"])
def test_tensorboard_event_files_go_in_no_result_folder(tmp_path, where):
    """A run's or a study's folder holds only what cosim writes there, at any depth and at its
    top; a file is no folder for them."""
    run = _run_json(tmp_path / "r", status="complete", traces={})
    study = tmp_path / "study"
    study.mkdir()
    (study / "compare.json").write_text("{}")
    (tmp_path / "file").write_text("mine")
    (tmp_path / "link").symlink_to(run)
    target = {"in_the_run": run / "tb", "file": tmp_path / "file", "the_run_itself": run,
              "a_study_itself": study, "a_link_to_the_run": tmp_path / "link", "empty": "",
              "dev": "/dev/cosim-events"}[where]
    with pytest.raises(InputError, match="tensorboard_dir"):
        api.log_metrics(run, tensorboard_dir=target)
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]
    assert sorted(p.name for p in study.iterdir()) == ["compare.json"]
    assert (tmp_path / "file").read_text() == "mine"


def test_a_compares_event_folders_go_in_no_result_folder(tmp_path):
    """A Compare's events go in one sub-folder per run, named as the run: a run folder of that
    name already in tensorboard_dir is not written into."""
    runs = tmp_path / "c" / "runs"
    runs.mkdir(parents=True)
    run = _run_json(runs / "r", status="complete", traces={})
    events = tmp_path / "events"
    events.mkdir()
    kept = _run_json(events / "r", status="complete", traces={})
    compare = api.Compare(path=tmp_path / "c", info={}, runs=(api.Run(path=run, info={}),))
    with pytest.raises(InputError, match="tensorboard_dir"):
        api.log_metrics(compare, tensorboard_dir=events)
    assert sorted(p.name for p in kept.iterdir()) == ["run.json"]


def test_a_policy_list_with_an_empty_name_is_refused(tmp_path):
    with pytest.raises(InputError, match="empty name"):
        api.compare(GRID_SMALL, tmp_path / "c", policies="random,")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_a_partial_trace_that_is_no_file_of_the_run_is_refused(tmp_path, kind):
    """An interrupted run's tables are read with partial=True: a link to another run's table or
    a FIFO at its name is not what the run wrote."""
    import os

    other = tmp_path / "other.parquet"
    other.write_bytes(b"PAR1")
    run = _run_json(tmp_path / "r", status="interrupted",
                    traces={"mobility": "mobility.incomplete.parquet"})
    table = run / "mobility.incomplete.parquet"
    table.symlink_to(other) if kind == "link" else os.mkfifo(table)
    with pytest.raises(InputError, match="not a regular file"):
        api.load_run(run).arrow("mobility", partial=True)


@pytest.mark.parametrize("load", [api.load_run, api.load_compare])
def test_a_folder_that_is_no_path_is_an_input_error(load):
    with pytest.raises(InputError, match="a path"):
        load(b"r1")


@pytest.mark.parametrize(("field", "value"), [("duration_s", float("nan")), ("duration_s", -5.0),
                                              ("seed", -1)])
def test_a_scenario_changed_after_loading_is_validated_again(tmp_path, field, value):
    """A Scenario's fields can be set without its checks; api.run checks them before the run's
    folder exists, as a file's values are."""
    from cosim.scenario_loader import load_scenario

    sc = load_scenario(GRID_SMALL, ["duration_s=10", "learning=null"])
    setattr(sc, field, value)
    with pytest.raises(InputError, match=field):
        api.run(sc, out=tmp_path / "r")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("loader", ["load_run", "load_compare", "log_metrics"])
@pytest.mark.parametrize("kind", ["too_long", "loop", "nul"])
def test_a_folder_the_system_cannot_look_up_is_an_input_error(tmp_path, loader, kind):
    """What the file system refuses to look up (a name over its limit, a loop of links) is the
    caller's input, said as an InputError as the command line says it in one line."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    path = {"too_long": str(tmp_path / ("a" * 5000)), "loop": str(tmp_path / "loop"),
            "nul": str(tmp_path / "a\0b")}[kind]
    call = getattr(api, loader)
    with pytest.raises(InputError):
        call(path, tensorboard_dir=tmp_path / "tb") if loader == "log_metrics" else call(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop"]


@pytest.mark.parametrize(("call", "kwargs", "field"), [
    ("run", {"overwrite": "no"}, "overwrite"), ("run", {"quiet": 0}, "quiet"),
    ("compare", {"resume": "no"}, "resume"), ("compare", {"overwrite": 1}, "overwrite"),
    ("compare", {"seeds": "auto", "decide_on": "abc"}, "'abc'")])
def test_flags_and_measures_are_what_they_say(tmp_path, call, kwargs, field):
    """A flag is True or False ("no" would read as yes); decide_on="abc" names one measure, not
    three letters."""
    with pytest.raises(InputError) as caught:
        getattr(api, call)(GRID_SMALL, out=tmp_path / "o", **kwargs)
    assert caught.value.field == field or field in caught.value.line(), caught.value.line()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"name": ["mobility"]}, "name"), ({"name": b"mobility"}, "name"),
    ({"name": "mobility", "partial": "yes"}, "partial")])
def test_a_table_asked_for_by_something_other_than_a_name_is_an_input_error(tmp_path, kwargs,
                                                                           field):
    run = api.Run(path=_run_json(tmp_path / "r", traces={"mobility": "mobility.parquet"}),
                  info={"status": "complete", "traces": {"mobility": "mobility.parquet"}})
    with pytest.raises(InputError) as caught:
        run.arrow(**kwargs)
    assert caught.value.field == field and caught.value.line(), caught.value


def test_a_compares_table_changed_since_it_wrote_it_is_refused(tmp_path):
    """summary.parquet and pairs.parquet are read only while the size and SHA-256 the compare's
    folder mark lists for them hold: an edited table is not the compare's result."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cosim.destinations import write_study_manifest

    folder = tmp_path / "c"
    folder.mkdir()
    pq.write_table(pa.table({"lookup_seg3d": [0.1, 0.2]}), folder / "pairs.parquet")
    write_study_manifest(folder, "compare")
    compare = api.Compare(path=folder, info={}, runs=())
    assert compare.pairs()["lookup_seg3d"].tolist() == [0.1, 0.2]
    pq.write_table(pa.table({"lookup_seg3d": [0.99, 0.99]}), folder / "pairs.parquet")
    with pytest.raises(InputError, match="changed since the compare wrote it"):
        compare.pairs()
