"""Strategies decide, the server changes its state: no strategy module assigns to the server it is
given (``host`` or ``self.host``), and the server applies what they decide."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STRATEGIES = Path(__file__).resolve().parent.parent / "cosim" / "learning" / "federated" / "strategies"


def _is_host(node: ast.expr) -> bool:
    """``host`` or ``self.host`` (or anything reached through them: ``host.x.y``)."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute) and node.attr == "host":
            return True
        node = node.value
    return isinstance(node, ast.Name) and node.id == "host"


def host_assignments(source: str) -> list[int]:
    """Lines that assign to an attribute or item of the server (``host.round += 1``,
    ``self.host.global_state = ...``, ``setattr(host, ...)``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("setattr", "delattr") and node.args and _is_host(node.args[0])):
            lines.append(node.lineno)
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, (ast.Attribute, ast.Subscript)) and _is_host(part.value):
                    lines.append(node.lineno)
                    break
    return sorted(set(lines))


def test_the_check_finds_assignments_to_the_server():
    assert host_assignments("host.round += 1\nself.host.global_state = s\n"
                            "setattr(self.host, 'version', 2)\nhost.in_flight[3] = f\n") == [1, 2, 3, 4]
    assert host_assignments("x = host.round + 1\nself.nodes = host.form_clusters(a, b)\n") == []


@pytest.mark.parametrize("module", sorted(p.name for p in STRATEGIES.glob("*.py")))
def test_no_strategy_assigns_to_the_server(module):
    lines = host_assignments((STRATEGIES / module).read_text())
    assert not lines, f"{module} assigns to the server at lines {lines}: return a decision instead"
