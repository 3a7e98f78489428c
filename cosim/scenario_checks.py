"""What ``cosim validate`` prints besides its checks (those of ``cosim run`` before its folder,
``runner.check_run_inputs``): what a run would use, and the resolved scenario as YAML (``--show``)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cosim.errors import InputError
from cosim.scenario import Scenario


def describe_inputs(sc: Scenario, inputs, source: Path) -> str:
    """One line of what a run would use: network, cells placed on it, traffic, clients, data."""
    from cosim.mobility.build import network_file

    parts = []
    net_file = network_file(inputs)
    net = None
    if net_file is not None:
        import sumolib

        net = sumolib.net.readNet(str(net_file))
        parts.append(f"network {net_file.name} ({len(net.getEdges()):,} edges)")
    if sc.radio is not None:
        from cosim.radio.cells import build_cells

        try:
            parts.append(f"{len(build_cells(sc.radio, net).x)} cells")
        except ValueError as exc:
            raise InputError(source, "radio.cells", str(exc)) from None
    m = sc.mobility
    if m.replay is not None:
        parts.append(f"traffic: the recorded trace {m.replay}")
    else:
        traffic = [f"{len(m.routes)} route file(s) of yours"] if m.routes else []
        if m.demand is not None:
            traffic.append("random trips (randomTrips.py)")
        if m.sumocfg is not None:
            traffic.append(f"the routes of {m.sumocfg.name}")
        parts.append("traffic: " + " + ".join(traffic))
    if sc.learning_enabled and sc.learning is not None:
        data = sc.learning.data
        source_text = (f"data {data.root}" if data.root is not None else
                       f"synthetic data, {data.synthetic.segments} segments")
        parts.append(f"{sc.clients.count} clients on {data.clients} partitions, {source_text}, "
                     f"{data.heldout_segments} held out")
    return "; ".join(parts)


# A YAML 1.2 core-schema reader takes these plain scalars for numbers (PyYAML, a 1.1 reader,
# takes ``1e3`` or ``0o17`` for strings and leaves them unquoted)
YAML_12_NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+|"
                            r"0x[0-9a-fA-F]+|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")


class _QuotingDumper(yaml.SafeDumper):
    """Quotes a string any YAML reader could take for a number: the output means the same to
    every reader."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "'" if YAML_12_NUMBER.fullmatch(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_QuotingDumper.add_representer(str, _string)


def resolved_yaml(sc: Scenario) -> str:
    """The scenario with every default filled in and paths absolute: valid scenario input
    (loading it gives the same scenario), in the schema's field order."""
    return yaml.dump(sc.model_dump(mode="json"), Dumper=_QuotingDumper, sort_keys=False,
                     allow_unicode=True, width=100)
