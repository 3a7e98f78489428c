"""Training draws its randomness from per-client generators, never from torch's global RNG: a
run's initial weights come from its training seed whatever the process drew before, and neither
model construction nor a sequential, batched or threaded training pass moves the global RNG."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_remote_training import SETTINGS
from test_thread_training import _setup

from cosim.learning.federated.remote import make_trainer
from cosim.learning.federated.setup import build_learning
from cosim.scenario_loader import load_scenario

pytestmark = pytest.mark.slow  # builds the model and trains: outside the unit loop

GRID_SMALL = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"


def _states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_initial_weights_come_from_the_training_seed_and_leave_the_global_rng_alone():
    scenario = load_scenario(GRID_SMALL, SETTINGS)
    states = []
    for prior in (1, 2):
        torch.manual_seed(prior)
        before = torch.get_rng_state()
        setup = build_learning(scenario.learning, scenario.seeds())
        assert torch.equal(torch.get_rng_state(), before)
        states.append(setup.model.export_modules(setup.model.module_names()))
    assert _states_equal(*states)
    seven = load_scenario(GRID_SMALL, [*SETTINGS, "seed=7"])
    other = build_learning(seven.learning, seven.seeds())
    assert not _states_equal(states[0], other.model.export_modules(other.model.module_names()))


@pytest.mark.parametrize("extra", [["learning.local.clients_per_pass=1"],
                                   ["learning.local.clients_per_pass=4"],
                                   ["learning.local.backend=threads", "learning.local.workers=2",
                                    "learning.local.threads=1"]],
                         ids=["sequential", "batched", "threads"])
def test_training_passes_do_not_draw_from_the_global_rng(extra):
    scenario, _, local, jobs = _setup(extra)  # the model, its clients and one job each
    trainer = make_trainer(scenario.learning, scenario.seeds(), local)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    try:
        updates = trainer.train(jobs)
    finally:
        trainer.close()
    assert len(updates) == len(jobs)
    assert torch.equal(torch.get_rng_state(), before)
