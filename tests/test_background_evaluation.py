"""Evaluation on a thread of its own (``learning.evaluation.background``) writes the same metrics,
in the same order, as evaluation in the run's thread at the same torch thread count: every trace
is identical, bit for bit, and so is the model-free baseline, fitted on that thread too."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from test_remote_training import _run

from cosim.learning.federated import evaluation
from cosim.learning.federated.server import FederatedLayer

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

GRID_SMALL = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
EVERY_ROUND = ["aggregation.eval_every_rounds=1"]  # four evaluations, scored while rounds go on


def test_background_evaluation_writes_the_same_traces(tmp_path, monkeypatch):
    threads: list[str] = []
    scored = evaluation.evaluate

    def evaluate(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return scored(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", evaluate)
    baseline_threads: list[str] = []
    fitted = FederatedLayer._lookup_baseline

    def lookup_baseline(self):
        baseline_threads.append(threading.current_thread().name)
        return fitted(self)

    monkeypatch.setattr(FederatedLayer, "_lookup_baseline", lookup_baseline)
    here = _run(GRID_SMALL, tmp_path / "here", EVERY_ROUND)
    assert set(threads) == {threading.main_thread().name}
    assert baseline_threads == [threading.main_thread().name]
    threads.clear()
    baseline_threads.clear()
    background = _run(GRID_SMALL, tmp_path / "background",
                      [*EVERY_ROUND, "learning.evaluation.background=true"])
    assert len(threads) == 4 and all(name.startswith("cosim-eval") for name in threads)
    assert len(baseline_threads) == 1 and baseline_threads[0].startswith("cosim-eval")
    assert "metrics.parquet" in here
    assert background == here
    info = json.loads((tmp_path / "background" / "run.json").read_text())
    assert len(info["summary"]["learning"]["evaluation_wall_s"]) == 4
    # the model-free baseline, fitted on the evaluation's thread while the rounds went on
    here_info = json.loads((tmp_path / "here" / "run.json").read_text())
    lookup = info["summary"]["learning"]["lookup_baseline"]
    assert lookup and lookup == here_info["summary"]["learning"]["lookup_baseline"]
