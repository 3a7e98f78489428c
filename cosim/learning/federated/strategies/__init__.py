"""Aggregation strategies, one small class per method, found by the name of their configuration.

A strategy module in this folder registers itself with ``@register``; ``make_strategy`` finds
every module here, so adding a method is its configuration in ``cosim/scenario/aggregation.py``
and its module here.
"""

from __future__ import annotations

import importlib
import pkgutil

from cosim.learning.federated.strategies.base import REGISTRY, ServerHost, Strategy, register
from cosim.scenario import AggregationBase
from cosim.scenario.aggregation import method_name

__all__ = ["REGISTRY", "ServerHost", "Strategy", "make_strategy", "register"]


for _module in pkgutil.iter_modules(__path__):  # each registers its strategy
    importlib.import_module(f"{__name__}.{_module.name}")


def make_strategy(config: AggregationBase, host: ServerHost) -> Strategy:
    """The strategy that runs this aggregation configuration."""
    return REGISTRY[method_name(type(config))](config, host)
