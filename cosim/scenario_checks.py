"""What ``cosim validate`` prints besides its checks (those of ``cosim run`` before its folder,
``runner.check_run_inputs``): what a run would use, and the resolved scenario as YAML (``--show``)."""

from __future__ import annotations

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


def resolved_yaml(sc: Scenario) -> str:
    """The scenario with every default filled in and paths absolute: valid scenario input
    (loading it gives the same scenario), in the schema's field order."""
    return yaml.safe_dump(sc.model_dump(mode="json"), sort_keys=False, allow_unicode=True,
                          width=100)
