"""Evaluation on a thread of its own (``learning.evaluation.background``) writes the same metrics,
in the same order, as evaluation in the run's thread at the same torch thread count: every trace
is identical, bit for bit."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from test_remote_training import _run

from cosim.learning.federated import evaluation

GRID_SMALL = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
EVERY_ROUND = ["aggregation.eval_every_rounds=1"]  # four evaluations, some while training


def test_background_evaluation_writes_the_same_traces(tmp_path, monkeypatch):
    threads: list[str] = []
    scored = evaluation.evaluate

    def evaluate(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return scored(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", evaluate)
    here = _run(GRID_SMALL, tmp_path / "here", EVERY_ROUND)
    assert set(threads) == {threading.main_thread().name}
    threads.clear()
    background = _run(GRID_SMALL, tmp_path / "background",
                      [*EVERY_ROUND, "learning.evaluation.background=true"])
    assert len(threads) == 4 and all(name.startswith("cosim-eval") for name in threads)
    assert "metrics.parquet" in here
    assert background == here
    info = json.loads((tmp_path / "background" / "run.json").read_text())
    assert len(info["summary"]["learning"]["evaluation_wall_s"]) == 4
