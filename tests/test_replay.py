"""Replay: a recorded mobility trace drives the radio exactly as SUMO did."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.runner import run_scenario
from cosim.scenario_loader import load_scenario

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop


def _run(path: Path, out: Path, *overrides: str):
    """grid_small without its learning section: replay is about mobility and radio."""
    sc = load_scenario(path, ["learning=null", *overrides])
    return run_scenario(sc, source=path, out=out, quiet=True)


def test_replay_equals_live(grid_small, tmp_path):
    live = _run(grid_small, tmp_path / "live", "mobility.warmup_s=20")
    replay = _run(grid_small, tmp_path / "replay", "mobility.warmup_s=20",
                  f"mobility.replay={tmp_path / 'live'}")
    assert replay.info["layers"]["mobility"].startswith("replay of")
    assert "sumo.log" not in {p.name for p in (tmp_path / "replay").iterdir()}
    tables = sorted(p.name for p in (tmp_path / "live").glob("*.parquet"))
    assert {"mobility.parquet", "radio.parquet", "handoffs.parquet",
            "link_windows.parquet"} <= set(tables)
    assert pq.read_table(tmp_path / "live" / "handoffs.parquet").num_rows > 0
    for name in tables:
        assert (tmp_path / "live" / name).read_bytes() == (tmp_path / "replay" / name).read_bytes(), name
    assert live.info["summary"]["radio"] == replay.info["summary"]["radio"]


def test_replay_of_a_sparse_trace_is_refused(grid_small, tmp_path):
    _run(grid_small, tmp_path / "live", "output.mobility_period_s=2", "duration_s=30")
    result = CliRunner().invoke(app, ["run", str(grid_small), "--out", str(tmp_path / "r"),
                                      "--set", "learning=null",
                                      "--set", f"mobility.replay={tmp_path / 'live'}",
                                      "--set", "duration_s=30"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "mobility.replay" in line and "every SUMO step" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("problem", ["short", "corrupt", "missing", "not_a_trace"])
def test_bad_replay_input_is_one_line(grid_small, tmp_path, problem):
    trace = tmp_path / "mobility.parquet"
    if problem == "short":
        _run(grid_small, tmp_path / "live", "duration_s=30")
        trace = tmp_path / "live" / "mobility.parquet"
    elif problem == "corrupt":
        trace.write_bytes(b"PAR1 this is not parquet")
    elif problem == "not_a_trace":
        pq.write_table(pq.read_table(_any_parquet(grid_small, tmp_path)).select([0]), trace)
    result = CliRunner().invoke(app, ["run", str(grid_small), "--out", str(tmp_path / "r"),
                                      "--set", "learning=null",
                                      "--set", f"mobility.replay={trace}"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and "mobility.replay" in line
    assert not (tmp_path / "r").exists()


def _any_parquet(grid_small: Path, tmp_path: Path) -> Path:
    _run(grid_small, tmp_path / "other", "duration_s=10")
    return tmp_path / "other" / "cells.parquet"


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    grid_small = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    out = tmp_path_factory.mktemp("recording") / "live"
    _run(grid_small, out, "duration_s=30")
    return out


def _shifted(table, rng):
    import pyarrow.compute as pc

    shift = float(rng.uniform(0.01, 0.99))  # off the 1 s step grid
    return table.set_column(0, "t", pc.add(table.column("t"), shift))


def _duplicated(table, rng):
    import pyarrow as pa

    rows = rng.choice(table.num_rows, size=int(rng.integers(1, 5)), replace=False)
    return pa.concat_tables([table, table.take(rows)]).sort_by([("t", "ascending")])


def _far(column: str, value: float):
    def edit(table, rng):
        import pyarrow as pa

        values = table.column(column).to_numpy().copy()
        values[rng.integers(0, len(values))] = value
        return table.set_column(table.schema.get_field_index(column), column,
                                pa.array(values, type=table.schema.field(column).type))
    return edit


def _retyped(table, rng):
    import pyarrow as pa

    types = table.column("type").to_pylist()
    ids = table.column("vehicle").to_pylist()
    victim = ids[int(rng.integers(0, len(ids)))]
    last = max(i for i, v in enumerate(ids) if v == victim)
    types[last] = types[last] + "_other"
    return table.set_column(table.schema.get_field_index("type"), "type",
                            pa.array(types, type=table.schema.field("type").type))


def _renamed(suffix: str):
    """One vehicle's id, on all its rows, with ``suffix`` appended."""
    def edit(table, rng):
        import pyarrow as pa

        ids = table.column("vehicle").to_pylist()
        victim = ids[int(rng.integers(0, len(ids)))]
        ids = [v + suffix if v == victim else v for v in ids]
        return table.set_column(table.schema.get_field_index("vehicle"), "vehicle",
                                pa.array(ids, type=table.schema.field("vehicle").type))
    return edit


WRONG_TRACES = {"shifted": (_shifted, "step grid"), "duplicated": (_duplicated, "one row per time"),
                "id_with_a_newline": (_renamed("\nrm -rf"), "control character"),
                "id_of_a_million_characters": (_renamed("x" * 10**6), "characters"),
                "x_1e300": (_far("x", 1e300), "x = 1e+300"),
                "y_far": (_far("y", -3e7), "y = -3e+07"),
                "negative_speed": (_far("speed", -4.0), "speed = -4"),
                "speed_of_sound": (_far("speed", 340.0), "speed = 340"),
                "retyped": (_retyped, "changes its type"),
                # beyond the network's extent (grid_small: 600 m square) by more than its margin
                "x_3km_east": (_far("x", 3600.0), "outside the network"),
                "y_5000km_south": (_far("y", -5e6), "outside the network"),
                "heading_1e300": (_far("heading", 1e300), "heading = 1e+300")}


@pytest.mark.parametrize("case", sorted(WRONG_TRACES))
@pytest.mark.parametrize("draw", [0, 1])
def test_a_well_typed_but_wrong_trace_is_refused(grid_small, recording, tmp_path, case, draw):
    import numpy as np

    edit, says = WRONG_TRACES[case]
    table = pq.read_table(recording / "mobility.parquet")
    trace = tmp_path / "mobility.parquet"
    pq.write_table(edit(table, np.random.default_rng([draw, len(case)])), trace)
    result = CliRunner().invoke(app, ["run", str(grid_small), "--out", str(tmp_path / "r"),
                                      "--set", "learning=null", "--set", "duration_s=30",
                                      "--set", f"mobility.replay={trace}"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "mobility.replay" in line and says in line, line
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.partial").exists()


def _moved(table, rng):
    import pyarrow.compute as pc

    return table.set_column(2, "x", pc.add(table.column("x"), float(rng.uniform(0.5, 50.0))))


def _holed(table, rng):
    import pyarrow.compute as pc

    start = float(rng.integers(2, 20))
    t = table.column("t")
    return table.filter(pc.or_(pc.less(t, start), pc.greater(t, start + 7)))


def _rerouted(table, rng):
    import pyarrow as pa

    edges = table.column("edge").to_pylist()
    edges[int(rng.integers(0, len(edges)))] = "not_an_edge"
    return table.set_column(table.schema.get_field_index("edge"), "edge", pa.array(edges))


EDITS = {"moved": _moved, "holed": _holed, "rerouted": _rerouted}


@pytest.mark.parametrize("case", sorted(EDITS))
@pytest.mark.parametrize("draw", [0, 1])
def test_a_trace_edited_beside_its_run_json_is_refused(grid_small, recording, tmp_path, case, draw):
    """Edits that stay on the network and on the step grid: the run.json beside the trace holds
    the SHA-256 its run wrote, so the trace is not that run's any more."""
    import shutil

    import numpy as np

    folder = tmp_path / "rec"
    shutil.copytree(recording, folder)
    table = pq.read_table(folder / "mobility.parquet")
    pq.write_table(EDITS[case](table, np.random.default_rng([draw, len(case)])),
                   folder / "mobility.parquet")
    result = CliRunner().invoke(app, ["run", str(grid_small), "--out", str(tmp_path / "r"),
                                      "--set", "learning=null", "--set", "duration_s=30",
                                      "--set", f"mobility.replay={folder}"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "mobility.replay" in line and "changed since its run wrote it" in line
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.partial").exists()


ORACLE = ["learning.enabled=true", "duration_s=30", "scheduling.policy=oracle",
          "learning.data.synthetic.segments=5", "learning.data.synthetic.frames=2",
          "learning.data.clients=3", "learning.data.heldout_segments=2"]


@pytest.mark.parametrize("case", ["empty", "other_seed", "other_recording"])
def test_oracle_windows_that_are_not_this_runs_future_are_refused(grid_small, recording, tmp_path,
                                                                  case):
    windows = recording / "link_windows.parquet"
    replay = recording
    extra: list[str] = []
    if case == "empty":  # in a copy of the run's folder whose run.json holds its SHA-256
        import json
        import shutil

        from cosim.bounded_read import file_sha256

        shutil.copytree(recording, tmp_path / "empty")
        windows = tmp_path / "empty" / "link_windows.parquet"
        pq.write_table(pq.read_table(recording / "link_windows.parquet").slice(0, 0), windows)
        info = json.loads((tmp_path / "empty" / "run.json").read_text())
        info["trace_sha256"]["link_windows"] = file_sha256(windows)
        (tmp_path / "empty" / "run.json").write_text(json.dumps(info))
        says = "no link windows"
    elif case == "other_seed":
        extra = ["seed=7"]
        says = "connectivity seed"
    else:
        replay = tmp_path / "other"
        _run(grid_small, replay, "duration_s=30", "clients.count=2",
             "mobility.demand.period_s=7.0")
        (replay / "run.json").unlink()  # no seed to compare: the vehicles must tell
        says = "not in the replayed trace"
    sets = [a for o in [*ORACLE, *extra, f"scheduling.oracle_windows={windows}",
                        f"mobility.replay={replay}"] for a in ("--set", o)]
    result = CliRunner().invoke(app, ["run", str(grid_small), "--out", str(tmp_path / "r"), *sets])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and says in line, line
    assert not (tmp_path / "r").exists()


def test_a_trace_with_dictionary_encoded_columns_replays_as_the_plain_one(grid_small, recording,
                                                                         tmp_path):
    """pandas writes a categorical column dictionary-encoded: the same trace, the same run."""
    import pyarrow as pa

    table = pq.read_table(recording / "mobility.parquet")
    for name in ("vehicle", "edge", "type"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(i).dictionary_encode())
    assert pa.types.is_dictionary(table.schema.field("vehicle").type)
    pq.write_table(table, tmp_path / "encoded.parquet")
    runs = {}
    for name, trace in (("plain", recording / "mobility.parquet"),
                        ("encoded", tmp_path / "encoded.parquet")):
        result = _run(grid_small, tmp_path / name, "duration_s=20", f"mobility.replay={trace}")
        runs[name] = (result.run_dir / "radio.parquet").read_bytes()
    assert runs["plain"] == runs["encoded"]
