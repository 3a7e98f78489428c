"""The learning layer's inputs, checked before a run creates its folder: the backbone checkpoint,
the data root, the oracle's link windows and a user's policy class. A bad one is then one
InputError (exit 2) and no run folder, instead of a run that fails during its learning set-up.

Imported by the runner for every run, so nothing heavy (torch, open_clip) is imported unless the
scenario has a learning layer.
"""

from __future__ import annotations

from cosim.scenario import Scenario


def check_learning_inputs(scenario: Scenario) -> None:
    """Raise InputError for the first unusable learning input of ``scenario``."""
    if not scenario.learning_enabled:
        return
    cfg, sched = scenario.learning, scenario.scheduling
    assert cfg is not None  # learning_enabled
    if not scenario.clients.ideal_connectivity and "oracle" in (sched.policy, sched.predictor):
        from cosim.radio.prediction import read_oracle_windows

        assert sched.oracle_windows is not None  # the scheduling section requires it for the oracle
        read_oracle_windows(sched.oracle_windows)
    from cosim.learning.backbone import check_checkpoint
    from cosim.learning.data.validate import check_run_data

    check_checkpoint(cfg.model.name, cfg.model.checkpoint)
    check_run_data(cfg.data, scenario.seeds()["data"])
    from cosim.learning.federated.policies import policy_class

    # last: a user's module:Class is code the user asked to run, imported only once everything
    # else in the scenario is known to be good (and it must name a policy class)
    policy_class(sched.policy)
