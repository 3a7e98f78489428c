"""Each extension point has one registry, and what the scenario accepts is what the registry has."""

from __future__ import annotations

import pytest

from cosim.learning import peft
from cosim.learning.federated.strategies import REGISTRY as STRATEGIES
from cosim.learning.federated.strategies import make_strategy
from cosim.learning.tasks import SPECS
from cosim.names import HEADLINE, PEFT_METHODS, TASK_INFO, TASKS, TRAINER_BACKENDS
from cosim.names import POLICIES as POLICY_NAMES
from cosim.registry import USER_REFERENCE
from cosim.scenario import EXTENSION_FIELDS, METHOD_CONFIGS, PeftConfig, Scenario


def test_every_task_has_one_spec_and_one_headline():
    assert tuple(SPECS) == TASKS == tuple(TASK_INFO) == tuple(HEADLINE)
    for name, spec in SPECS.items():
        assert spec.name == name and spec.modalities == TASK_INFO[name].modalities
        assert len(spec.classes) > 1 and spec.regression >= 0


def _accepted(model, field: str, candidates) -> set[str]:
    """The names among ``candidates`` that the scenario field accepts."""
    out = set()
    for name in candidates:
        try:
            model.model_validate({field: name})
        except ValueError:
            continue
        out.add(name)
    return out


CANDIDATES = {*peft.METHODS, *STRATEGIES, "adaptr", "threads", "local", "processes", "ray", "lorra",
              "prompt", "thread", "moe"}


def test_every_peft_method_the_scenario_accepts_is_registered():
    assert _accepted(PeftConfig, "method", CANDIDATES) == set(peft.METHODS) == set(PEFT_METHODS)


class _Cells:
    kind, x, y = ("macro",), [0.0], [0.0]


class _Host:
    radio = type("Radio", (), {"cells": _Cells()})()


@pytest.mark.parametrize("method", list(METHOD_CONFIGS))
def test_every_aggregation_method_has_its_strategy(method):
    config = METHOD_CONFIGS[method].model_validate({"method": method})
    strategy = make_strategy(config, _Host())
    assert type(strategy) is STRATEGIES[method] and strategy.config is METHOD_CONFIGS[method]
    assert set(STRATEGIES) == set(METHOD_CONFIGS)


def test_every_trainer_backend_the_scenario_accepts_is_registered():
    from cosim.learning.federated.remote import BACKENDS
    from cosim.scenario import LocalTrainingConfig

    assert _accepted(LocalTrainingConfig, "backend", CANDIDATES) == set(BACKENDS) == set(TRAINER_BACKENDS)


def test_every_policy_the_scenario_accepts_is_registered():
    from cosim.learning.federated.policies import REGISTRY as POLICIES
    from cosim.scenario import SchedulingConfig

    names = {*POLICIES, "randm", "all", "oracl"}
    accepted = {n for n in _accepted(SchedulingConfig, "policy", names) if n != "oracle"}
    assert accepted | {"oracle"} == set(POLICIES) == set(POLICY_NAMES)


def test_every_registry_refuses_an_unknown_name_in_one_line_that_suggests_the_closest():
    from cosim.errors import InputError
    from cosim.learning.federated.policies import REGISTRY as POLICIES
    from cosim.learning.federated.remote import BACKENDS

    for registry, typo, meant, field in ((POLICIES, "availabilty_aware", "availability_aware",
                                          "scheduling.policy"),
                                         (STRATEGIES, "fedbuf", "fedbuff", "aggregation.method"),
                                         (peft.METHODS, "lorra", "lora", "learning.model.peft.method"),
                                         (SPECS, "det2", "det2d", "learning.model.tasks"),
                                         (BACKENDS, "thread", "threads", "learning.local.backend")):
        with pytest.raises(InputError) as err:
            registry[typo]
        line = err.value.line()
        assert f"did you mean {meant!r}" in line and field in line and "\n" not in line


def _fields_taking_references(schema: dict, node: dict, path: str, found: set[str]) -> None:
    """The dotted fields whose JSON schema accepts ``module:Name``."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if node.get("pattern") == USER_REFERENCE.pattern:
        found.add(path.lstrip("."))
    for sub in [*node.get("anyOf", ()), *node.get("oneOf", ()), *node.get("allOf", ())]:
        _fields_taking_references(schema, sub, path, found)
    if isinstance(node.get("items"), dict):
        _fields_taking_references(schema, node["items"], path, found)
    for name, sub in node.get("properties", {}).items():
        _fields_taking_references(schema, sub, f"{path}.{name}", found)


def test_the_list_of_extension_fields_covers_every_field_that_takes_a_module():
    """What resume and other readers of data files refuse is every field a scenario may use to
    name a module, as its schema says."""
    schema = Scenario.model_json_schema()
    found: set[str] = set()
    _fields_taking_references(schema, schema, "", found)
    assert found == set(EXTENSION_FIELDS)
    assert {"scheduling.policy", "aggregation.method", "learning.model.peft.method",
            "learning.local.backend", "learning.model.tasks"} <= found
