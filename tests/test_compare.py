"""cosim compare: a grid of runs on one recorded connectivity per seed, summarised."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cosim.cli import app

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

# max_rounds: the runs still span the whole recording (connectivity must equal it)
LEARNING = ["duration_s=40", "aggregation.max_rounds=3", "learning.enabled=true",
            "clients.count=3", "scheduling.per_round=2",
            "aggregation.round_deadline_s=10", "learning.data.synthetic.segments=5",
            "learning.data.synthetic.frames=2", "learning.data.clients=3",
            "learning.data.heldout_segments=2", "learning.local.batch_size=2"]


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    grid_small = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    out = tmp_path_factory.mktemp("compare") / "cmp"
    result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(out), "--policies",
                                      "availability_aware,random", "--seeds", "0,1", "--jobs", "2",
                                      "-q", *_sets(LEARNING)])
    assert result.exit_code == 0, result.output
    return out, result


def test_compare_two_policies_two_seeds(compared):
    out, result = compared
    summary = pq.read_table(out / "summary.parquet").to_pandas()
    assert len(summary) == 4
    assert list(zip(summary.policy, summary.seed, strict=True)) == [
        ("availability_aware", 0), ("availability_aware", 1), ("random", 0), ("random", 1)]
    assert (summary.aggregation == "sync").all() and (summary.status == "complete").all()
    assert summary.rounds.le(3).all() and (summary.sim_time_s == 40).all()
    # the same connectivity for every policy of a seed, different between seeds
    per_seed = summary.groupby("seed").connectivity_digest.nunique()
    assert (per_seed == 1).all()
    assert summary.connectivity_digest.nunique() == 2
    for seed in (0, 1):
        runs = [Path(p) for p in summary[summary.seed == seed].run_dir]
        handoffs = [(r / "handoffs.parquet").read_bytes() for r in runs]
        assert handoffs[0] == handoffs[1]
    # the policies did act differently on it
    assert summary.attempts.gt(0).all()
    assert summary.final_seg3d.notna().all()
    assert {"time_to_target_seg3d_s", "dropped_deadline", "bytes_up", "mean_staleness",
            "participation_rate", "completion_rate", "wall_time_s"} <= set(summary.columns)
    csv = (out / "summary.csv").read_text().splitlines()
    assert len(csv) == 5 and csv[0].startswith("policy,aggregation,seed")
    info = json.loads((out / "compare.json").read_text())
    assert info["seeds"] == [0, 1] and info["connectivity_identical_per_seed"]
    # curves with resolution: every round evaluated (grid_small's scenario says every 2)
    assert info["eval_every_rounds"] == 1
    metrics = pq.read_table(Path(summary.run_dir[0]) / "metrics.parquet").to_pandas()
    assert sorted(metrics["round"].unique()) == list(range(summary.rounds[0] + 1))
    assert "availability_aware" in result.output and "±" in result.output


def test_compare_writes_and_prints_the_paired_verdicts(compared):
    out, result = compared
    summary = pq.read_table(out / "summary.parquet").to_pandas()
    pairs = pq.read_table(out / "pairs.parquet").to_pandas()
    assert len((out / "pairs.csv").read_text().splitlines()) == len(pairs) + 1
    assert {"completion_rate", "bytes_up", "final_seg3d", "area_seg3d", "last3_seg3d",
            "time_to_target_seg3d_s"} <= set(pairs.measure)
    row = pairs[pairs.measure == "completion_rate"].iloc[0]
    assert (row.a, row.b, row.seeds) == ("availability_aware", "random", 2)
    by = summary.set_index(["policy", "seed"]).completion_rate
    diffs = [by["availability_aware", s] - by["random", s] for s in (0, 1)]
    assert row.mean_a_minus_b == pytest.approx(np.mean(diffs))
    assert set(pairs.decision) <= {"a_better", "b_better", "equivalent", "undecided"}
    # the pairs table is printed first, before the mean ± std table
    assert result.output.index("paired differences") < result.output.index("mean ± sample std")
    info = json.loads((out / "compare.json").read_text())
    assert info["margins"]["seg3d"] == 0.01 and "Holm" in info["pairs_method"]


def test_compare_rejects_bad_grids(grid_small, tmp_path):
    for args in (["--policies", "best"], ["--seeds", "a,b"], ["--aggregations", "fedmagic"],
                 ["--margin", "seg3d=-1"], ["--margin", "accuracy=0.1"]):
        result = CliRunner().invoke(app, ["compare", str(grid_small), "--out",
                                          str(tmp_path / "c"), *args, *_sets(LEARNING)])
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().startswith("error: ") and "\n" not in result.stderr.strip()
    result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(tmp_path / "c"),
                                      "--set", "learning=null"])
    assert result.exit_code == 2 and "--set learning.enabled=true" in result.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("which", ["compare", "run"])
def test_report_renders_plots_that_are_not_blank(compared, tmp_path, which):
    from matplotlib.image import imread

    from cosim.analysis.plots import FIGURES
    from cosim.analysis.radio_plots import RADIO_FIGURES

    out, _ = compared
    source = out if which == "compare" else out / "runs" / "random-sync-seed1"
    result = CliRunner().invoke(app, ["report", str(source), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r" / "report.html").read_text()
    # sync runs only: the staleness figure is skipped, with the reason; a compare opens with
    # its paired verdicts (the forest plot)
    forest = which == "compare"
    assert page.count("src='data:image/png;base64,") == (len(FIGURES) + len(RADIO_FIGURES) - 1
                                                         + forest)
    assert ("Paired comparison" in page) == forest
    assert "What each headline metric rests on" in page  # run.json's heldout_support
    if forest:
        assert page.index("Paired comparison") < page.index("<h2>Summary</h2>")
    assert "Skipped: every run aggregates synchronously" in page
    assert "http://" not in page and "https://" not in page  # viewable offline
    assert "round costs: the trained <b>cosim-tiny</b>" in page  # no deployed_model here
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/run.json"))]
    said = {r["summary"]["learning"]["precision"]["precision"] for r in runs}
    assert said and all(f"learning precision: <b>{p}</b>" in page for p in said)
    pngs = sorted((tmp_path / "r" / "figures").glob("*.png"))
    assert {p.stem for p in pngs} == {"metric_vs_time", "participation", "gantt", "link_windows",
                                      "handoff_map", "bytes", *RADIO_FIGURES,
                                      *(["pairs"] if forest else [])}
    for png in pngs:
        pixels = imread(png)[..., :3]
        assert pixels.std() > 0.05, f"{png.name} is blank"
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, f"{png.name} is nearly blank"


def test_report_of_a_radio_only_run_says_what_is_missing(grid_small, tmp_path):
    from cosim.analysis.radio_plots import RADIO_FIGURES
    from cosim.runner import run_scenario
    from cosim.scenario_loader import load_scenario

    run_scenario(load_scenario(grid_small, ["duration_s=30", "learning=null"]), source=grid_small,
                 out=tmp_path / "run", quiet=True)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "run" / "report" / "report.html").read_text()
    # the connectivity figures (link windows, handoff map and the radio ones), not the learning ones
    assert page.count("data:image/png") == 2 + len(RADIO_FIGURES)
    assert "Skipped: no client took part in any round" in page
    bad = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 2 and "run folder" in bad.stderr


def test_documented_trace_loading_snippets_run(compared):
    """The pandas, polars and DuckDB examples of the README and the docs work on a real run."""
    from doc_snippets import trace_snippet_groups

    groups = trace_snippet_groups()
    assert groups and all(len(group) == 3 for group in groups), groups
    out, _ = compared
    run = out / "runs" / "random-sync-seed0"
    for group in groups:
        scope: dict = {}
        for block in group:
            exec(block.replace('"runs/sf_downtown-20261123-120000"', repr(str(run))), scope)
        assert scope["vehicles_over_time"].sum() > 0
        assert scope["per_vehicle"].height > 0
        assert len(scope["dwell"]) > 0 and "median_s" in scope["dwell"]
        assert "drops" in scope


def test_compare_warns_when_every_policy_completes_nearly_everything():
    import pyarrow as pa

    from cosim.compare import separation_warning

    def summary(rates):
        return pa.table({"policy": ["random", "random", "oracle", "oracle"],
                         "aggregation": ["sync"] * 4, "seed": [0, 1, 0, 1], "completion_rate": rates})

    assert "cannot separate the policies" in separation_warning(summary([0.995, 1.0, 1.0, 0.99]))
    assert separation_warning(summary([0.97, 1.0, 1.0, 1.0])) is None  # random's mean is 98.5 %
    nan = float("nan")  # no client round started: nothing to say about separation
    assert separation_warning(summary([nan, nan, 1.0, 1.0])) is None


@pytest.fixture(scope="module")
def training_streams(tmp_path_factory):
    """One recorded connectivity, two training seeds, two policies, in this process (--jobs 1)
    so that every training call's keys and updates can be kept as the journal records them."""
    from cosim.learning.federated.journal import TrainingJournal, job_keys

    grid_small = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    out = tmp_path_factory.mktemp("streams") / "cmp"
    calls: dict[str, list] = {}
    record = TrainingJournal.record

    def keep(journal, jobs, updates, balancers):
        run = journal.folder.parent.name.removesuffix(".partial")
        calls.setdefault(run, []).append(
            {tuple(k): u.modules for k, u in zip(job_keys(jobs), updates, strict=True)})
        record(journal, jobs, updates, balancers)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TrainingJournal, "record", keep)
        result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(out),
                                          "--policies", "availability_aware,random", "--seeds",
                                          "0", "--training-seeds", "0,1", "--jobs", "1", "-q",
                                          *_sets([*LEARNING, "output.checkpoint=true"])])
    assert result.exit_code == 0, result.output
    return out, result, calls


def test_training_seeds_vary_the_training_stream_alone(training_streams):
    out, result, _ = training_streams
    summary = pq.read_table(out / "summary.parquet").to_pandas()
    assert sorted(Path(p).name for p in summary.run_dir) == [
        f"{p}-sync-seed0-training{t}" for p in ("availability_aware", "random") for t in (0, 1)]
    assert (summary.seed == 0).all() and (summary.data_seed == 0).all()
    assert sorted(summary.training_seed) == [0, 0, 1, 1]
    for run_dir in summary.run_dir:
        info = json.loads((Path(run_dir) / "run.json").read_text())
        assert info["seeds"]["connectivity"] == 0 and info["seeds"]["data"] == 0
        assert info["seeds"]["training"] == info["scenario"]["learning"]["seed"]
    assert summary.connectivity_digest.nunique() == 1
    # the data stream is held: the model-free lookup baseline (the clients' and held-out data
    # only) is the same in every run
    assert summary.lookup_seg3d.nunique() == 1
    # a grid that varies only the training stream pairs on it
    pairs = pq.read_table(out / "pairs.parquet").to_pandas()
    assert (pairs[pairs.measure == "final_seg3d"].seeds == 2).all()
    spread = pq.read_table(out / "spread.parquet").to_pandas().set_index("measure")
    assert np.isfinite(spread.loc["final_seg3d", "training_sd"])
    assert np.isnan(spread.loc["final_seg3d", "connectivity_sd"])
    assert "training" in result.output


def test_common_random_numbers_across_policies(training_streams):
    """The same client, training the same round from the same start state, draws the same
    batches in every policy's run: its update is the same; another training seed changes it."""
    _, _, calls = training_streams
    first = {(p, t): calls[f"{p}-sync-seed0-training{t}"][0]
             for p in ("availability_aware", "random") for t in (0, 1)}
    for t in (0, 1):
        a, b = first[("availability_aware", t)], first[("random", t)]
        shared = set(a) & set(b)  # (client, seed, start-state digest)
        assert shared, "the two policies share no client in their first round: pick other seeds"
        for key in shared:
            for name in a[key]:
                assert np.allclose(a[key][name].numpy(), b[key][name].numpy(), atol=1e-6), name
    digests = [{k[2] for k in first[("random", t)]} for t in (0, 1)]
    assert not digests[0] & digests[1]  # another training seed: another initialisation


def test_seeds_auto_adds_seeds_until_it_stops(tmp_path):
    grid_small = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    out = tmp_path / "auto"
    args = ["compare", str(grid_small), "--out", str(out), "--policies", "availability_aware,random",
            "--seeds", "auto", "--min-seeds", "2", "--max-seeds", "3", "--decide-on",
            "final_seg3d", "--margin", "seg3d=1e-9", "--jobs", "2", "-q", *_sets(LEARNING)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "compare.json").read_text())
    assert info["seeds"] == "auto" and info["auto"]["max_seeds"] == 3 and info["looks"] == 2
    # a margin this narrow cannot be met and 2-3 seeds of a tiny run decide no difference
    assert info["stopped"] == "max_seeds" and info["seeds_used"] == [0, 1, 2]
    assert "stopped after 3 (0, 1, 2)" in result.output
    pairs = pq.read_table(out / "pairs.parquet").to_pandas()
    assert (pairs.seeds[pairs.measure == "final_seg3d"] == 3).all()
    assert pairs.ci_level.iloc[0] == pytest.approx(1 - 0.05 / 2)  # the level split over 2 looks
    assert sorted(p.name for p in (out / "recordings").iterdir()) == ["seed-0", "seed-1", "seed-2"]
    # resuming the complete compare recomputes nothing and stops the same way
    again = CliRunner().invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "compare.json").read_text())["seeds_used"] == [0, 1, 2]


def test_seeds_auto_options_need_seeds_auto(grid_small, tmp_path):
    for args in (["--max-seeds", "4"], ["--seeds", "auto", "--decide", "random"],
                 ["--seeds", "auto", "--decide", "random,best"],
                 ["--seeds", "auto", "--min-seeds", "5", "--max-seeds", "4"]):
        result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(tmp_path / "c"),
                                          "--policies", "availability_aware,random", *args,
                                          *_sets(LEARNING)])
        assert result.exit_code == 2, (args, result.output)
        assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("args", "says"), [
    (["--seeds", "auto", "--decide-on", "zzz"], "unknown measure 'zzz'"),
    (["--seeds", "auto", "--decide-on", "area,aera"], "did you mean 'area'?"),
    (["--seeds", "0,,1"], "has an empty item"),
    (["--seeds", "0,1,"], "has an empty item"),
    (["--policies", "random,,availability_aware"], "has an empty item"),
])
def test_an_unknown_measure_or_an_empty_item_is_refused_before_the_folder(grid_small, tmp_path,
                                                                         args, says):
    """--decide-on names measures the pairs table has (a name matching none would leave nothing
    to decide); a list never skips an empty item as if it were not there."""
    result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(tmp_path / "c"),
                                      *args, *_sets(LEARNING)])
    assert result.exit_code == 2, (args, result.output)
    assert len(result.output.strip().splitlines()) == 1 and says in result.output
    assert args[-2] in result.output
    if "--decide-on" in args:
        assert "known: completion_rate, bytes_up, final" in result.output
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("args", [["--seeds", "99999999999999999999999"], ["--seeds", "2147483648"],
                                  ["--data-seeds", "1" + "0" * 20], ["--target", "seg3d=nan"],
                                  ["--target", "det2d=inf"], ["--target", "pan2d=-inf"],
                                  ["--target", "seg3d=0.5", "--target", "seg3d=0.6"],
                                  ["--margin", "completion=0.1", "--margin", "completion=0.2"]])
def test_out_of_range_seeds_and_targets_are_refused_before_the_folder(grid_small, tmp_path, args):
    result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(tmp_path / "c"),
                                      *args, *_sets(LEARNING)])
    assert result.exit_code == 2, (args, result.output)
    assert len(result.output.strip().splitlines()) == 1 and args[0] in result.output
    assert not (tmp_path / "c").exists()


def test_stop_rule_decides_on_the_pairs_of_interest_only():
    import pandas as pd

    from cosim.compare_auto import AutoSeeds, stop_reason

    pairs = pd.DataFrame([
        {"measure": "completion_rate", "a": "x", "b": "y", "seeds": 3, "decision": "a_better"},
        {"measure": "area_seg3d", "a": "x", "b": "y", "seeds": 3, "decision": "equivalent"},
        {"measure": "area_seg3d", "a": "x", "b": "z", "seeds": 3, "decision": "undecided"},
        {"measure": "final_seg3d", "a": "x", "b": "y", "seeds": 3, "decision": "undecided"},
        {"measure": "time_to_target_det2d_s", "a": "x", "b": "y", "seeds": 0,
         "decision": "undecided"}])  # not measured: cannot hold the plan up
    plan = AutoSeeds(3, 8, None, ("x", "y"), ("completion_rate", "area", "time_to_target"))
    assert stop_reason(pairs, plan, 3, 0.0, 10.0) == "decided"
    every_pair = AutoSeeds(3, 8, None, (), ("completion_rate", "area"))
    assert stop_reason(pairs, every_pair, 3, 0.0, 10.0) is None
    assert stop_reason(pairs, every_pair, 8, 0.0, 10.0) == "max_seeds"
    budget = AutoSeeds(3, 8, 1.0, (), ("area",))
    assert stop_reason(pairs, budget, 4, 50.0, 20.0) == "budget"  # 50 s + 20 s > 60 s
    assert stop_reason(pairs, budget, 4, 30.0, 20.0) is None


def test_asynchronous_cells_are_evaluated_on_a_time_grid(grid_small):
    from cosim.compare import CompareGrid, aggregation_section
    from cosim.scenario_loader import ScenarioSpec

    grid = CompareGrid(("random",), ("sync", "fedasync"), (0,))
    spec = ScenarioSpec.read(grid_small)
    (key, sync), _ = aggregation_section(spec, "sync", grid)
    assert key == "aggregation" and sync["eval_every_rounds"] == 1
    later = ScenarioSpec.read(grid_small, ["aggregation.round_deadline_s=45"])
    (_, fedasync), _ = aggregation_section(later, "fedasync", grid)
    assert fedasync["eval_every_s"] == 45
    given = CompareGrid(("random",), ("fedbuff",), (0,), eval_every_s=30.0)
    (_, fedbuff), _ = aggregation_section(spec, "fedbuff", given)
    assert fedbuff["eval_every_s"] == 30.0


def test_seeds_auto_checks_stream_seeds_and_cells_before_any_run(grid_small, tmp_path):
    """With --seeds auto there is no connectivity seed to pair a stream seed with: an out-of-range
    training seed is still refused before the compare folder exists, from the CLI and the API."""
    result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(tmp_path / "c"),
                                      "--policies", "availability_aware,random", "--seeds", "auto",
                                      "--training-seeds", str(2**31), *_sets(LEARNING)])
    assert result.exit_code == 2, result.output
    assert "--training-seeds" in result.output and "at most 2147483647" in result.output
    assert not (tmp_path / "c").exists()
    from cosim import api
    from cosim.errors import InputError

    with pytest.raises(InputError, match="--decide"):
        api.compare(grid_small, tmp_path / "d", policies=["availability_aware", "random"],
                    seeds="auto", decide=["random"], overrides=LEARNING)
    assert not (tmp_path / "d").exists()


def test_relative_out_is_the_working_folders(grid_small, tmp_path, monkeypatch):
    """--out is resolved against the working folder, not the scenario's: the runs replay the
    recordings where the compare wrote them (from the CLI, and resumed from the API)."""
    from cosim import api

    monkeypatch.chdir(tmp_path)
    args = ["compare", str(grid_small), "--out", "cmp", "--policies", "availability_aware,random",
            "--seeds", "0", "-q", *_sets(LEARNING)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cmp" / "recordings" / "seed-0").is_dir()
    assert not (grid_small.parent / "cmp").exists()
    again = api.compare(grid_small, "cmp", policies=["availability_aware", "random"], seeds=[0],
                        overrides=LEARNING, resume=True)
    assert len(again.summary()) == 2


def test_a_cell_named_twice_is_refused_before_the_compare_folder(grid_small, tmp_path):
    for args in (["--policies", "random,random"], ["--aggregations", "sync,sync"],
                 ["--seeds", "0", "--training-seeds", "1,1"]):
        result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(tmp_path / "c"),
                                          *args, *_sets(LEARNING)])
        said = result.output
        assert result.exit_code == 2 and ("named more than once" in said or "each seed once" in said), (
            args, said)
        assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("streams", "bad"), [
    (["--seeds", "1", "--data-seeds", "1,3"], 3), (["--seeds", "1,3"], 3),
    (["--seeds", "auto", "--max-seeds", "4"], 0)])
def test_a_data_split_that_leaves_a_client_empty_is_refused_before_the_compare_folder(
        grid_small, tmp_path, streams, bad):
    """Each data seed draws its own Dirichlet split: the one that gives a client no frames is
    said in one line before the folder, whichever seed it is, and for every seed --seeds auto
    may add (data seeds 0 and 3 fail here)."""
    sets = [*LEARNING, "learning.data.partition=dirichlet", "learning.data.dirichlet_alpha=0.05",
            "learning.data.synthetic.segments=5", "learning.data.clients=3", "clients.count=3",
            "learning.data.heldout_segments=1"]
    result = CliRunner().invoke(app, ["compare", str(grid_small), "--out", str(tmp_path / "c"),
                                      "--policies", "random", *streams, *_sets(sets)])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "dirichlet_alpha" in lines[0] and f"data seed {bad}" in lines[0], lines
    assert not (tmp_path / "c").exists()
