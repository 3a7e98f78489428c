"""Cells as aligned numpy arrays, from an explicit list or from layout generators.

Generators: macro sites on a hexagonal lattice (inter-site distance, rings around a centre; three
sector cells per site, or one omnidirectional cell), and
small cells on the network's most central intersections (networkx betweenness or degree on the
SUMO street graph), kept a minimum distance apart.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cosim.cache import cached_folder, content_key
from cosim.radio.antenna import THREE_SECTOR_BEARINGS_DEG
from cosim.scenario import CellConfig, CellGenerators, CellTemplate, RadioConfig


@dataclass(frozen=True)
class Cells:
    """All cells of a run; index i of every array is cell i (the integer id used in traces)."""

    ids: tuple[str, ...]
    kind: tuple[str, ...]
    scenario: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    height_m: np.ndarray
    tx_power_dbm: np.ndarray
    antenna_gain_dbi: np.ndarray
    carrier_ghz: np.ndarray
    bandwidth_hz: np.ndarray
    azimuth_deg: np.ndarray  # boresight bearing of a sector antenna; NaN: omnidirectional
    downtilt_deg: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def cochannel_group(self) -> np.ndarray:
        """Cells on the same carrier interfere with each other: one group index per carrier."""
        _, group = np.unique(self.carrier_ghz, return_inverse=True)
        return group

    @classmethod
    def from_configs(cls, configs: list[CellConfig]) -> Cells:
        def arr(name: str) -> np.ndarray:
            return np.array([getattr(c, name) for c in configs], dtype=float)

        return cls(
            ids=tuple(c.id for c in configs), kind=tuple(c.kind for c in configs),
            scenario=tuple(c.scenario for c in configs), x=arr("x"), y=arr("y"),
            height_m=arr("height_m"), tx_power_dbm=arr("tx_power_dbm"),
            antenna_gain_dbi=arr("antenna_gain_dbi"), carrier_ghz=arr("carrier_ghz"),
            bandwidth_hz=arr("bandwidth_mhz") * 1e6,
            azimuth_deg=np.array([np.nan if c.azimuth_deg is None else c.azimuth_deg for c in configs]),
            downtilt_deg=arr("downtilt_deg"),
        )


def build_cells(radio: RadioConfig, net: Any | None) -> Cells:
    """The scenario's cells: its list, or the generators' output plus any extra cells.

    ``net``: the SUMO network as read by sumolib (needed by the generators only)."""
    if isinstance(radio.cells, list):
        return Cells.from_configs(radio.cells)
    return Cells.from_configs(generate_cells(radio.cells, net))


def generate_cells(gen: CellGenerators, net: Any | None) -> list[CellConfig]:
    configs: list[CellConfig] = []
    if (gen.hex is not None or gen.intersections is not None) and net is None:
        raise ValueError("cell generators need the SUMO network file")
    if gen.hex is not None:
        (xmin, ymin), (xmax, ymax) = _bounds(net)
        center = gen.hex.center or ((xmin + xmax) / 2, (ymin + ymax) / 2)
        sites = hex_sites(center, gen.hex.isd_m, gen.hex.rings)
        near = (near_roads(net, sites, gen.hex.max_road_distance_m)
                if gen.hex.max_road_distance_m is not None else [True] * len(sites))
        if not any(near):
            raise ValueError(f"hex: no site of the lattice is within max_road_distance_m "
                             f"({gen.hex.max_road_distance_m:g} m) of a road: check center and isd_m")
        for i, (x, y) in enumerate(sites):
            if not near[i]:  # ids keep the lattice index: the sites left are named as before
                continue
            if gen.hex.sectors == 1:
                configs.append(_cell(gen.hex, f"{gen.hex.id_prefix}{i}", x, y))
                continue
            for k, bearing in enumerate(THREE_SECTOR_BEARINGS_DEG):
                configs.append(_cell(gen.hex, f"{gen.hex.id_prefix}{i}-s{k}", x, y, azimuth_deg=bearing))
    if gen.intersections is not None:
        spec = gen.intersections
        sites = central_intersections(net, spec.count, spec.rank_by, spec.min_spacing_m)
        for i, (x, y) in enumerate(sites):
            configs.append(_cell(spec, f"{spec.id_prefix}{i}", x, y))
    configs.extend(gen.extra)
    ids = [c.id for c in configs]
    if len(set(ids)) != len(ids):
        raise ValueError("generated cell ids collide with listed ones; change id_prefix")
    return configs


def near_roads(net: Any, sites: list[tuple[float, float]], distance_m: float) -> list[bool]:
    """Whether each site lies within ``distance_m`` of some edge of the network (its shape)."""
    from shapely import LineString, Point, STRtree

    lines = [LineString(e.getShape()) for e in net.getEdges() if len(e.getShape()) >= 2]
    if not lines:
        return [False] * len(sites)
    tree = STRtree(lines)
    return [tree.query_nearest(Point(x, y), max_distance=distance_m).size > 0 for x, y in sites]


def _cell(template: CellTemplate, cell_id: str, x: float, y: float, **override: Any) -> CellConfig:
    fields = {k: getattr(template, k) for k in CellTemplate.model_fields} | override
    return CellConfig(id=cell_id, x=round(x, 2), y=round(y, 2), **fields)


def _bounds(net) -> tuple[tuple[float, float], tuple[float, float]]:
    xmin, ymin, xmax, ymax = net.getBoundary()
    return (xmin, ymin), (xmax, ymax)


def hex_sites(center: tuple[float, float], isd_m: float, rings: int) -> list[tuple[float, float]]:
    """Site positions of a hexagonal lattice: the centre, then ring by ring (axial coordinates)."""
    cx, cy = center
    sites: list[tuple[float, float]] = []
    for ring in range(rings + 1):
        ring_sites = []
        for q in range(-ring, ring + 1):
            for r in range(-ring, ring + 1):
                if max(abs(q), abs(r), abs(q + r)) != ring:
                    continue
                x = cx + isd_m * (q + r / 2.0)
                y = cy + isd_m * (r * math.sqrt(3.0) / 2.0)
                ring_sites.append((math.atan2(y - cy, x - cx), x, y))
        sites.extend((x, y) for _, x, y in sorted(ring_sites))
    return sites


def central_intersections(net, count: int, rank_by: str, min_spacing_m: float
                          ) -> list[tuple[float, float]]:
    """The ``count`` most central junctions of the street graph, greedily kept apart; cached per
    network and settings (betweenness takes seconds on a city grid)."""
    edges = sorted(f"{e.getID()} {e.getFromNode().getID()} {e.getToNode().getID()} {e.getLength()!r} "
                   f"{e.getFunction()}" for e in net.getEdges())
    nodes = sorted(f"{n.getID()} {n.getCoord()!r} {n.getType()}" for n in net.getNodes())
    key = content_key(["intersections-v1", rank_by, str(count), repr(min_spacing_m), "\n".join(edges),
                       "\n".join(nodes)])
    folder = cached_folder("intersections", key, lambda tmp: (tmp / "sites.json").write_text(
        json.dumps(_central_intersections(net, count, rank_by, min_spacing_m))))
    return [tuple(site) for site in json.loads((folder / "sites.json").read_text())]


def _central_intersections(net, count: int, rank_by: str, min_spacing_m: float
                           ) -> list[tuple[float, float]]:
    import networkx as nx

    graph = nx.DiGraph()
    for edge in net.getEdges():
        if edge.getFunction() == "internal":
            continue
        graph.add_edge(edge.getFromNode().getID(), edge.getToNode().getID(), length=edge.getLength())
    if rank_by == "degree":
        score = {n: graph.in_degree(n) + graph.out_degree(n) for n in graph}
    else:
        score = nx.betweenness_centrality(graph, weight="length")
    ranked = sorted(graph.nodes, key=lambda n: (-score[n], n))
    chosen: list[tuple[float, float]] = []
    for node_id in ranked:
        node = net.getNode(node_id)
        if node.getType() == "dead_end" or len(node.getIncoming()) + len(node.getOutgoing()) < 3:
            continue
        x, y = node.getCoord()
        if all(math.hypot(x - cx, y - cy) >= min_spacing_m for cx, cy in chosen):
            chosen.append((x, y))
        if len(chosen) == count:
            break
    return chosen
