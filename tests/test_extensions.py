"""Each extension point takes an implementation from the user's own module, named
``module:Name`` in the scenario: the policy, aggregation strategy, PEFT method, trainer backend and
task of the how-to guides (docs/how-to/add-*.md), each one file written to a temporary folder as the
guide shows it, run end to end in a real run."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from doc_snippets import extension_modules
from test_remote_training import SETTINGS
from typer.testing import CliRunner

from cosim.api import run
from cosim.cli import app

pytestmark = pytest.mark.slow  # real runs with learning: outside the unit loop

GRID_SMALL = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
DOCUMENTED_MODULES = ("my_policies", "my_strategies", "my_peft", "my_trainers", "my_tasks")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write ``name.py`` with ``source`` into a folder on sys.path; forgotten afterwards."""
    folder = tmp_path / "user_code"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written: list[str] = []

    def write(name: str, source: str | None = None) -> None:
        """``source``, or the module as its how-to guide shows it."""
        text = textwrap.dedent(source) if source is not None else extension_modules()[name]
        (folder / f"{name}.py").write_text(text)
        written.append(name)

    yield write
    for name in written:
        sys.modules.pop(name, None)


def _rounds(out: Path) -> dict[int, list[int]]:
    rows = pq.read_table(out / "participation.parquet").to_pylist()
    by_round: dict[int, list[int]] = {}
    for row in rows:
        by_round.setdefault(row["round"], []).append(row["client"])
    return {r: sorted(c) for r, c in by_round.items()}


def test_a_policy_from_the_users_module(user_module, tmp_path):
    user_module("my_policies")
    out = tmp_path / "run"
    run(GRID_SMALL, out=out, overrides=[*SETTINGS, "scheduling.policy=my_policies:LowestFirst",
                                        "scheduling.per_round=2"])
    chosen = [c for c in sys.modules["my_policies"].LowestFirst.chosen if c]
    rounds = _rounds(out)
    assert chosen and [rounds[r] for r in sorted(rounds)] == chosen
    assert all(len(c) <= 2 for c in chosen)


def _aggregation(method: str, **extra) -> str:
    section = {"method": method, "round_deadline_s": 15, "max_rounds": 3, **extra}
    return "aggregation=" + json.dumps(section)


def test_a_strategy_from_the_users_module_with_its_own_settings(user_module, tmp_path):
    """At server_lr 1 the toy is FedAvg: the same clients complete the same rounds, and the
    first round's model scores as the built-in sync strategy's, within the float rounding of
    start + (mean - start) (2e-10 in the weights, in fp32). Later rounds are not compared: local
    training is discontinuous in the weights (box matching, argmax), so a last-bit difference in
    a round's start can move the next round's model by 1e-3."""
    user_module("my_strategies")
    runs = {}
    for name, section in [("sync", _aggregation("sync")),
                          ("toy", _aggregation("my_strategies:DampedFedAvg", server_lr=1.0)),
                          ("damped", _aggregation("my_strategies:DampedFedAvg", server_lr=0.25))]:
        runs[name] = run(GRID_SMALL, out=tmp_path / name,
                         overrides=[*SETTINGS, section, "learning.precision=fp32"])
    assert _rounds(runs["toy"].path) == _rounds(runs["sync"].path)
    metrics = {n: r.metrics().sort_values(["round", "task", "metric"]) for n, r in runs.items()}
    assert len(metrics["toy"]) == len(metrics["sync"]) == len(metrics["damped"]) > 0
    first = {n: m[m["round"] <= 1]["value"].to_numpy() for n, m in metrics.items()}
    assert len(first["sync"]) > 0 and abs(first["toy"] - first["sync"]).max() < 1e-6
    assert abs(first["damped"] - first["sync"]).max() > 1e-3  # the setting is used
    assert runs["toy"].info["scenario"]["aggregation"]["server_lr"] == 1.0


def test_a_strategys_own_settings_are_checked_before_the_run_folder(user_module, tmp_path):
    user_module("my_strategies")
    out = tmp_path / "run"
    sets = [*SETTINGS, _aggregation("my_strategies:DampedFedAvg", server_lr=2.0)]
    result = CliRunner().invoke(app, ["run", str(GRID_SMALL), "--out", str(out), "-q",
                                      *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    assert "aggregation.server_lr: " in result.output and not out.exists()


def test_a_peft_method_from_the_users_module(user_module, tmp_path):
    user_module("my_peft")
    out = tmp_path / "run"
    result = run(GRID_SMALL, out=out, overrides=[*SETTINGS, "learning.model.peft.method=my_peft:shifts"])
    state = torch.load(out / "global_modules.pt", map_location="cpu", weights_only=True)
    offsets = {k: v for k, v in state.items() if k.startswith("peft.") and k.endswith(".offset")}
    assert offsets and any(v.abs().max() > 0 for v in offsets.values())  # trained
    assert result.info["summary"]["learning"]["trainer"]["mode"] == "sequential"  # not stacked


def test_a_trainer_backend_from_the_users_module(user_module, tmp_path):
    user_module("my_trainers")
    out = tmp_path / "run"
    result = run(GRID_SMALL, out=out,
                 overrides=[*SETTINGS, "learning.local.backend=my_trainers:CountingTrainer"])
    counts = sys.modules["my_trainers"].CountingTrainer.counts
    completed = sum(1 for r in pq.read_table(out / "participation.parquet").to_pylist()
                    if r["outcome"] == "completed")
    assert sum(counts) == completed > 0
    assert result.info["summary"]["learning"]["trainer"]["backend"] == "counting"


def test_a_task_from_the_users_module(user_module, tmp_path):
    from cosim.learning.tasks import SPECS

    user_module("my_tasks")
    out = tmp_path / "run"
    try:
        run(GRID_SMALL, out=out,
            overrides=[*SETTINGS, "learning.model.tasks=[seg3d, my_tasks:DRIVABLE_SPACE]"])
    finally:
        SPECS.pop("drivable", None)  # entered when the model was built: not for later tests
    rows = [r for r in pq.read_table(out / "metrics.parquet").to_pylist() if r["task"] == "drivable"]
    assert rows and {r["metric"] for r in rows} == {"mIoU"}
    assert all(0.0 <= r["value"] <= 1.0 for r in rows) and len({r["round"] for r in rows}) > 1
    state = torch.load(out / "global_modules.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("heads.drivable.") for k in state)


@pytest.mark.parametrize(("setting", "says"), [
    ("scheduling.policy=toy_bad:NotAPolicy", "is not a usable policy"),
    ("learning.local.backend=toy_bad:NotAPolicy", "is not a usable trainer backend"),
    ("learning.model.peft.method=toy_bad:NOT_CALLABLE", "is not a usable PEFT method"),
    ("aggregation.method=toy_bad:NotAPolicy", "is not a usable aggregation method"),
    ("learning.model.tasks=[seg3d, toy_bad:NOT_CALLABLE]", "is not a usable task"),
])
def test_a_user_object_of_the_wrong_kind_is_bad_input_before_the_run_folder(
        user_module, tmp_path, setting, says):
    user_module("toy_bad", """
        NOT_CALLABLE = 3

        class NotAPolicy:
            pass
    """)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(GRID_SMALL), "--out", str(out), "-q",
                                      *[a for s in [*SETTINGS, setting] for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    assert says in result.output and not out.exists()


@pytest.mark.parametrize(("name", "says"), [
    ("Takes", "is not a usable PEFT method"),  # a class: calling it makes an instance
    ("as_list", "returned list, not a dict"),
    ("dotted", "returned the module name 'a.b'"),
    ("not_modules", "returned int as 'x', not a torch module"),
    ("fails", "failed on the image tower: ZeroDivisionError"),
])
def test_a_peft_method_that_cannot_attach_is_bad_input_at_validate_and_before_the_run_folder(
        user_module, tmp_path, name, says):
    """A PEFT method is called once on the model without weights before the run: what it
    returns (or raises) is the user's input, said in one line naming the field."""
    user_module("toy_peft", """
        from torch import nn

        class Takes:
            def __init__(self, *a, **k):
                pass

            def select(self, view, candidates, k):
                return list(candidates)[:k]

        def as_list(transformer, branch, cfg):
            return [nn.Linear(2, 2)]

        def dotted(transformer, branch, cfg):
            return {"a.b": nn.Linear(2, 2)}

        def not_modules(transformer, branch, cfg):
            return {"x": 3}

        def fails(transformer, branch, cfg):
            return 1 / 0
    """)
    sets = [a for s in [*SETTINGS, f"learning.model.peft.method=toy_peft:{name}"]
            for a in ("--set", s)]
    checked = CliRunner().invoke(app, ["validate", str(GRID_SMALL), *sets])
    assert checked.exit_code == 2, checked.output
    assert len(checked.output.strip().splitlines()) == 1, checked.output
    assert "learning.model.peft.method" in checked.output and says in checked.output
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(GRID_SMALL), "--out", str(out), "-q", *sets])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert not out.exists() and not (tmp_path / "run.partial").exists()


@pytest.mark.parametrize(("source", "says"), [
    ("def broken(:\n", "raised SyntaxError"),
    ("raise RuntimeError('no licence server')\n", "raised RuntimeError: no licence server"),
    ("import sys\nsys.exit(0)\n", "raised SystemExit"),
])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_users_module_that_fails_as_it_is_imported_is_one_line(user_module, tmp_path, source,
                                                                  says, command):
    user_module("toy_failing", source)
    out = tmp_path / "run"
    extra = ["--out", str(out), "-q"] if command == "run" else []
    result = CliRunner().invoke(app, [command, str(GRID_SMALL), *extra, *[
        a for s in [*SETTINGS, "scheduling.policy=toy_failing:P"] for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and "scheduling.policy" in lines[0] and says in lines[0], result.output
    assert not out.exists() and not (tmp_path / "run.partial").exists()


def test_a_compare_checks_a_users_aggregation_before_its_folder(user_module, tmp_path):
    user_module("toy_policies", """
        class NotAStrategy:
            pass
    """)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(GRID_SMALL), "--out", str(out), "-q",
                                      "--policies", "random", "--seeds", "0",
                                      "--aggregations", "toy_policies:NotAStrategy",
                                      *[a for s in SETTINGS for a in ("--set", s)]])
    assert result.exit_code == 2 and "aggregation.method" in result.output, result.output
    assert not out.exists()


MISBEHAVING_POLICIES = """
    class Ghost:
        reads_losses = False

        def __init__(self, seed: int = 0):
            pass

        def select(self, view, candidates, k):
            return [999]


    class Raises(Ghost):
        def select(self, view, candidates, k):
            raise RuntimeError("my policy broke")


    class Text(Ghost):
        def select(self, view, candidates, k):
            return "01"
"""


@pytest.mark.parametrize(("name", "says"), [("Ghost", "select returned [999]"),
                                            ("Raises", "select raised RuntimeError: my policy broke"),
                                            ("Text", "select returned '01'")])
def test_a_policy_whose_select_misbehaves_fails_its_run_in_one_line(user_module, tmp_path, name,
                                                                     says):
    """What the user's select raises or returns wrongly is said naming the field; the run's
    folder says failed (its code ran: no check before the run could know)."""
    user_module("toy_misbehaving", MISBEHAVING_POLICIES)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(GRID_SMALL), "--out", str(out), "-q", *[
        a for s in [*SETTINGS, f"scheduling.policy=toy_misbehaving:{name}"] for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and "scheduling.policy" in lines[0] and says in lines[0], result.output
    info = json.loads((tmp_path / "run.partial" / "run.json").read_text())
    assert info["status"] == "failed" and says in info["error"]


def test_a_compare_whose_run_fails_says_so_in_compare_json(user_module, tmp_path):
    user_module("toy_misbehaving", MISBEHAVING_POLICIES)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(GRID_SMALL), "--out", str(out), "-q",
                                      "--policies", "toy_misbehaving:Raises", "--seeds", "0",
                                      "--jobs", "1", *[a for s in SETTINGS for a in ("--set", s)]])
    assert result.exit_code == 2 and "my policy broke" in result.output, result.output
    info = json.loads((out / "compare.json").read_text())
    assert info["status"] == "failed" and "my policy broke" in info["error"]
