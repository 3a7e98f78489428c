"""``learning.local.overlap``: a sync round's updates train on the worker threads while the next
round's radio runs. The run must not differ from training each round at its end: same traces bit
for bit, same final global model; and the overlap must be real (training returns before the
passes are done) and off where something reads the updates sooner."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from test_remote_training import _run
from test_thread_training import GRID_SMALL, THREADS, _assert_same_updates, _setup

from cosim.learning.federated.deferred import Deferred, DeferredState, resolved, snapshot
from cosim.learning.federated.remote import make_trainer

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

EVERY_ROUND = [*THREADS, "aggregation.eval_every_rounds=1"]


def _trainer_summary(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())["summary"]["learning"]["trainer"]


def _global_modules(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "global_modules.pt", weights_only=True)


def _assert_same_modules(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_overlapped_rounds_write_the_traces_of_rounds_trained_at_their_end(tmp_path):
    for background in ("false", "true"):  # the scoring thread may be the one that averages
        extra = [*EVERY_ROUND, f"learning.evaluation.background={background}"]
        overlapped = _run(GRID_SMALL, tmp_path / f"on-{background}", [*extra, "learning.local.overlap=true"])
        at_end = _run(GRID_SMALL, tmp_path / f"off-{background}", [*extra, "learning.local.overlap=false"])
        assert overlapped == at_end
        assert "metrics.parquet" in overlapped and "participation.parquet" in overlapped
        _assert_same_modules(_global_modules(tmp_path / f"on-{background}"),
                             _global_modules(tmp_path / f"off-{background}"))
        assert _trainer_summary(tmp_path / f"on-{background}")["overlap"] is True
        assert _trainer_summary(tmp_path / f"off-{background}")["overlap"] is False


def test_overlap_is_off_for_a_policy_that_reads_the_losses(tmp_path):
    _run(GRID_SMALL, tmp_path / "oort", [*THREADS, "scheduling.policy=oort"])
    assert _trainer_summary(tmp_path / "oort")["overlap"] is False


def test_submitted_passes_train_after_submit_returns_and_equal_train(monkeypatch):
    scenario, _, local, jobs = _setup(THREADS)
    trainer = make_trainer(scenario.learning, scenario.seeds(), local)
    go = threading.Event()
    train_pass = trainer._train_pass

    def held(chunk, threads):
        assert go.wait(60)
        return train_pass(chunk, threads)

    monkeypatch.setattr(trainer, "_train_pass", held)
    try:
        waiting = trainer.submit(jobs)  # returns with every pass held back
        go.set()
        overlapped = waiting()
        monkeypatch.undo()
        local.balancers.clear()  # from fresh balancers again
        at_once = trainer.train(jobs)
    finally:
        go.set()
        trainer.close()
    _assert_same_updates(overlapped, at_once, jobs)


def test_a_deferred_value_is_computed_once_whichever_threads_ask():
    calls = []
    started = threading.Event()

    def compute():
        calls.append(threading.current_thread().name)
        started.set()
        return {"w": torch.ones(2)}

    state = DeferredState(compute)
    assert snapshot(state) is state and not calls  # kept unread
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(resolved(state))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and started.is_set()
    assert all(s is seen[0] for s in seen) and dict(state) == seen[0]
    plain = {"w": torch.zeros(1)}
    assert resolved(plain) is plain and snapshot(plain) == plain and snapshot(plain) is not plain
    assert Deferred.ready(3).result() == 3
