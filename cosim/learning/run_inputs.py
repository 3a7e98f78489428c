"""The learning layer's input files, checked before a run creates its folder: the backbone
checkpoint, the data root and the oracle's link windows. A bad file is then one InputError
(exit 2) and no run folder, instead of a run that fails during its learning set-up.

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
    if not scenario.clients.ideal_connectivity and "oracle" in (sched.policy, sched.predictor):
        from cosim.radio.prediction import read_oracle_windows

        read_oracle_windows(sched.oracle_windows)
    from cosim.learning.backbone import check_checkpoint
    from cosim.learning.data.validate import check_run_data

    check_checkpoint(cfg.model.name, cfg.model.checkpoint)
    check_run_data(cfg.data, scenario.seed)
