"""Which tier aggregates each module (``aggregation.tiers`` of hierarchical FL): fog (sidelink
clusters), edge (a cell) or cloud, and how often the cloud takes each group.

HF-FMs align aggregation with the model's modular structure: a modality adapter tuned to an
area's sensors can stay at its cell while the task heads are shared fleet-wide. Rules name
modules by patterns over the model's module names; the first matching rule wins; modules no rule
names are cloud modules every ``cloud_every`` edge rounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from cosim.scenario.aggregation import TierRule

FOG, EDGE, CLOUD = "fog", "edge", "cloud"


class ModuleTiers:
    """Each state key's tier and, for the cloud, its period in edge rounds."""

    def __init__(self, rules: list[TierRule], cloud_every: int, module_names: Iterable[str]):
        names = sorted(module_names, key=len, reverse=True)  # the longest prefix names a key's module
        self._names = names
        for i, rule in enumerate(rules):
            for pattern in rule.modules:
                if not any(fnmatchcase(n, pattern) for n in names):
                    raise ValueError(f"tiers.{i}.modules: {pattern!r} names no module of the model "
                                     f"(modules: {', '.join(sorted(names))})")
        self.of_module: dict[str, tuple[str, int]] = {}
        for name in names:
            match = next((r for r in rules if any(fnmatchcase(name, p) for p in r.modules)), None)
            self.of_module[name] = (match.tier, match.every) if match is not None else (CLOUD, cloud_every)

    def module_of(self, key: str) -> str:
        return next(n for n in self._names if key.startswith(n + "."))

    def tier(self, key: str) -> str:
        return self.of_module[self.module_of(key)][0]

    def keys(self, keys: Iterable[str], tier: str) -> list[str]:
        return [k for k in keys if self.tier(k) == tier]

    def cloud_due(self, keys: Iterable[str], edge_round: int) -> list[str]:
        """The cloud keys whose group the cloud averages after this edge round."""
        out = []
        for k in keys:
            tier, every = self.of_module[self.module_of(k)]
            if tier == CLOUD and edge_round % every == 0:
                out.append(k)
        return out

    def has(self, tier: str) -> bool:
        return any(t == tier for t, _ in self.of_module.values())
