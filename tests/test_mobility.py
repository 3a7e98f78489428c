"""The mobility layer on grid_small: real SUMO vehicles move, enter and leave; backends agree;
runs are deterministic; SUMO never outlives a failed run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cosim.mobility.backends import open_session
from cosim.mobility.build import prepare_inputs
from cosim.mobility.session import SumoLaunch
from cosim.runner import run_scenario
from cosim.scenario_loader import load_scenario

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop


def _run(path: Path, out: Path, *overrides: str, **kw):
    """grid_small without its learning section: these tests are about mobility."""
    sc = load_scenario(path, ["learning=null", *overrides])
    return run_scenario(sc, source=path, out=out, quiet=True, **kw)


def test_vehicles_move_enter_and_leave(grid_small, tmp_path):
    result = _run(grid_small, tmp_path / "run")
    assert result.status == "complete"
    table = pq.read_table(tmp_path / "run" / "mobility.parquet")
    assert table.column_names == ["t", "vehicle", "x", "y", "lon", "lat", "speed", "heading",
                                  "edge", "parked", "type"]
    df = table.to_pandas()
    assert df.t.min() >= 0 and df.t.max() == 120  # empty at t=0 (no warm-up); 120: the end
    assert set(df.type) == {"veh_passenger"}
    first_seen = df.groupby("vehicle").t.min()
    last_seen = df.groupby("vehicle").t.max()
    assert (first_seen > 0).sum() >= 5, "vehicles enter during the run"
    assert (last_seen < 119).sum() >= 3, "vehicles leave the network during the run"
    moved = df.groupby("vehicle").apply(lambda g: np.hypot(g.x.diff(), g.y.diff()).sum(),
                                        include_groups=False)
    assert (moved > 100).sum() >= 5, "vehicles drive hundreds of metres"
    assert df.speed.max() > 5
    assert df.parked.any(), "some vehicles park (grid_small has parking areas)"
    # lon/lat follow the geo origin: 200 m grid cells are ~0.0018 deg of latitude
    assert 37.77 < df.lat.min() < df.lat.max() < 37.80
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "complete" and info["traces"]["mobility"] == "mobility.parquet"
    assert info["summary"]["mobility"]["vehicles_seen"] == df.vehicle.nunique()
    assert set(info["versions"]) >= {"cosim", "sumo", "python"}


def test_entered_and_left_are_reported_per_step(grid_small):
    sc = load_scenario(grid_small)
    launch = SumoLaunch(prepare_inputs(sc.mobility, sc.seed, sc.duration_s), "libsumo", 1.0, sc.seed)
    entered, left, present = set(), set(), set()
    with open_session(launch) as session:
        for _ in range(120):
            s = session.step()
            assert set(s.entered) <= set(s.ids) and not set(s.left) & set(s.ids)
            assert set(s.entered) == set(s.ids) - present
            assert set(s.left) == present - set(s.ids)
            present = set(s.ids)
            entered.update(s.entered)
            left.update(s.left)
    assert len(entered) > 10 and len(left) > 3


def test_libsumo_pipelined_in_process_and_traci_give_the_same_positions(grid_small, tmp_path):
    _run(grid_small, tmp_path / "pipe", "mobility.backend=libsumo", "mobility.pipeline=true")
    _run(grid_small, tmp_path / "lib", "mobility.backend=libsumo", "mobility.pipeline=false")
    _run(grid_small, tmp_path / "traci", "mobility.backend=traci")
    a = pq.read_table(tmp_path / "lib" / "mobility.parquet")
    assert a.num_rows > 500
    assert a.equals(pq.read_table(tmp_path / "traci" / "mobility.parquet"))
    assert (tmp_path / "pipe" / "mobility.parquet").read_bytes() == \
        (tmp_path / "lib" / "mobility.parquet").read_bytes()


def test_the_pipelined_session_streams_what_libsumo_reads_in_process(grid_small):
    """Warm-up, time, first read and every step, with the vTypes of entering vehicles."""
    from cosim.mobility.pipeline import PipelinedLibsumoSession
    from cosim.mobility.session import LibsumoSession

    sc = load_scenario(grid_small)
    launch = SumoLaunch(prepare_inputs(sc.mobility, sc.seed, sc.duration_s), "libsumo", 1.0, sc.seed)

    def trajectory(session):
        for _ in range(7):
            session.advance()
        got = [session.time(), session.read()]
        got += [session.step() for _ in range(60)]
        types = {v: session.vehicle_type(v) for s in got[1:] for v in s.entered}
        session.close()
        return got, types

    (t_a, *a), types_a = trajectory(LibsumoSession(launch))
    pipelined = PipelinedLibsumoSession(launch)
    # a terminal's Ctrl-C goes to the foreground process group: not to the child, whatever
    # it is doing (importing, loading), for the parent decides how the run ends
    assert os.getpgid(pipelined._child.pid) != os.getpgid(0)
    (t_b, *b), types_b = trajectory(pipelined)
    assert t_a == t_b == 7.0 and types_a == types_b and len(types_a) > 5
    for sa, sb in zip(a, b, strict=True):
        assert sa.t == sb.t and sa.entered == sb.entered and sa.left == sb.left
        for name in ("ids", "x", "y", "speed", "heading", "edge", "parked"):
            assert np.array_equal(getattr(sa, name), getattr(sb, name)), name
    assert pipelined._child.returncode == 0, "SUMO closed itself"


def test_same_seed_gives_byte_identical_traces(grid_small, tmp_path):
    _run(grid_small, tmp_path / "a")
    _run(grid_small, tmp_path / "b")
    _run(grid_small, tmp_path / "c", "seed=2")
    bytes_a = (tmp_path / "a" / "mobility.parquet").read_bytes()
    assert bytes_a == (tmp_path / "b" / "mobility.parquet").read_bytes()
    assert bytes_a != (tmp_path / "c" / "mobility.parquet").read_bytes()


def test_short_steps_are_supported(grid_small, tmp_path):
    _run(grid_small, tmp_path / "r", "mobility.step_length_s=0.1", "duration_s=20",
         "output.mobility_period_s=0.5")
    t = pq.read_table(tmp_path / "r" / "mobility.parquet").column("t")
    times = np.unique(t.to_numpy())
    assert np.allclose(np.diff(times), 0.5)


def test_warmup_shifts_the_clock(grid_small, tmp_path):
    _run(grid_small, tmp_path / "r", "mobility.warmup_s=30", "duration_s=10")
    table = pq.read_table(tmp_path / "r" / "mobility.parquet")
    # 0 .. 10 s: the state at the end is recorded too (the radio interpolated towards it)
    assert pc.min(table.column("t")).as_py() == 0 and pc.max(table.column("t")).as_py() == 10
    assert table.num_rows > 10, "vehicles inserted during warm-up are there at t=0"


class _Boom:
    """A layer whose process fails at t = 5 s, as a bug in a later layer would."""

    name = "boom"

    def __init__(self, engine):
        pass

    def attach(self, engine):
        def fail():
            yield engine.env.timeout(5)
            raise RuntimeError("boom")

        engine.env.process(fail())


def _sumo_children() -> list[int]:
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        args = (entry / "cmdline").read_bytes().split(b"\0")
        if int(stat.rsplit(")", 1)[1].split()[1]) == me and (
                b"sumo" in Path(cmd.decode()).name.encode() or b"cosim.mobility.pipeline" in args):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_no_sumo_left_after_an_exception(grid_small, tmp_path, backend):
    import libsumo

    with pytest.raises(RuntimeError, match="boom"):
        _run(grid_small, tmp_path / "r", f"mobility.backend={backend}", extra_layers=[_Boom])
    assert not libsumo.simulation.isLoaded()
    assert _sumo_children() == []

    assert not (tmp_path / "r").exists()  # only a complete run takes the --out name
    info = json.loads((tmp_path / "r.partial" / "run.json").read_text())
    assert info["status"] == "failed" and "boom" in info["error"]
    assert info["traces"]["mobility"] == "mobility.incomplete.parquet"
    assert not (tmp_path / "r.partial" / "mobility.parquet").exists()
    # the incomplete trace is still readable and stops before the failure
    t = pq.read_table(tmp_path / "r.partial" / "mobility.incomplete.parquet").column("t").to_numpy()
    assert t.max() <= 5


def test_interrupt_marks_the_run_interrupted(grid_small, tmp_path):
    class _CtrlC(_Boom):
        def attach(self, engine):
            def press():
                yield engine.env.timeout(3)
                raise KeyboardInterrupt

            engine.env.process(press())

    with pytest.raises(KeyboardInterrupt):
        _run(grid_small, tmp_path / "r", extra_layers=[_CtrlC])
    info = json.loads((tmp_path / "r.partial" / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert (tmp_path / "r.partial" / "mobility.incomplete.parquet").exists()


def test_row_groups_are_written_as_the_run_goes(grid_small, tmp_path):
    _run(grid_small, tmp_path / "r", "output.row_group_rows=200")
    meta = pq.ParquetFile(tmp_path / "r" / "mobility.parquet").metadata
    assert meta.num_row_groups >= 5
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 400


def test_sf_downtown_acceptance(sf_downtown, tmp_path):
    """The mobility acceptance run: 600 s of downtown San Francisco (without the trainer)."""
    result = _run(sf_downtown, tmp_path / "x", "duration_s=600", "learning.enabled=false")
    assert result.status == "complete"
    table = pq.read_table(tmp_path / "x" / "mobility.parquet")
    assert len(pc.unique(table.column("vehicle"))) >= 100
    assert pc.any(table.column("parked")).as_py()
    assert json.loads((tmp_path / "x" / "run.json").read_text())["status"] == "complete"


def test_a_network_that_crashes_sumo_is_bad_input(tmp_path):
    """SUMO itself segfaults on some networks (an edge without lanes); in its own process that
    is a one-line input error naming the file, not a crash of cosim. XML that is not well formed
    is refused before SUMO reads it."""
    from cosim.errors import InputError

    (tmp_path / "bad.net.xml").write_text("<net><edge id='e'/></net>")
    (tmp_path / "r.rou.xml").write_text("<routes/>")
    path = tmp_path / "s.yaml"
    path.write_text("name: bad\nduration_s: 10\nmobility: {net: bad.net.xml, routes: [r.rou.xml]}\n")
    with pytest.raises(InputError, match=r"mobility: SUMO could not load bad\.net\.xml.*crashed"):
        _run(path, tmp_path / "out")
    assert _sumo_children() == []
    (tmp_path / "bad.net.xml").write_text("<net><edge id='e'></net>")
    with pytest.raises(InputError, match=r"bad\.net\.xml: mobility\.net: cannot read it as XML"):
        _run(path, tmp_path / "out")
