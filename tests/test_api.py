"""cosim.api: runs and compares from Python, read back as tidy frames; the quickstart notebook."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from doc_snippets import api_snippets
from typer.testing import CliRunner

from cosim import api
from cosim.cli import app
from cosim.errors import InputError, MissingDependencyError

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
GRID_SMALL = REPO / "scenarios" / "grid_small.yaml"
RADIO_ONLY = ["duration_s=30", "learning=null"]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """examples/quickstart.ipynb executed in a fresh kernel from its own folder of a copy of the
    checkout, as a user opens it: its relative paths (the scenario, OUT = runs/quickstart) resolve
    against examples/."""
    import shutil

    import nbformat
    from nbclient import NotebookClient

    checkout = tmp_path_factory.mktemp("quickstart")
    shutil.copytree(REPO / "scenarios", checkout / "scenarios")
    (checkout / "examples").mkdir()
    shutil.copy(REPO / "examples" / "quickstart.ipynb", checkout / "examples")
    mp = pytest.MonkeyPatch()
    mp.delenv("COSIM_QUICKSTART_OUT", raising=False)
    try:
        nb = nbformat.read(checkout / "examples" / "quickstart.ipynb", as_version=4)
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(checkout / "examples")}}).execute()
    finally:
        mp.undo()
    return nb, checkout / "examples" / "runs" / "quickstart"


def test_quickstart_notebook_runs_and_plots(quickstart):
    nb, out = quickstart
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plot
    assert (out / "compare.json").is_file() and (out / "summary.parquet").is_file()


def test_run_writes_what_the_cli_writes(tmp_path):
    result = CliRunner().invoke(app, ["run", str(GRID_SMALL), "--out", str(tmp_path / "cli"), "-q",
                                      *[a for o in RADIO_ONLY for a in ("--set", o)]])
    assert result.exit_code == 0, result.output
    run = api.run(GRID_SMALL, out=tmp_path / "api", overrides=RADIO_ONLY)
    import polars as pl

    cli = api.load_run(tmp_path / "cli")
    assert run.path == tmp_path / "api" and run.status == cli.status == "complete"
    files = sorted(p.name for p in (tmp_path / "cli").glob("*.parquet"))
    assert files == sorted(p.name for p in run.path.glob("*.parquet"))
    assert "handoffs.parquet" in files and "metrics.parquet" not in files
    for name in files:  # same scenario and seed: byte-identical traces
        assert (run.path / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    written = json.loads((tmp_path / "cli" / "run.json").read_text())
    for key in ("scenario", "seed", "summary", "traces", "layers", "scenario_file"):
        assert run.info[key] == written[key], key
    assert (cli.seed, cli.scenario, cli.summary) == (written["seed"], written["scenario"],
                                                     written["summary"])
    assert cli.policy is None and cli.tables() == list(written["traces"])
    handoffs = pq.read_table(tmp_path / "cli" / "handoffs.parquet")
    assert cli.table("handoffs").equals(handoffs.to_pandas())
    assert cli.table("handoffs", backend="polars").equals(pl.from_arrow(handoffs))
    with pytest.raises(InputError, match="wrote no metrics table"):
        cli.metrics()


def test_run_takes_a_loaded_scenario_or_a_dict(tmp_path):
    import yaml

    from cosim.scenario_loader import load_scenario

    short = ["duration_s=10", "learning=null"]
    sc = load_scenario(GRID_SMALL, short)
    first = api.run(sc, out=tmp_path / "a", seed=3)  # overrides or a seed: re-validated
    raw = yaml.safe_load(GRID_SMALL.read_text())  # grid_small reads no files: no relative paths
    second = api.run(raw, out=tmp_path / "b", seed=3, overrides=short)
    assert first.seed == second.seed == 3 and first.scenario == second.scenario
    assert (first.path / "radio.parquet").read_bytes() == (second.path / "radio.parquet").read_bytes()
    with pytest.raises(InputError, match="duration_s"):
        api.run({**raw, "duration_s": -1})
    # a compare of an in-memory scenario checks its grid before writing anything
    for bad, message in (({"policies": ["best"]}, "best"), ({"seeds": ["a"]}, "seeds")):
        with pytest.raises(InputError, match=message):
            api.compare(raw, tmp_path / "cmp", **bad)
    assert not (tmp_path / "cmp").exists()


def test_load_compare_frames_have_one_row_per_run(quickstart):
    _, out = quickstart
    spec = json.loads((out / "compare.json").read_text())
    written = pq.read_table(out / "summary.parquet").to_pandas()
    cmp = api.load_compare(out)
    grid = {(p, a, s) for p in spec["policies"] for a in spec["aggregations"] for s in spec["seeds"]}
    assert len(grid) >= 2 and len(cmp.runs) == len(grid)
    for run in cmp.runs:  # the keys come from each run's own run.json
        info = json.loads((run.path / "run.json").read_text())
        sc = info["scenario"]
        assert (run.policy, run.aggregation, run.seed) == (
            sc["scheduling"]["policy"], sc["aggregation"]["method"], info["seed"])
    assert {(r.policy, r.aggregation, r.seed) for r in cmp.runs} == grid

    summary = cmp.summary()
    assert list(summary.columns[:4]) == ["policy", "aggregation", "seed", "run_dir"]
    assert len(summary) == len(written) == len(grid)
    for _, row in summary.iterrows():
        info = json.loads((Path(row.run_dir) / "run.json").read_text())
        assert (row.policy, row.aggregation, row.seed) == (
            info["scenario"]["scheduling"]["policy"], info["scenario"]["aggregation"]["method"],
            info["seed"])
        same = written[(written.policy == row.policy) & (written.seed == row.seed)
                       & (written.aggregation == row.aggregation)]
        assert len(same) == 1
        for column in ("rounds", "attempts", "completion_rate", "final_seg3d", "bytes_up"):
            a, b = row[column], same.iloc[0][column]
            assert a == b or (math.isnan(a) and math.isnan(b)), column

    pairs = cmp.pairs()
    assert len(pairs) == len(pq.read_table(out / "pairs.parquet"))
    assert {"measure", "a", "b", "mean_a_minus_b", "ci_low", "ci_high", "p_holm",
            "verdict"} <= set(pairs.columns)

    metrics = cmp.metrics()
    assert list(metrics.columns[:4]) == ["policy", "aggregation", "seed", "run_dir"]
    for run_dir, rows in metrics.groupby("run_dir"):
        own = pq.read_table(Path(run_dir) / "metrics.parquet").to_pandas()
        assert len(rows) == len(own) > 0
        assert rows.value.tolist() == own.value.tolist()
        info = json.loads((Path(run_dir) / "run.json").read_text())
        assert set(rows.policy) == {info["scenario"]["scheduling"]["policy"]}
        assert set(rows.seed) == {info["seed"]}
    assert metrics.run_dir.nunique() == len(grid)

    participation = cmp.table("participation", backend="polars")
    assert participation.columns[:4] == ["policy", "aggregation", "seed", "run_dir"]
    assert participation.height == sum(
        pq.read_metadata(r.path / "participation.parquet").num_rows for r in cmp.runs)


def test_wrong_paths_are_input_errors(quickstart, tmp_path):
    _, out = quickstart
    (tmp_path / "file.txt").write_text("x")
    cases = [(api.load_run, tmp_path / "missing", "no such folder"),
             (api.load_run, tmp_path / "file.txt", "not a folder"),
             (api.load_run, tmp_path, "not a cosim run folder"),
             (api.load_run, out, "use load_compare"),
             (api.load_compare, tmp_path, "not a cosim compare folder"),
             (api.load_compare, out / "runs" / "random-sync-seed0", "use load_run")]
    for load, path, message in cases:
        with pytest.raises(InputError, match=message):
            load(path)
    run = api.load_compare(out).runs[0]
    with pytest.raises(InputError, match="wrote no nope table"):
        run.table("nope")
    with pytest.raises(InputError, match="unknown backend"):
        run.metrics(backend="arrow")


def test_log_metrics_to_tensorboard(quickstart, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, out = quickstart
    cmp = api.load_compare(out)
    assert api.log_metrics(cmp, tensorboard_dir=tmp_path) == sum(
        pq.read_metadata(r.path / "metrics.parquet").num_rows for r in cmp.runs)
    for run in cmp.runs:
        events = EventAccumulator(str(tmp_path / run.path.name))
        events.Reload()
        own = pq.read_table(run.path / "metrics.parquet").to_pandas()
        miou = own[(own.task == "seg3d") & (own.metric == "mIoU")]
        scalars = events.Scalars("seg3d/mIoU")
        assert [s.step for s in scalars] == miou["round"].tolist()
        assert [s.value for s in scalars] == pytest.approx(miou.value.tolist(), rel=1e-6)
        relative = [s.wall_time - scalars[0].wall_time for s in scalars]  # simulated seconds
        assert relative == pytest.approx((miou.sim_time_s - miou.sim_time_s.iloc[0]).tolist())
        assert len(events.Tags()["scalars"]) == len(own.groupby(["task", "metric"]))


def test_log_metrics_to_mlflow(quickstart, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")  # not in the dev extra: heavy; runs where installed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 otherwise wants a database
    _, out = quickstart
    run = api.load_compare(out).runs[0]
    own = pq.read_table(run.path / "metrics.parquet").to_pandas()
    assert api.log_metrics(run, mlflow=True) == len(own)
    logged = mlflow.search_runs(search_all_experiments=True)
    assert len(logged) == 1 and logged["tags.mlflow.runName"][0] == run.path.name
    assert logged["params.policy"][0] == run.policy and logged["params.seed"][0] == str(run.seed)
    history = mlflow.MlflowClient().get_metric_history(logged.run_id[0], "seg3d/mIoU")
    miou = own[(own.task == "seg3d") & (own.metric == "mIoU")]
    assert [(m.step, m.value) for m in history] == list(zip(miou["round"], miou.value, strict=True))


def test_log_metrics_says_what_to_install(quickstart, tmp_path, monkeypatch):
    _, out = quickstart
    run = api.load_compare(out).runs[0]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingDependencyError, match="pip install tensorboard"):
        api.log_metrics(run, tensorboard_dir=tmp_path / "tb")
    with pytest.raises(MissingDependencyError, match="pip install mlflow"):
        api.log_metrics(run, mlflow=True)
    assert not (tmp_path / "tb").exists()
    with pytest.raises(InputError, match="tensorboard_dir"):
        api.log_metrics(run)


def test_documented_python_api_snippets_run(quickstart, tmp_path, monkeypatch):
    """Every Python API example of the README and the docs works as written (paths pointed at
    test folders); an example shown on several pages runs once."""
    _, out = quickstart
    snippets = api_snippets()
    assert snippets, "the README and the docs show the Python API"
    for number, snippet in enumerate(snippets):
        folder = tmp_path / f"snippet{number}"
        folder.mkdir()
        monkeypatch.chdir(folder)
        code = snippet.replace('"scenarios/grid_small.yaml"', repr(str(GRID_SMALL)))
        scope: dict = {}
        exec(code.replace('"runs/cmp"', repr(str(out))), scope)
        assert scope["run"].status == "complete" and (folder / "runs" / "api-demo" / "run.json").is_file()
        assert len(scope["handoffs"]) > 0
        assert len(scope["summary"]) == len(api.load_compare(out).runs)
        assert len(scope["curves"]) > 0 and set(scope["curves"].policy) == {"availability_aware", "random"}
