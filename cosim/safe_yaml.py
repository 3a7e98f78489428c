"""YAML read as ``yaml.safe_load`` reads it, minus what makes a scenario ambiguous or a loader
hang: a key given twice in one mapping, aliases that expand beyond a node budget (a
"billion laughs" document), an alias to the node that contains it, deep nesting, and numbers
and keys whose value depends on the YAML version assumed (``012`` as octal 10, ``1:30`` as 90,
``on:`` as true), and values no scenario holds (``!!set``, whose order is the hash seed's).

The checks run while the document is composed, before anything is constructed, so a hostile
document fails after reading a few nodes; all of it is Python code, so Ctrl-C still works.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.error import MarkedYAMLError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_NODES = 100_000  # nodes, aliases expanded: a scenario with a thousand cells has ~20,000
MAX_DEPTH = 64  # nesting levels: a scenario has about 6
LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")  # 012, -007: octal to YAML 1.1, decimal to 1.2


class RefusedYamlError(MarkedYAMLError):
    """Valid YAML that a scenario may not be: a duplicate key, an alias bomb, a cycle, deep
    nesting."""


class ScenarioLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, alias bombs, cyclic aliases, deep nesting, and
    the plain scalars whose value depends on the YAML version assumed (``012``, ``1:30``, a key
    ``on``)."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its node count with aliases expanded
        self._nodes: list[Node] = []  # keeps every counted node alive, so ids stay unique
        self._composed = 0  # nodes read so far: a long flat list is refused while it is read

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)  # an unknown alias is YAML's own error
            assert node is not None  # PyYAML returns a node or raises (its stub says Optional)
            if id(node) not in self._sizes:
                raise RefusedYamlError(None, None, f"alias *{event.anchor} is used inside the node "
                                    "it names (a cycle)", event.start_mark)
            return node
        self._composed += 1
        if self._composed > MAX_NODES:
            raise RefusedYamlError(None, None, f"more than {MAX_NODES:,} values: not a scenario",
                                   self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise RefusedYamlError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                    self.peek_event().start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        assert node is not None  # PyYAML returns a node or raises (its stub says Optional)
        self._count(node)
        return node

    def _count(self, node: Node) -> None:
        """Record the node's size with aliases expanded; refuse once it is over the budget."""
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
        if size > MAX_NODES:
            raise RefusedYamlError(None, None, f"more than {MAX_NODES:,} values once aliases are "
                                "expanded (an alias bomb?)", node.start_mark)
        self._sizes[id(node)] = size
        self._nodes.append(node)

    def construct_yaml_int(self, node: ScalarNode) -> int:  # type: ignore[override]
        """YAML 1.1 reads ``012`` as octal (10), YAML 1.2 as 12: a plain number with a leading
        zero means something else to the writer than to the reader, so it is refused, as is a
        base-60 number (below)."""
        if LEADING_ZERO.fullmatch(str(node.value)):  # plain, or quoted and tagged !!int
            raise RefusedYamlError(None, None, f"{node.value}: a number with a leading zero, which "
                                   "YAML reads as octal; write it without the zero, or quote it",
                                   node.start_mark)
        _refuse_base_60(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: ScalarNode) -> float:  # type: ignore[override]
        _refuse_base_60(node)
        return super().construct_yaml_float(node)

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
            self.flatten_mapping(node)  # merged keys too are keys: a merged `on:` is true
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode):
                    continue  # complex keys are YAML's own error
                if (key_node.tag == "tag:yaml.org,2002:bool"
                        and str(key_node.value).lower() not in ("true", "false")):
                    raise RefusedYamlError(None, None, f"key {key_node.value!r} is read by YAML as "
                                           "a yes/no value, not a name; quote it",
                                           key_node.start_mark)
                if id(key_node) not in own:
                    continue  # a merged key may be overridden by the mapping's own
                key = self.construct_object(key_node, deep=True)
                if key in first_line:
                    raise RefusedYamlError(
                        None, None, f"key {str(key)[:60]!r} given twice (first on line "
                        f"{first_line[key]})", key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
        # PyYAML refuses a node that is not a mapping with its own error; the stub asks for one
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def _refuse_base_60(node: ScalarNode) -> None:
    """YAML 1.1 reads ``1:30`` as 90 (base 60), YAML 1.2 as a string; and whether the writer
    meant minutes or hours cannot be told."""
    if ":" in str(node.value):  # plain, or quoted and tagged !!int or !!float
        raise RefusedYamlError(None, None, f"{node.value}: a base-60 number, which YAML reads as "
                               f"{_base_60(str(node.value)):g}; write the number of seconds (or "
                               "what the field counts), or quote it", node.start_mark)


def _base_60(text: str) -> float:
    sign = -1 if text.startswith("-") else 1
    value = 0.0
    for part in text.lstrip("+-").replace("_", "").split(":"):
        value = value * 60 + float(part)
    return sign * value


def _refuse_non_json(loader: ScenarioLoader, node: Node) -> Any:
    """``!!set`` has no order (a task list in a set's order changes with the hash seed, and so
    would a run's traces); ``!!omap``, ``!!pairs`` and ``!!binary`` are no value a scenario
    holds. A scenario is mappings, lists, strings, numbers, booleans and null."""
    kind = node.tag.rsplit(":", 1)[-1]
    hint = "; write a list [a, b]" if kind == "set" else ""
    raise RefusedYamlError(None, None, f"a !!{kind} value, which no scenario field takes{hint}",
                           node.start_mark)


for _tag in ("set", "omap", "pairs", "binary"):
    ScenarioLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_non_json)
ScenarioLoader.add_constructor("tag:yaml.org,2002:int", ScenarioLoader.construct_yaml_int)
ScenarioLoader.add_constructor("tag:yaml.org,2002:float", ScenarioLoader.construct_yaml_float)


def load_yaml(text: str) -> Any:
    """Parse one YAML document like ``yaml.safe_load``, with the checks above.

    Raises yaml.YAMLError (with a mark where one is known) or RecursionError."""
    loader = ScenarioLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
