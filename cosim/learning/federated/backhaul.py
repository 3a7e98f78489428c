"""The backhaul between edge servers (one per cell) and the cloud, as a networkx graph.

Small cells and RSUs hang off their nearest macro site; macro sites connect to the cloud. Edge
to cloud delay = the shortest path's latency + model bytes / the backhaul rate.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

CLOUD = "cloud"


def backhaul_graph(kind: tuple[str, ...], x: np.ndarray, y: np.ndarray, macro_to_cloud_ms: float,
                   small_to_macro_ms: float) -> nx.Graph:
    g = nx.Graph()
    g.add_node(CLOUD)
    macros = [i for i, k in enumerate(kind) if k == "macro"]
    for i in range(len(kind)):
        g.add_node(i)
        if kind[i] == "macro" or not macros:
            g.add_edge(i, CLOUD, latency_s=macro_to_cloud_ms / 1e3)
        else:
            nearest = min(macros, key=lambda m: (x[m] - x[i]) ** 2 + (y[m] - y[i]) ** 2)
            g.add_edge(i, nearest, latency_s=small_to_macro_ms / 1e3)
    return g


def edge_to_cloud_s(g: nx.Graph, cell: int, nbytes: int, rate_bps: float) -> float:
    latency = nx.shortest_path_length(g, cell, CLOUD, weight="latency_s")
    return latency + 8 * nbytes / rate_bps
