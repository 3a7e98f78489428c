"""The learning layer's inputs, checked before a run creates its folder: the backbone checkpoint,
the data root, the oracle's link windows and the user's own extensions (policy, strategy and its
settings, PEFT method, trainer backend). A bad one is then one InputError (exit 2) and no run
folder, instead of a run that fails during its learning set-up.

Imported by the runner for every run, so nothing heavy (torch, open_clip) is imported unless the
scenario has a learning layer.
"""

from __future__ import annotations

from cosim.errors import InputError
from cosim.registry import is_user_reference
from cosim.scenario import Scenario, UserAggregationConfig


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
    if cfg.deployed_model is not None:  # its cost is counted on the meta device, mid-run
        check_checkpoint(cfg.deployed_model.name, None, "learning.deployed_model")
    check_run_data(cfg.data, scenario.seeds()["data"])
    check_module_names(scenario)
    # last: a user's module:Name is code the user asked to run, imported only once everything
    # else in the scenario is known to be good (and it must be what its extension point needs)
    check_user_extensions(scenario)


def check_module_names(scenario: Scenario) -> None:
    """The modules ``learning.frozen_modules`` and ``aggregation.tiers`` name are the model's
    (read from the model built on the meta device, no weights): a name or pattern matching none
    would freeze or place nothing, or fail once the run's folder exists."""
    cfg, agg = scenario.learning, scenario.aggregation
    assert cfg is not None
    tiers = getattr(agg, "tiers", None)
    branches = [n for n in cfg.frozen_modules if n.startswith("peft.")]
    if not tiers and not branches:
        return
    from cosim.learning.deployed import meta_model
    from cosim.learning.federated.tiers import ModuleTiers

    names = meta_model(cfg.model).module_names()
    for name in branches:
        if name not in names:
            raise InputError(None, "learning.frozen_modules", f"{name!r} is no module of the "
                             f"model (its modules: {', '.join(sorted(names))})")
    if tiers:
        try:
            ModuleTiers(tiers, getattr(agg, "cloud_every", 1), names)
        except ValueError as exc:
            where, _, message = str(exc).partition(": ")
            raise InputError(None, f"aggregation.{where}", message) from None


def check_user_extensions(scenario: Scenario) -> None:
    """Each ``module:Name`` of the scenario's learning (policy, PEFT method, backend, tasks,
    aggregation) imported and checked to be what its extension point needs; InputError
    otherwise. A compare checks every cell of its grid so, before its folder."""
    cfg, sched = scenario.learning, scenario.scheduling
    if cfg is None or not scenario.learning_enabled:
        return
    from cosim.learning.federated.policies import policy_class

    policy_class(sched.policy)
    if is_user_reference(cfg.model.peft.method):
        from cosim.learning.peft import METHODS

        METHODS.resolve(cfg.model.peft.method)
    if is_user_reference(cfg.local.backend):
        from cosim.learning.federated.remote import BACKENDS

        BACKENDS.resolve(cfg.local.backend)
    if any(map(is_user_reference, [*cfg.model.tasks, *(cfg.evaluation.tasks or ())])):
        from cosim.learning.tasks import task_names

        try:
            task_names([*cfg.model.tasks, *(cfg.evaluation.tasks or ())])
        except ValueError as exc:
            raise InputError(None, "learning.model.tasks", str(exc)) from None
    if isinstance(scenario.aggregation, UserAggregationConfig):
        from cosim.learning.federated.strategies import REGISTRY, strategy_config

        strategy_config(REGISTRY.resolve(scenario.aggregation.method), scenario.aggregation)
    if is_user_reference(cfg.model.peft.method):
        from cosim.learning.deployed import meta_model

        meta_model(cfg.model)  # the method attached once, without weights: it works, or is said now
