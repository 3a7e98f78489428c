"""Drift (learning.drift): task-mix changes on the clock within what each client holds, forgetting
from traces (checked on hand-made numbers), the L2 continual baseline, and a run end to end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import simpy

from cosim.analysis.forgetting import active_intervals, forgetting_table
from cosim.learning.federated.drift import DriftSchedule
from cosim.scenario.drift import DriftConfig
from cosim.trace_schemas import METRICS_SCHEMA

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent


def _data(tasks, modalities):
    shard = SimpleNamespace(tasks=tuple(tasks), modalities=tuple(modalities))
    return SimpleNamespace(shard=shard, tasks=list(tasks), modalities=list(modalities))


def test_events_change_mixes_on_the_clock_within_what_each_client_holds():
    full = ("seg3d", "det3d", "pan2d", "det2d")
    datasets = [_data(full, ("image", "lidar", "text")), _data(("pan2d", "det2d"), ("image", "text")),
                _data(full, ("image", "lidar", "text"))]
    cfg = DriftConfig(events=[
        {"at_s": 10, "label": "highway", "tasks": ["seg3d", "det3d"]},
        {"at_s": 20, "label": "no lidar", "clients": [0], "modalities": ["image", "text"]},
        {"at_s": 30, "label": "city", "tasks": ["seg3d", "det3d", "pan2d", "det2d"]}])
    drift = DriftSchedule(cfg, datasets, seed=0)
    env = simpy.Environment()
    seen = []
    env.process(drift.process(env, lambda clients: seen.append((env.now, clients))))
    env.run(until=15)
    assert [d.tasks for d in datasets] == [["seg3d", "det3d"], [], ["seg3d", "det3d"]]  # 1 holds no 3D
    env.run(until=25)
    # without LiDAR client 0 can train only camera tasks: none of the highway mix
    assert datasets[0].tasks == [] and datasets[0].modalities == ["image", "text"]
    env.run()
    assert datasets[0].tasks == ["pan2d", "det2d"] and datasets[2].tasks == list(full)
    assert seen == [(10, [0, 1, 2]), (20, [0]), (30, [0, 1, 2])]
    summary = drift.summary()
    assert summary["initial_active_tasks"] == list(full)
    active = [e["active_tasks"] for e in summary["events"]]
    assert active == [["seg3d", "det3d"], ["seg3d", "det3d"], list(full)]


def test_a_share_of_clients_is_a_seeded_draw():
    datasets = [_data(("seg3d",), ("image", "lidar", "text")) for _ in range(10)]
    cfg = DriftConfig(events=[{"at_s": 0, "share": 0.3, "modalities": ["image", "text"]}])
    picks = [DriftSchedule(cfg, datasets, seed=s).clients_of(0, cfg.events[0]) for s in (1, 1, 2)]
    assert picks[0] == picks[1] and len(picks[0]) == 3 and picks[0] != picks[2]


def _run_folder(tmp_path, drift, values, duration=300.0):
    """A run folder with run.json's drift summary and metrics rows (sim_time_s -> per-task value)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    info = {"status": "complete", "scenario": {"name": "drift", "duration_s": duration},
            "sim_time_s": duration, "seed": 0, "summary": {"learning": {"drift": drift}}}
    (tmp_path / "run.json").write_text(json.dumps(info))
    rows = {n: [] for n in METRICS_SCHEMA.names}
    metric = {"seg3d": "mIoU", "det3d": "mAP_center", "pan2d": "STQ", "det2d": "mAP50"}
    for i, (t, per_task) in enumerate(values):
        for task, v in per_task.items():
            for name, x in (("round", i), ("sim_time_s", t), ("task", task), ("metric", metric[task]),
                            ("value", v), ("client", None), ("model", None)):
                rows[name].append(x)
    pq.write_table(pa.table(rows, schema=METRICS_SCHEMA), tmp_path / "metrics.parquet")
    return tmp_path


def test_forgetting_is_best_while_trained_minus_final(tmp_path):
    drift = {"initial_active_tasks": ["seg3d", "det2d"],
             "events": [{"at_s": 100.0, "active_tasks": ["det2d"]},
                        {"at_s": 200.0, "active_tasks": ["det2d", "pan2d"]}]}
    assert active_intervals(drift, 300.0) == {"seg3d": [(0.0, 100.0)], "det3d": [],
                                               "pan2d": [(200.0, 300.0)], "det2d": [(0.0, 300.0)]}
    values = [(0.0, {"seg3d": 0.0, "det2d": 0.0, "pan2d": 0.0}),
              (50.0, {"seg3d": 0.30, "det2d": 0.02, "pan2d": 0.0}),
              (100.0, {"seg3d": 0.40, "det2d": 0.03, "pan2d": 0.01}),
              (150.0, {"seg3d": 0.35, "det2d": 0.05, "pan2d": 0.01}),   # seg3d no longer trained
              (300.0, {"seg3d": 0.25, "det2d": 0.04, "pan2d": 0.06})]
    table = forgetting_table(_run_folder(tmp_path, drift, values)).set_index("task")
    # seg3d: best while trained (evaluations in (0, 100]) 0.40, final 0.25 -> forgetting 0.15;
    # the 0.35 at 150 s came after its training stopped and does not count as "while trained"
    assert table.loc["seg3d", "best_while_trained"] == pytest.approx(0.40)
    assert table.loc["seg3d", "forgetting"] == pytest.approx(0.15)
    assert table.loc["seg3d", "trained"] == "0-100 s"
    # still trained at the end: no forgetting; pan2d's best counts only evaluations after 200 s
    assert pd_isnan(table.loc["det2d", "forgetting"]) and pd_isnan(table.loc["pan2d", "forgetting"])
    assert table.loc["pan2d", "best_while_trained"] == pytest.approx(0.06)
    assert "det3d" not in table.index  # never evaluated here


def pd_isnan(v) -> bool:
    return v != v


def test_the_l2_pull_keeps_shared_modules_near_the_anchor(tmp_path):
    import torch

    from cosim.learning.federated.setup import build_learning
    from cosim.learning.local import local_update
    from cosim.scenario_loader import load_scenario

    sc = load_scenario(REPO / "scenarios" / "grid_small.yaml", [
        "learning.data.synthetic.segments=4", "learning.data.synthetic.frames=2",
        "learning.data.clients=2", "learning.data.heldout_segments=2", "learning.local.batch_size=2",
        "learning.local.lr=0.05", "learning.local.epochs=8"])  # the pull acts from step 2 on
    setup = build_learning(sc.learning, sc.seeds())
    model, data = setup.model, setup.datasets[0]
    start = model.export_modules(model.module_names())
    anchor = {k: v.clone() for k, v in start.items()}
    cfg, bal = sc.learning.local, sc.learning.balancing

    def shared_distance(modules):
        return sum(float((modules[k].float() - anchor[k].float()).pow(2).sum()) for k in modules
                   if not k.startswith("heads.") and modules[k].is_floating_point())

    free, _ = local_update(model, start, data, cfg, bal, seed=3, count_flops=False)
    same, _ = local_update(model, start, data, cfg, bal, seed=3, count_flops=False, anchor=anchor,
                           l2_weight=0.0)
    pulled, _ = local_update(model, start, data, cfg, bal, seed=3, count_flops=False, anchor=anchor,
                             l2_weight=50.0)
    assert all(torch.equal(free[k], same[k]) for k in free)  # weight 0: exactly plain training
    assert 0 < shared_distance(pulled) < 0.5 * shared_distance(free)
    heads = [k for k in free if k.startswith("heads.") and free[k].is_floating_point()]
    assert any(not torch.equal(pulled[k], anchor[k]) for k in heads)  # the heads still learn


def test_a_drift_run_reports_forgetting_with_the_continual_baseline(tmp_path):
    from cosim.analysis.report import write_report
    from cosim.runner import run_scenario
    from cosim.scenario_loader import load_scenario

    path = REPO / "scenarios" / "grid_small.yaml"
    overrides = ["duration_s=60", "learning.enabled=true", "clients.count=3",
                 "scheduling.policy=all_connected", "scheduling.per_round=3",
                 "aggregation.round_deadline_s=10", "learning.data.synthetic.segments=5",
                 "learning.data.synthetic.frames=2", "learning.data.clients=3",
                 "learning.data.heldout_segments=2", "learning.local.batch_size=2",
                 "learning.drift={events: [{at_s: 30, label: highway, tasks: [seg3d, det3d]}], "
                 "continual: l2, l2_weight: 5}"]
    run_scenario(load_scenario(path, overrides), source=path, out=tmp_path / "run", quiet=True)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    drift = info["summary"]["learning"]["drift"]
    assert drift["continual"] == "l2" and drift["events"][0]["active_tasks"] == ["seg3d", "det3d"]
    assert info["summary"]["learning"]["trainer"]["mode"] == "sequential"
    table = forgetting_table(tmp_path / "run").set_index("task")
    assert table.loc["pan2d", "trained"] == "0-30 s" and table.loc["seg3d", "trained"] == "0-60 s"
    html = write_report(tmp_path / "run").read_text()
    assert "Drift and forgetting" in html and "continual: l2 (weight 5.0)" in html


def test_the_drift_scenario_validates_with_and_without_the_baseline():
    from cosim.scenario_loader import load_scenario

    path = REPO / "scenarios" / "sf_downtown_drift.yaml"
    plain = load_scenario(path)
    l2 = load_scenario(path, ["learning.drift.continual=l2"])
    assert [e.tasks for e in plain.learning.drift.events][-1] == ["pan2d", "det2d"]
    assert (plain.learning.drift.continual, l2.learning.drift.continual) == ("none", "l2")
