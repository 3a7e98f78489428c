"""Personalisation (learning.personalisation): per-client global vs fine-tuned vs TAP rows in
metrics.parquet, their determinism, TAP's selective replacement rule, and the report's table."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from cosim.errors import InputError
from cosim.learning.federated.personalisation import personalise, split_frames, tap_select
from cosim.names import HEADLINE, TASK_INFO
from cosim.trace_schemas import METRICS_SCHEMA

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

GRID = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
# Three clients with two frames each (one to fine-tune on, one to validate on), every client
# present and every transfer instant (no radio): one round, then personalisation, in seconds
# (on one torch thread: several on a loaded 2-core machine is ten times slower).
TINY = ["learning.enabled=true", "clients.count=3", "clients.ideal_connectivity=true", "radio=null",
        "scheduling.policy=all_connected", "aggregation.round_deadline_s=10",
        "aggregation.max_rounds=1", "duration_s=20", "learning.data.synthetic.segments=5",
        "learning.data.synthetic.frames=2", "learning.data.clients=3",
        "learning.data.heldout_segments=2", "learning.local.batch_size=2", "learning.local.threads=1"]
# Large fine-tune steps, so that TAP finds tasks to take back from the global model.
PERSONAL = ["learning.personalisation={methods: [finetune, tap], local_epochs: 2}", "learning.local.lr=0.01"]


@pytest.fixture(scope="module", autouse=True)
def _torch_threads():
    """The runs train on one torch thread (fast on a shared machine); later tests get back theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same scenario and seed run twice."""
    from cosim.runner import run_scenario
    from cosim.scenario_loader import load_scenario

    root = tmp_path_factory.mktemp("personal")
    for name in ("a", "b"):
        result = run_scenario(load_scenario(GRID, [*TINY, *PERSONAL]), source=GRID, out=root / name,
                              quiet=True)
        assert result.status == "complete"
    return root / "a", root / "b"


def _metrics(run: Path):
    return pq.read_table(run / "metrics.parquet").to_pandas()


def test_per_client_rows_sit_beside_the_global_rows_that_readers_keep(runs):
    from cosim.analysis.summary import headline_curves

    run, _ = runs
    table = pq.read_table(run / "metrics.parquet")
    assert table.schema.equals(METRICS_SCHEMA)
    assert table.schema.names[-2:] == ["client", "model"]
    df = table.to_pandas()
    glob, per = df[df.client.isna()], df[df.client.notna()]
    assert glob.model.isna().all() and per.model.notna().all()
    assert set(per.model) == {"global", "finetune", "tap"}
    assert sorted(per.client.unique()) == [0, 1, 2]  # ideal connectivity: every client was bound
    summary = json.loads((run / "run.json").read_text())["summary"]["learning"]["personalisation"]
    assert [c["client"] for c in summary["clients"]] == [0, 1, 2] and not summary["left_out"]
    assert all((c["finetune_frames"], c["validation_frames"]) == (1, 1) for c in summary["clients"])
    # every (client, model, task) has its headline metric and the validation loss TAP compares
    for (client, model, task), rows in per.groupby(["client", "model", "task"]):
        assert {HEADLINE[task], "loss"} <= set(rows.metric), (client, model, task)
    rounds = json.loads((run / "run.json").read_text())["summary"]["learning"]["rounds"]
    assert (per["round"] == rounds).all()  # the rows of the run's end
    # the readers of learning curves see the global rows only, as before personalisation
    curves = headline_curves(run)
    for task, (_, times, values) in curves.items():
        rows = glob[(glob.task == task) & (glob.metric == HEADLINE[task])]
        assert np.array_equal(values, rows.value.to_numpy()) and len(times) == len(rows)


def test_the_compare_summary_row_carries_the_mean_gain_per_model_and_task(runs):
    from cosim.analysis.summary import summarise_run

    run, _ = runs
    row = summarise_run(run)
    df = _metrics(run)
    per = df[df.client.notna() & (df.metric == df.task.map(HEADLINE))].copy()
    no_truth = per.task.isin(["det2d", "det3d"]) & (per.value < 0)  # AP -1: no boxes on the frames
    per.loc[no_truth, "value"] = np.nan
    for task in HEADLINE:
        rows = per[per.task == task].pivot(index="client", columns="model", values="value")
        sign = 1.0 if TASK_INFO[task].higher_is_better else -1.0
        for model in ("finetune", "tap"):
            expected = float((sign * (rows[model] - rows["global"])).mean())
            gain = row[f"{model}_gain_{task}"]
            assert (np.isnan(gain) and np.isnan(expected)) or gain == pytest.approx(expected), (model, task)
    assert any(np.isfinite(row[f"finetune_gain_{t}"]) for t in HEADLINE)
    # cosim compare prints them under the main table
    from rich.console import Console

    from cosim.compare_table import print_summary

    console = Console(record=True, width=250)
    print_summary(pa.Table.from_pylist([row]), console)
    text = console.export_text()
    assert "personalisation: mean gain" in text and "finetune" in text and "tap" in text


def test_the_same_seed_writes_the_same_bytes(runs):
    a, b = runs
    assert (a / "metrics.parquet").read_bytes() == (b / "metrics.parquet").read_bytes()


def test_tap_never_scores_below_both_candidates_on_the_frames_it_chose_on(runs):
    run, _ = runs
    df = _metrics(run)
    loss = df[df.client.notna() & (df.metric == "loss")]
    total = loss.groupby(["client", "model"]).value.sum().unstack()
    assert (total["tap"] <= total[["global", "finetune"]].max(axis=1)).all(), total
    assert (total["tap"] <= total["finetune"]).all(), total  # it starts from the fine-tune
    info = json.loads((run / "run.json").read_text())["summary"]["learning"]["personalisation"]
    assert any(c["tap_replaced"] for c in info["clients"])  # the rule had something to do
    per_task = loss.set_index(["client", "model", "task"]).value
    for entry in info["clients"]:
        for task in entry["tap_replaced"]:  # every module of a replaced task is the global one
            assert per_task[(entry["client"], "tap", task)] == per_task[(entry["client"], "global", task)]


def _state(adapter: float, x: float, y: float) -> dict[str, torch.Tensor]:
    return {"task_adapter.w": torch.tensor(adapter), "heads.x.w": torch.tensor(x),
            "heads.y.w": torch.tensor(y)}


def test_tap_replaces_a_tasks_modules_only_past_the_margin_and_without_hurting_the_others():
    """Hand-made losses: a task's loss is the sum of its modules' weights; x and y share the
    task adapter."""
    reach = {"x": ["task_adapter", "heads.x"], "y": ["task_adapter", "heads.y"]}

    def score(state):
        return {t: float(sum(state[f"{m}.w"] for m in names)) for t, names in reach.items()}

    def select(personal, global_, margin):
        return tap_select(["x", "y"], reach.__getitem__, personal, score(personal), global_,
                          score(global_), score, margin)

    personal = _state(adapter=1.0, x=1.0, y=1.0)  # losses x 2, y 2
    better_x = _state(adapter=1.0, x=0.5, y=5.0)  # x 1.5, y 6
    state, replaced, losses = select(personal, better_x, margin=0.1)
    assert replaced == ["x"] and losses == {"x": 1.5, "y": 2.0}
    assert state["heads.x.w"] == 0.5 and state["heads.y.w"] == 1.0
    assert select(personal, better_x, margin=0.5)[1] == []  # 1.5 + 0.5 is not below 2
    # x would gain 0.5 with the global modules, but y would lose 2 through the shared adapter
    shared_hurts_y = _state(adapter=3.0, x=-1.5, y=5.0)  # x 1.5, y 8
    state, replaced, losses = select(personal, shared_hurts_y, margin=0.0)
    assert replaced == [] and state is personal and losses == {"x": 2.0, "y": 2.0}


def test_a_zero_epoch_fine_tune_scores_exactly_as_the_global_model(tmp_path):
    """Through ``personalise``, on a global state that is not what the model holds: the global
    rows are that state scored on the client's last frame, and a fine-tune of zero epochs from it
    scores the same. A client no vehicle carried is left out (``clients: bound``)."""
    from cosim.learning.data.datasets import ClientDataset
    from cosim.learning.federated.clients import Client
    from cosim.learning.federated.evaluation import GlobalEvaluation
    from cosim.learning.federated.setup import build_learning
    from cosim.learning.local import evaluate
    from cosim.scenario_loader import load_scenario
    from cosim.traces import TraceSet

    sc = load_scenario(GRID, [*TINY, "learning.personalisation={methods: [finetune], local_epochs: 0}"])
    setup = build_learning(sc.learning, sc.seeds())
    g = torch.Generator().manual_seed(5)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
             for k, v in setup.model.export_modules(setup.model.module_names()).items()}
    traces = TraceSet(tmp_path, 1000)
    table = traces.table("metrics", METRICS_SCHEMA)
    evaluation = GlobalEvaluation(setup.model, lambda: [], sc.learning.evaluation, table)
    clients = [Client(i, d.shard, ever_bound=i != 1) for i, d in enumerate(setup.datasets)]
    host = SimpleNamespace(cfg=sc.learning, seed=sc.seeds()["training"], env=SimpleNamespace(now=20.0),
                           model=setup.model, datasets=setup.datasets,
                           global_state=state, evaluation=evaluation,
                           registry=SimpleNamespace(clients=clients), round=1)
    summary = personalise(host)
    traces.close(complete=True)
    assert [c["client"] for c in summary["clients"]] == [0, 2]
    df = _metrics(tmp_path)
    assert set(df.model) == {"global", "finetune"} and set(df.client) == {0, 2}
    key = ["client", "task", "metric"]
    glob = df[df.model == "global"].set_index(key).value
    tuned = df[df.model == "finetune"].set_index(key).value
    assert glob.index.equals(tuned.index)
    assert np.array_equal(glob.to_numpy(), tuned.to_numpy(), equal_nan=True)
    _, validation = split_frames(setup.datasets[2].shard, sc.learning.personalisation.validation_share)
    batches = ClientDataset(validation, setup.cache).ordered_batches(8)
    tasks = setup.datasets[2].tasks
    expected = evaluate(setup.model, state, batches, tasks=tasks, settings=sc.learning.evaluation,
                        with_loss=True)
    for task in tasks:
        for metric, value in expected[task].items():
            assert glob[(2, task, metric)] == pytest.approx(value, nan_ok=True, rel=0, abs=0)


def test_report_shows_per_client_metrics_and_the_mean_gain(runs, monkeypatch):
    from cosim.analysis import report as report_module

    run, _ = runs
    monkeypatch.setattr(report_module, "ALL_FIGURES", {})  # the personalisation section only
    page = report_module.write_report(run).read_text()
    assert "<h2>Personalisation per client</h2>" in page
    assert "data-figure='personalisation'" in page
    assert (run / "report" / "figures" / "personalisation.png").is_file()
    tables = page.split("class=\"dataframe summary personal\"")
    assert len(tables) == 3  # per client, then the mean per task
    per_client = tables[1].split("</table>")[0]
    for column in ("client", "task", "global", "finetune", "tap", "finetune gain", "tap gain"):
        assert f"<th>{column}</th>" in per_client
    assert per_client.count("<tr") == 1 + 3 * len(HEADLINE)  # header + 3 clients x 4 tasks
    assert tables[2].split("</table>")[0].count("<tr") == 1 + len(HEADLINE)


@pytest.mark.parametrize(("setting", "says"), [
    ("{validation_share: 0}", "validation_share: Input should be greater than 0"),
    ("{methods: [tap, tap]}", "methods: each method once"),
    ("{methods: []}", "methods: List should have at least 1 item"),
    ("{local_epochs: -1}", "local_epochs: Input should be greater than or equal to 0"),
    ("{at: start}", "at: Input should be 'end'"),
])
def test_bad_settings_are_one_line_errors(setting, says):
    from cosim.scenario_loader import load_scenario

    with pytest.raises(InputError) as err:
        load_scenario(GRID, [*TINY, f"learning.personalisation={setting}"])
    line = err.value.line()
    assert "\n" not in line and f"learning.personalisation.{says}" in line, line


def test_a_metrics_table_without_the_new_columns_still_reads():
    """Runs written before per-client rows: the readers take every row as global."""
    from cosim.analysis.summary import global_rows, per_client

    old = pa.table({"round": pa.array([0], pa.int32()), "sim_time_s": [0.0], "task": ["seg3d"],
                    "metric": ["mIoU"], "value": [0.5]}).to_pandas()
    assert len(global_rows(old)) == 1
    assert per_client(Path("/nonexistent")).empty
