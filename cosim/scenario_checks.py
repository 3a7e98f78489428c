"""What ``cosim validate`` adds to loading a scenario: the checks that need only files the
scenario names (no building), and the resolved scenario as YAML (``--show``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from cosim.scenario import Scenario


def check_without_building(sc: Scenario, source: Path) -> None:
    """Cells against the network when the network file exists already (``mobility.net`` or a
    sumocfg's net-file); a generated network is checked by ``cosim run`` once it is built."""
    from cosim.mobility.build import SumoInputs, network_file
    from cosim.radio.boundary import check_cells_inside

    if sc.radio is None or sc.radio.allow_cells_outside:
        return
    m = sc.mobility
    if m.net is not None:
        net = m.net
    elif m.sumocfg is not None:
        import xml.etree.ElementTree as ET

        try:
            net = network_file(SumoInputs(net=None, sumocfg=m.sumocfg))
        except ET.ParseError:
            return  # cosim run names the unreadable sumocfg
    else:
        return
    if net is not None and net.is_file():
        check_cells_inside(sc.radio, net, source)


def resolved_yaml(sc: Scenario) -> str:
    """The scenario with every default filled in and paths absolute: valid scenario input
    (loading it gives the same scenario), in the schema's field order."""
    return yaml.safe_dump(sc.model_dump(mode="json"), sort_keys=False, allow_unicode=True,
                          width=100)
