"""Aggregation strategies, one small class per method, found by the name of their configuration.

A strategy module in this folder registers itself with ``@register``; ``make_strategy`` finds
every module here, so adding a built-in method is its configuration in
``cosim/scenario/aggregation.py`` and its module here. A strategy of the user's own is one file:
a ``Strategy`` subclass whose ``config`` (an ``AggregationBase`` subclass) holds its settings,
named ``aggregation.method: package.module:Class`` in the scenario.
"""

from __future__ import annotations

import importlib
import pkgutil

from pydantic import ValidationError

from cosim.errors import InputError
from cosim.learning.federated.strategies.base import REGISTRY, ServerHost, Strategy, register
from cosim.scenario import AggregationBase, UserAggregationConfig
from cosim.scenario.aggregation import method_name

__all__ = ["REGISTRY", "ServerHost", "Strategy", "make_strategy", "register", "strategy_config"]


for _module in pkgutil.iter_modules(__path__):  # each registers its strategy
    importlib.import_module(f"{__name__}.{_module.name}")


def make_strategy(config: AggregationBase, host: ServerHost) -> Strategy:
    """The strategy that runs this aggregation configuration."""
    if isinstance(config, UserAggregationConfig):
        cls = REGISTRY.resolve(config.method)
        return cls(strategy_config(cls, config), host)
    return REGISTRY[method_name(type(config))](config, host)


def strategy_config(cls: type[Strategy], section: UserAggregationConfig) -> AggregationBase:
    """A user's aggregation section as its strategy's own ``config`` (InputError naming the key);
    ``method`` names the class, so the config's own ``method`` (if any) keeps its default."""
    data = section.model_dump()
    data.pop("method")
    try:
        return cls.config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(None, f"aggregation.{where}" if where else "aggregation",
                         err["msg"].removeprefix("Value error, ")) from None
