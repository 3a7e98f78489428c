"""Each extension point takes an implementation from the user's own module, named
``module:Name`` in the scenario: a toy policy, aggregation strategy, PEFT method and trainer
backend, each one file written to a temporary folder, run end to end in a real run."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from test_remote_training import SETTINGS
from typer.testing import CliRunner

from cosim.api import run
from cosim.cli import app

pytestmark = pytest.mark.slow  # real runs with learning: outside the unit loop

GRID_SMALL = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write ``name.py`` with ``source`` into a folder on sys.path; forgotten afterwards."""
    folder = tmp_path / "user_code"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written: list[str] = []

    def write(name: str, source: str) -> None:
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
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
    user_module("toy_policy", """
        class LowestFirst:
            '''The k connected clients with the lowest indices.'''
            reads_losses = False
            chosen = []

            def select(self, view, candidates, k):
                picked = sorted(c.client for c in candidates if c.connected)[:k]
                LowestFirst.chosen.append(picked)
                return picked
    """)
    out = tmp_path / "run"
    run(GRID_SMALL, out=out, overrides=[*SETTINGS, "scheduling.policy=toy_policy:LowestFirst",
                                        "scheduling.per_round=2"])
    chosen = [c for c in sys.modules["toy_policy"].LowestFirst.chosen if c]
    rounds = _rounds(out)
    assert chosen and [rounds[r] for r in sorted(rounds)] == chosen
    assert all(len(c) <= 2 for c in chosen)


STRATEGY = """
    from typing import ClassVar

    from pydantic import Field

    from cosim.learning.federated.aggregation import fedavg
    from cosim.learning.federated.deferred import resolved
    from cosim.learning.federated.policies import ServerView
    from cosim.learning.federated.strategies.base import (
        Launch, NewModel, Record, RoundEnd, RoundStrategy, Selection)
    from cosim.scenario import AggregationBase


    class DampedConfig(AggregationBase):
        round_deadline_s: float = Field(30.0, gt=0)
        server_lr: float = Field(1.0, gt=0, le=1)


    class DampedFedAvg(RoundStrategy):
        '''FedAvg whose server moves server_lr of the way to the clients' average.'''
        config: ClassVar = DampedConfig
        evaluate_by = "round"

        def done(self):
            return self.cfg.max_rounds is not None and self.host.round >= self.cfg.max_rounds

        def select(self):
            host = self.host
            view = ServerView(host.env.now, host.round + 1, self.cfg.round_deadline_s)
            chosen = host.policy.select(view, host.candidates(), host.per_round)
            if not chosen:
                return Selection()
            deadline = host.env.now + self.cfg.round_deadline_s
            return Selection([Launch(c, deadline, host.global_state, None) for c in chosen],
                             new_round=True)

        def aggregate(self):
            attempts, updates = self.train_round()
            if updates:
                start = resolved(self.host.global_state)
                mean = fedavg(start, [(u.modules, u.weight) for u in updates])
                lr = self.cfg.server_lr
                yield NewModel({k: v + lr * (mean[k] - v) if v.is_floating_point() else mean[k]
                                for k, v in start.items()})
            yield Record(attempts)
            yield RoundEnd()
"""


def _aggregation(method: str, **extra) -> str:
    section = {"method": method, "round_deadline_s": 15, "max_rounds": 3, **extra}
    return "aggregation=" + json.dumps(section)


def test_a_strategy_from_the_users_module_with_its_own_settings(user_module, tmp_path):
    """At server_lr 1 the toy is FedAvg: the same clients complete the same rounds and the model
    scores as the built-in sync strategy's (within float rounding of start + (mean - start))."""
    user_module("toy_strategy", STRATEGY)
    runs = {}
    for name, section in [("sync", _aggregation("sync")),
                          ("toy", _aggregation("toy_strategy:DampedFedAvg", server_lr=1.0)),
                          ("damped", _aggregation("toy_strategy:DampedFedAvg", server_lr=0.25))]:
        runs[name] = run(GRID_SMALL, out=tmp_path / name, overrides=[*SETTINGS, section])
    assert _rounds(runs["toy"].path) == _rounds(runs["sync"].path)
    metrics = {n: r.metrics().sort_values(["round", "task", "metric"])["value"].to_numpy()
               for n, r in runs.items()}
    assert len(metrics["toy"]) == len(metrics["sync"]) > 0
    assert abs(metrics["toy"] - metrics["sync"]).max() < 1e-3
    assert len(metrics["damped"]) == len(metrics["sync"])
    assert abs(metrics["damped"] - metrics["sync"]).max() > 1e-3  # the setting is used
    assert runs["toy"].info["scenario"]["aggregation"]["server_lr"] == 1.0


def test_a_strategys_own_settings_are_checked_before_the_run_folder(user_module, tmp_path):
    user_module("toy_strategy", STRATEGY)
    out = tmp_path / "run"
    sets = [*SETTINGS, _aggregation("toy_strategy:DampedFedAvg", server_lr=2.0)]
    result = CliRunner().invoke(app, ["run", str(GRID_SMALL), "--out", str(out), "-q",
                                      *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    assert "aggregation.server_lr: " in result.output and not out.exists()


def test_a_peft_method_from_the_users_module(user_module, tmp_path):
    user_module("toy_peft", """
        import torch
        from torch import nn

        from cosim.learning.peft import attach_block_adapter, upper_blocks


        class Shift(nn.Module):
            '''A learnt offset added to a block's output.'''

            def __init__(self, width):
                super().__init__()
                self.offset = nn.Parameter(torch.zeros(width))

            def forward(self, x):
                return self.offset.to(x.dtype).expand_as(x)


        def shifts(transformer, branch, cfg):
            out = {}
            for i in upper_blocks(transformer, cfg.last_blocks):
                out[f"block{i}"] = module = Shift(transformer.width)
                attach_block_adapter(transformer.resblocks[i], module)
            return out
    """)
    out = tmp_path / "run"
    result = run(GRID_SMALL, out=out, overrides=[*SETTINGS, "learning.model.peft.method=toy_peft:shifts"])
    state = torch.load(out / "global_modules.pt", map_location="cpu", weights_only=True)
    offsets = {k: v for k, v in state.items() if k.startswith("peft.") and k.endswith(".offset")}
    assert offsets and any(v.abs().max() > 0 for v in offsets.values())  # trained
    assert result.info["summary"]["learning"]["trainer"]["mode"] == "sequential"  # not stacked


def test_a_trainer_backend_from_the_users_module(user_module, tmp_path):
    user_module("toy_trainer", """
        from cosim.learning.federated.training import Trainer


        class CountingTrainer(Trainer):
            '''The run's own trainer, counting the updates it is asked for.'''
            counts = []

            def __init__(self, learning, seeds, local):
                self.local = local

            @property
            def driver(self):
                return self.local

            @property
            def mode(self):
                return {**self.local.mode, "backend": "counting"}

            def train(self, jobs):
                CountingTrainer.counts.append(len(jobs))
                return self.local.train(jobs)
    """)
    out = tmp_path / "run"
    result = run(GRID_SMALL, out=out,
                 overrides=[*SETTINGS, "learning.local.backend=toy_trainer:CountingTrainer"])
    counts = sys.modules["toy_trainer"].CountingTrainer.counts
    completed = sum(1 for r in pq.read_table(out / "participation.parquet").to_pylist()
                    if r["outcome"] == "completed")
    assert sum(counts) == completed > 0
    assert result.info["summary"]["learning"]["trainer"]["backend"] == "counting"


@pytest.mark.parametrize(("setting", "says"), [
    ("scheduling.policy=toy_bad:NotAPolicy", "is not a usable policy"),
    ("learning.local.backend=toy_bad:NotAPolicy", "is not a usable trainer backend"),
    ("learning.model.peft.method=toy_bad:NOT_CALLABLE", "is not a usable PEFT method"),
    ("aggregation.method=toy_bad:NotAPolicy", "is not a usable aggregation method"),
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
