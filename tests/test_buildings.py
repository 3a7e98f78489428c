"""Street-geometry LOS (cosim.radio.buildings) on hand-made geometry whose answer is known by hand."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import shapely
import sumolib
from shapely.geometry import LineString, Point, box

from cosim.mobility.sumo_tools import binary
from cosim.radio.buildings import StreetLOS, read_buildings

RES = 1.0


@pytest.fixture(scope="module")
def plus_net(tmp_path_factory: pytest.TempPathFactory):
    """Two two-way streets crossing at (200, 200), arms 200 m long, two 3.2 m lanes per direction.

    Each direction's edge centre lies 3.2 m off the node line and is widened by 3.2 + 3 m: the
    street is the band within 9.4 m of the node line; the four corner blocks are ~190 m squares."""
    folder = tmp_path_factory.mktemp("plus")
    (folder / "p.nod.xml").write_text(
        '<nodes><node id="c" x="200" y="200" type="priority"/><node id="n" x="200" y="400"/>'
        '<node id="s" x="200" y="0"/><node id="e" x="400" y="200"/><node id="w" x="0" y="200"/></nodes>')
    edges = "".join(f'<edge id="{a}{b}" from="{a}" to="{b}" numLanes="2" width="3.2"/>'
                    for arm in "nsew" for a, b in (("c", arm), (arm, "c")))
    (folder / "p.edg.xml").write_text(f"<edges>{edges}</edges>")
    out = folder / "p.net.xml"
    subprocess.run([binary("netconvert"), "-n", str(folder / "p.nod.xml"), "-e", str(folder / "p.edg.xml"),
                    "--offset.disable-normalization", "true", "--no-turnarounds", "true", "-o", str(out)],
                   check=True, capture_output=True)
    return sumolib.net.readNet(str(out))


# cells: on the west arm, at the crossing, on the roof of the north-east block
CELLS_X = np.array([60.0, 200.0, 300.0])
CELLS_Y = np.array([200.0, 200.0, 300.0])


@pytest.fixture(scope="module")
def plus_los(plus_net) -> StreetLOS:
    return StreetLOS.from_network(plus_net, CELLS_X, CELLS_Y, resolution_m=RES)


def test_raster_has_streets_and_blocks(plus_los: StreetLOS):
    on_street = plus_los.building_at([100, 200, 200, 205, 200], [200, 100, 395, 200, 207])
    assert not on_street.any()
    assert plus_los.building_at([100, 300, 100, 300, 188], [100, 300, 300, 100, 188]).all()
    assert not plus_los.building_at([-20, 450], [300, 300]).any()  # outside the boundary: open


def test_street_canyon_and_corner(plus_los: StreetLOS):
    # along the cell's own street, either side of the crossing: LOS
    xs = np.array([5.0, 30, 90, 150, 199, 250, 330, 395])
    assert plus_los.los(xs, np.full(8, 200.0))[:, 0].all()
    assert plus_los.los(xs, np.full(8, 205.0))[:, 0].all()  # the far lane of the street
    # the cross street: LOS in the crossing only (the ray clears the blocks' corners for |dy| < ~9.8)
    near = plus_los.los([200, 200, 203], [203, 197, 200])[:, 0]
    far = plus_los.los([200, 200, 200, 200, 200, 200], [225, 175, 260, 140, 390, 10])[:, 0]
    assert near.all()
    assert not far.any()
    # behind a block (inside it, and a point of the north arm seen across the block): NLOS
    assert not plus_los.los([100, 120], [300, 380])[:, 0].any()


def test_cell_at_crossing_sees_all_arms(plus_los: StreetLOS):
    t = np.array([20.0, 80, 150, 195])
    x = np.concatenate([200 + t, 200 - t, np.full(4, 200.0), np.full(4, 200.0)])
    y = np.concatenate([np.full(4, 200.0), np.full(4, 200.0), 200 + t, 200 - t])
    assert plus_los.los(x, y)[:, 1].all()
    assert not plus_los.los([100, 300, 300], [100, 100, 290])[:, 1].any()


def test_rooftop_cell_ignores_its_own_block(plus_los: StreetLOS):
    assert plus_los.building_at([300], [300]).all()
    # the two streets along its block, down to the crossing: LOS
    assert plus_los.los([350, 260, 205, 200, 200], [200, 200, 200, 260, 350])[:, 2].all()
    # the far arms, seen across the north-west or south-east block: NLOS
    assert not plus_los.los([100, 150, 200, 200], [200, 200, 100, 150])[:, 2].any()


def test_deterministic_and_shape(plus_net, plus_los: StreetLOS):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 400, (7, 40)), rng.uniform(0, 400, (7, 40))
    first = plus_los.los(x, y)
    assert first.shape == (7, 40, 3) and first.dtype == bool
    assert np.array_equal(first, plus_los.los(x, y))
    doubled = plus_los.los(np.concatenate([x[0], x[0]]), np.concatenate([y[0], y[0]]))
    assert np.array_equal(doubled[:40], doubled[40:])
    again = StreetLOS.from_network(plus_net, CELLS_X, CELLS_Y, resolution_m=RES)
    assert np.array_equal(again.blocking_m, plus_los.blocking_m)


POLY_XML = """<additional>
  <poly id="b1" type="building" color="red" fill="1" shape="90,40 110,40 110,60 90,60"/>
  <poly id="p1" type="park" color="green" fill="1" shape="40,20 60,20 60,80 40,80"/>
  <poly id="b2" type="building.yes" shape="140,70 160,70 160,90 140,90"/>
</additional>
"""


def test_poly_xml_building_blocks(tmp_path: Path):
    path = tmp_path / "b.poly.xml"
    path.write_text(POLY_XML)
    bounds = (0.0, 0.0, 200.0, 100.0)
    shapes = read_buildings(path)
    assert len(shapes) == 2  # the park is not a building; "building.yes" is
    model = StreetLOS.from_polygons(shapes, bounds, [20.0], [50.0], resolution_m=RES)
    # (180, 50) is behind b1; the rays to (180, 10) and (100, 95) pass beside it; (150, 80) is in b2
    assert model.los([180, 180, 100, 150], [50, 10, 95, 80])[:, 0].tolist() == [False, True, True, False]
    without = StreetLOS.from_polygons(shapes[1:], bounds, [20.0], [50.0], resolution_m=RES)
    assert without.los([180], [50])[:, 0].all()
    with_park = StreetLOS.from_polygons(read_buildings(path, types=("park",)), bounds, [20.0], [50.0],
                                        resolution_m=RES)
    assert not with_park.los([180], [50])[:, 0].any()  # the park lies on that ray too
    assert StreetLOS.from_polygons([], bounds, [20.0], [50.0]).los([180, 5], [5, 95]).all()


def _reference(buildings, cells_x, cells_y, x, y, tol):
    """Slow exact LOS with shapely: blocked when the segment meets a building other than the
    cell's own; None when within ``tol`` of deciding otherwise (raster resolution)."""
    parts = list(getattr(buildings, "geoms", [buildings]))
    out = []
    for cx, cy in zip(cells_x, cells_y, strict=True):
        own = [p for p in parts if p.covers(Point(cx, cy))]
        others = shapely.union_all([p for p in parts if not any(p is o for o in own)])
        row = []
        for px, py in zip(x, y, strict=True):
            seg = LineString([(cx, cy), (px, py)])
            if Point(px, py).distance(buildings.boundary) < tol:
                row.append(None)
            elif not seg.intersects(others.buffer(tol)):
                row.append(True)
            elif seg.intersects(others.buffer(-tol)):
                row.append(False)
            else:
                row.append(None)
        out.append(row)
    return np.array(out, dtype=object).T


def _compare(model: StreetLOS, buildings, cells_x, cells_y, x, y, tol, min_checked):
    ref = _reference(buildings, cells_x, cells_y, x, y, tol)
    got = model.los(x, y)
    known = ref != None  # noqa: E711 (elementwise on an object array)
    assert known.sum() >= min_checked
    assert np.array_equal(got[known], ref[known].astype(bool))


def test_vectorised_equals_reference_on_network(plus_net, plus_los: StreetLOS):
    # the reference's buildings: the boundary box less every edge shape widened by its half-width
    xmin, ymin, xmax, ymax = plus_net.getBoundary()
    streets = shapely.union_all([
        LineString(e.getShape(True)).buffer(sum(la.getWidth() for la in e.getLanes()) / 2 + 3.0)
        for e in plus_net.getEdges()])
    buildings = box(xmin, ymin, xmax, ymax).difference(streets)
    rng = np.random.default_rng(7)
    x, y = rng.uniform(xmin, xmax, 60), rng.uniform(ymin, ymax, 60)
    x = np.concatenate([x, rng.uniform(0, 400, 20), np.full(20, 200.0) + rng.normal(0, 4, 20)])
    y = np.concatenate([y, np.full(20, 200.0) + rng.normal(0, 4, 20), rng.uniform(0, 400, 20)])
    _compare(plus_los, buildings, CELLS_X, CELLS_Y, x, y, 2 * RES, min_checked=150)


def test_vectorised_equals_reference_on_random_polygons():
    rng = np.random.default_rng(3)
    polys = []
    for _ in range(12):
        cx, cy = rng.uniform(20, 480, 2)
        w, h = rng.uniform(8, 40, 2)
        a = rng.uniform(0, np.pi)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        polys.append(corners @ rot.T + [cx, cy])
    buildings = shapely.union_all([shapely.Polygon(p) for p in polys])
    roof_x, roof_y = polys[0].mean(axis=0)  # a rooftop site
    cells_x, cells_y = [250.0, 30.0, float(roof_x)], [250.0, 470.0, float(roof_y)]
    model = StreetLOS.from_polygons(polys, (0, 0, 500, 500), cells_x, cells_y, resolution_m=RES)
    x, y = rng.uniform(0, 500, 150), rng.uniform(0, 500, 150)
    _compare(model, buildings, cells_x, cells_y, x, y, 2 * RES, min_checked=300)
