"""Client training on worker threads (``learning.local.backend: threads``): each pass equals, bit
for bit, the same pass trained in the run's own thread with the same torch thread count, and a
run with worker threads completes and says how it trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_remote_training import SETTINGS, _run

from cosim.errors import InputError
from cosim.learning.data.samples import collate
from cosim.learning.federated.remote import ThreadTrainer, make_trainer
from cosim.learning.federated.setup import build_learning
from cosim.learning.federated.training import LocalTrainer, TrainJob, l2_weight
from cosim.learning.model import replicate
from cosim.scenario_loader import load_scenario

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

GRID_SMALL = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
THREADS = ["learning.local.backend=threads", "learning.local.workers=2", "learning.local.threads=1"]


def _setup(extra: list[str]):
    scenario = load_scenario(GRID_SMALL, [*SETTINGS, *extra])
    setup = build_learning(scenario.learning, scenario.seeds())
    cfg = scenario.learning
    local = LocalTrainer(setup.model, setup.datasets, cfg.local, cfg.balancing, setup.frozen, l2_weight(cfg))
    start = setup.model.export_modules(setup.model.module_names())
    jobs = [TrainJob(client=i, start=start, seed=100 + i) for i in range(len(setup.datasets))]
    return scenario, setup, local, jobs


def test_thread_passes_equal_the_same_passes_trained_in_this_thread():
    scenario, setup, local, jobs = _setup(THREADS)
    trainer = make_trainer(scenario.learning, scenario.seeds(), local)
    assert isinstance(trainer, ThreadTrainer) and len(trainer.replicas) == 2
    try:
        threaded = trainer.train(jobs)
    finally:
        trainer.close()
    passes = local.passes_of(jobs, 2)
    assert [len(p) for p in passes] == [2, 2, 1]  # 5 clients, at most two per pass
    previous = torch.get_num_threads()
    _, _, reference_trainer, _ = _setup([])
    torch.set_num_threads(1)  # the workers' torch threads
    try:
        reference = [u for chunk in passes for u in reference_trainer.train(chunk)]
    finally:
        torch.set_num_threads(previous)
    _assert_same_updates(threaded, reference, jobs)


def test_a_round_with_fewer_updates_than_workers_trains_in_this_thread_as_local_does():
    _, _, reference_trainer, _ = _setup([])
    scenario, _, local, jobs = _setup(THREADS)
    trainer = make_trainer(scenario.learning, scenario.seeds(), local)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # this thread's, whatever an earlier set-up left
    try:
        threaded = trainer.train(jobs[:1])
        reference = reference_trainer.train(jobs[:1])
    finally:
        trainer.close()
        torch.set_num_threads(previous)
    _assert_same_updates(threaded, reference, jobs[:1])
    assert local.passes == 1


def _assert_same_updates(got, expected, jobs) -> None:
    assert [u.client for u in got] == [j.client for j in jobs]
    for a, b in zip(got, expected, strict=True):
        assert a.modules.keys() == b.modules.keys()
        for key in a.modules:
            assert torch.equal(a.modules[key], b.modules[key]), key
        assert a.stats.last_epoch_loss == b.stats.last_epoch_loss


def test_a_replica_trains_its_own_modules_and_shares_the_frozen_backbone():
    _, setup, _, _ = _setup([])
    model = setup.model
    twin = replicate(model)
    shared = {id(p) for p in model.backbone_parameters()}
    assert all(id(p) in shared for p in twin.backbone_parameters())
    for name in model.module_names():
        for p, q in zip(model.get_module(name).parameters(), twin.get_module(name).parameters(), strict=True):
            assert p is not q and torch.equal(p, q)
    with torch.no_grad():  # a change to the twin's adapter shows in the twin's forward only
        batch, _ = collate([setup.datasets[0][0]])
        batch.pop("sequence", None)
        before = model(batch)
        for p in twin.peft.parameters():
            p.add_(0.1)
        after_model, after_twin = model(batch), twin(batch)
    task = next(iter(before))
    assert torch.equal(before[task]["scores"], after_model[task]["scores"])
    assert not torch.equal(before[task]["scores"], after_twin[task]["scores"])


def test_a_run_on_worker_threads_completes_and_says_so(tmp_path):
    _run(GRID_SMALL, tmp_path / "run", THREADS)
    trainer = json.loads((tmp_path / "run" / "run.json").read_text())["summary"]["learning"]["trainer"]
    assert trainer["backend"] == "threads" and trainer["workers"] == 2
    assert trainer["threads_per_worker"] == 1
    assert trainer["passes"] >= 3


@pytest.mark.parametrize("setting, words", [
    ("learning.local.clients_per_pass=1", "clients_per_pass 1"),
    ("learning.model.peft.method=prompt", "'prompt' cannot batch"),
])
def test_worker_threads_refuse_one_at_a_time_training(setting, words):
    with pytest.raises(InputError, match=words):
        load_scenario(GRID_SMALL, [*SETTINGS, *THREADS, setting])
