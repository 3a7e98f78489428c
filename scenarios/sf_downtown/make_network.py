"""Write the plain SUMO network of San Francisco's downtown (nodes + edges XML).

Run once by hand (``python scenarios/sf_downtown/make_network.py``); its outputs
``sf_downtown.nod.xml`` and ``sf_downtown.edg.xml`` are committed, and cosim builds the
``.net.xml`` from them with netconvert (cached).

Frame: metres, x east, y north, origin (0, 0) at lat 37.77930, lon -122.41640 (SoMa, near
7th & Harrison); the box is 2000 m x 2000 m, so the north-east corner sits by the Ferry Building.
Market Street is the diagonal seam running south-west -> north-east at 36 degrees from east.
North-west of it the Financial District grid runs N-S / E-W with blocks of 125 m (E-W) x 80 m
(N-S); south-east of it the SoMa grid is rotated to run parallel and perpendicular to Market,
with blocks of 125 m (across) x 250 m (along Market). Many streets are one-way pairs, as in
the city (Pine eastbound / Bush westbound, 3rd northbound / 4th southbound, Howard / Folsom).
Close junctions along Market (where the two grids meet it) are merged by netconvert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

BOX = 2000.0
MARKET_ANGLE = math.radians(36.0)
MARKET_Y0 = 350.0  # where Market meets the west edge of the box
MIN_STREET_M = 40.0

# One-way direction relative to the street's unit vector: +1 along, -1 against, 0 two-way.
FIDI_EW = [  # (name, oneway), north to south, every 80 m from y = 1960; +1 = eastbound
    ("Broadway", 0), ("Pacific", +1), ("Jackson", -1), ("Washington", -1), ("Clay", +1),
    ("Sacramento", 0), ("California", 0), ("Pine", +1), ("Bush", -1), ("Sutter", -1),
    ("Post", +1), ("Geary", -1), ("O'Farrell", +1), ("Ellis", +1), ("Eddy", -1),
    ("Turk", 0), ("Golden Gate", 0), ("McAllister", 0), ("Fulton", 0), ("Grove", 0),
]
FIDI_NS = [  # (name, oneway), west to east, every 125 m from x = 62.5; +1 = northbound
    ("Larkin", +1), ("Hyde", -1), ("Leavenworth", +1), ("Jones", -1), ("Taylor", -1),
    ("Mason", +1), ("Powell", 0), ("Stockton", 0), ("Grant", 0), ("Kearny", +1),
    ("Montgomery", -1), ("Sansome", -1), ("Battery", +1), ("Front", -1), ("Davis", +1),
    ("Drumm", 0),
]
SOMA_PARALLEL = [  # (name, oneway), every 125 m south-east of Market; +1 = north-east bound
    ("Mission", 0), ("Howard", +1), ("Folsom", -1), ("Harrison", +1), ("Bryant", -1),
    ("Brannan", 0), ("Townsend", 0), ("King", 0), ("Berry", 0), ("Channel", 0),
    ("Mariposa", 0), ("16th", 0),
]
SOMA_CROSS = [  # (name, oneway), every 250 m along Market from its north-east end; +1 = toward Market
    ("Steuart", 0), ("Main", +1), ("Beale", -1), ("1st", +1), ("2nd", 0), ("3rd", +1),
    ("4th", -1), ("5th", 0), ("6th", 0), ("7th", -1), ("8th", +1), ("9th", -1),
    ("10th", +1), ("11th", 0), ("12th", 0),
]


@dataclass(frozen=True)
class Street:
    """An infinite line x = p + t*u, later clipped to its district."""

    name: str
    px: float
    py: float
    ux: float
    uy: float
    oneway: int
    lanes: int
    speed: float
    priority: int
    district: str  # "fidi", "soma" or "market"


def _market_side(x: float, y: float) -> float:
    """Signed distance from Market: > 0 south-east (SoMa), < 0 north-west (FiDi)."""
    return (x - 0.0) * math.sin(MARKET_ANGLE) - (y - MARKET_Y0) * math.cos(MARKET_ANGLE)


def _streets() -> list[Street]:
    ca, sa = math.cos(MARKET_ANGLE), math.sin(MARKET_ANGLE)
    streets = [Street("Market", 0.0, MARKET_Y0, ca, sa, 0, 2, 11.18, 10, "market")]
    for i, (name, oneway) in enumerate(FIDI_EW):
        lanes = 3 if oneway else 1
        streets.append(Street(name, 0.0, 1960.0 - 80.0 * i, 1.0, 0.0, oneway, lanes, 11.18, 7,
                              "fidi"))
    for i, (name, oneway) in enumerate(FIDI_NS):
        lanes = 2 if oneway else 1
        streets.append(Street(name, 62.5 + 125.0 * i, 0.0, 0.0, 1.0, oneway, lanes, 11.18, 6,
                              "fidi"))
    # SoMa: along-Market streets offset to the south-east (normal n = (sa, -ca)).
    for i, (name, oneway) in enumerate(SOMA_PARALLEL):
        d = 125.0 * (i + 1)
        lanes = 3 if oneway else 2
        streets.append(Street(name, d * sa, MARKET_Y0 - d * ca, ca, sa, oneway, lanes, 11.18, 8,
                              "soma"))
    # Cross streets start on Market, spaced from its north-east end, and point toward Market
    # (north-west, -n) so that oneway=+1 means "toward Market".
    market_len = BOX / ca
    for i, (name, oneway) in enumerate(SOMA_CROSS):
        s = market_len - 60.0 - 250.0 * i
        px, py = s * ca, MARKET_Y0 + s * sa
        lanes = 3 if oneway else 2
        streets.append(Street(name, px, py, -sa, ca, oneway, lanes, 11.18, 7, "soma"))
    return streets


def _clip(st: Street) -> tuple[float, float] | None:
    """Parameter range of the street inside the box and inside its district."""
    lo, hi = -1e9, 1e9
    for p, u in ((st.px, st.ux), (st.py, st.uy)):
        if abs(u) < 1e-12:
            if not 0.0 <= p <= BOX:
                return None
            continue
        a, b = (0.0 - p) / u, (BOX - p) / u
        lo, hi = max(lo, min(a, b)), min(hi, max(a, b))
    if st.district != "market":
        # side(t) = side(p) + t * side_rate; keep the district's half-plane.
        s0 = _market_side(st.px, st.py)
        rate = st.ux * math.sin(MARKET_ANGLE) - st.uy * math.cos(MARKET_ANGLE)
        sign = 1.0 if st.district == "soma" else -1.0
        if abs(rate) < 1e-12:
            if sign * s0 <= 0:
                return None
        else:
            t0 = -s0 / rate
            if sign * rate > 0:
                lo = max(lo, t0)
            else:
                hi = min(hi, t0)
    return (lo, hi) if hi - lo >= MIN_STREET_M else None


def _intersection(a: Street, b: Street) -> float | None:
    """Parameter along a where it crosses b, or None if parallel."""
    det = a.ux * (-b.uy) - a.uy * (-b.ux)
    if abs(det) < 1e-12:
        return None
    dx, dy = b.px - a.px, b.py - a.py
    return (dx * (-b.uy) - dy * (-b.ux)) / det


def build() -> tuple[list[tuple[str, float, float]], list[dict]]:
    streets = [s for s in _streets() if _clip(s) is not None]
    ranges = {s.name: _clip(s) for s in streets}
    node_ids: dict[tuple[int, int], str] = {}
    nodes: list[tuple[str, float, float]] = []

    def node_at(x: float, y: float) -> str:
        key = (round(x * 10), round(y * 10))
        if key not in node_ids:
            node_ids[key] = f"n{len(node_ids)}"
            nodes.append((node_ids[key], round(x, 2), round(y, 2)))
        return node_ids[key]

    edges: list[dict] = []
    eps = 1e-6
    for st in streets:
        lo, hi = ranges[st.name]
        ts = {lo, hi}
        for other in streets:
            if other is st:
                continue
            same_grid = other.district == st.district
            if not (same_grid or "market" in (st.district, other.district)):
                continue
            t = _intersection(st, other)
            if t is None or not lo - eps <= t <= hi + eps:
                continue
            olo, ohi = ranges[other.name]
            if olo - eps <= _intersection(other, st) <= ohi + eps:
                ts.add(min(max(t, lo), hi))
        points = sorted(ts)
        merged = [points[0]]
        for t in points[1:]:
            if t - merged[-1] > 0.5:
                merged.append(t)
        ids = [node_at(st.px + t * st.ux, st.py + t * st.uy) for t in merged]
        slug = st.name.lower().replace(" ", "_").replace("'", "")
        for k, (a, b) in enumerate(zip(ids, ids[1:], strict=False)):
            base = {"numLanes": st.lanes, "speed": st.speed, "priority": st.priority,
                    "name": f"{st.name} Street" if st.name[0].isdigit() else st.name}
            if st.oneway >= 0:
                edges.append({"id": f"{slug}_{k}", "from": a, "to": b, **base})
            if st.oneway <= 0:
                edges.append({"id": f"-{slug}_{k}", "from": b, "to": a, **base})
    return nodes, edges


def write(folder: Path) -> None:
    nodes, edges = build()
    with open(folder / "sf_downtown.nod.xml", "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<!-- generated by make_network.py -->\n')
        f.write("<nodes>\n")
        for nid, x, y in nodes:
            f.write(f'    <node id="{nid}" x="{x:.2f}" y="{y:.2f}" type="priority"/>\n')
        f.write("</nodes>\n")
    with open(folder / "sf_downtown.edg.xml", "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<!-- generated by make_network.py -->\n')
        f.write("<edges>\n")
        for e in edges:
            attrs = " ".join(f"{k}={quoteattr(str(v))}" for k, v in e.items())
            f.write(f"    <edge {attrs}/>\n")
        f.write("</edges>\n")
    print(f"{len(nodes)} nodes, {len(edges)} edges")


if __name__ == "__main__":
    write(Path(__file__).resolve().parent)
