"""Deterministic line of sight from street geometry: the alternative to 38.901's stochastic LOS.

38.901 draws LOS from a probability of distance alone, so a far macro is now and then in LOS for a
few seconds and wins a handoff by 20-30 dB. In a city LOS is decided by buildings: a vehicle sees a
site down its street (street canyon) and loses it around the corner. As Veins' obstacle shadowing
reads buildings from a SUMO ``.poly.xml``, this module takes buildings either from

- the network itself: every point inside the network's boundary farther than a street's half-width
  (its lanes' widths / 2 plus a sidewalk margin) from a non-internal edge's shape (and outside every
  junction's shape) is a building; the blocks between the streets are solid; or
- polygons (type ``building`` by default) of a SUMO additional ``.poly.xml`` (:func:`read_buildings`).

Buildings are taller than every antenna and every vehicle (heights play no part), rasterised onto a
regular grid (a pixel is a building when its centre is). Each cell casts rays over the full circle
(``ray_step_deg`` apart) and marches each on the raster (half-pixel steps) until it first enters a
building, storing that first-blocking distance per angle.

Rooftop sites: a site inside a building is not blocked by the building it stands on. For that site
its own building (the 4-connected building pixels around it; for network blocks the whole block)
is transparent and every other building blocks, so a rooftop macro sees the streets around its
block and down them.

Angle bins: a query is LOS when the vehicle is nearer than the first-blocking distance on both rays
that bracket its bearing (the conservative choice: the rays are at most ``ray_step_deg`` apart, 1.7 m
at 1 km for 0.1 degree). The min of each neighbouring pair is precomputed, so a query is one lookup.

Positions are in SUMO's network frame (x east, y north, the network's offset already applied), as
``net.getBoundary()``, edge shapes and ``.poly.xml`` shapes are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import shapely
from scipy import ndimage

from cosim.sumo_xml import xml_elements

Bounds = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax


class StreetLOS:
    """First-blocking distance per cell and bearing, from a building raster; ``los(x, y)`` queries it.

    ``building_mask[iy, ix]`` is the pixel whose centre is at ``origin + (ix + 0.5, iy + 0.5) *
    resolution_m``: row 0 is the southernmost (plot with ``imshow(mask, origin="lower",
    extent=los.extent)``). ``blocking_m[c, a]`` is the distance from cell c at which the ray of
    bearing ``a * ray_step_deg`` (counter-clockwise from east) first enters a building other than
    the one the cell stands on (``inf`` when it leaves the grid unblocked), to within half a pixel.
    """

    def __init__(self, building_mask: np.ndarray, origin: tuple[float, float], resolution_m: float,
                 cells_x: Sequence[float] | np.ndarray, cells_y: Sequence[float] | np.ndarray,
                 ray_step_deg: float = 0.1):
        self.building_mask = np.asarray(building_mask, dtype=bool)
        self.origin = (float(origin[0]), float(origin[1]))
        self.resolution_m = float(resolution_m)
        self.cells_x = np.asarray(cells_x, dtype=float).ravel()
        self.cells_y = np.asarray(cells_y, dtype=float).ravel()
        if self.cells_x.shape != self.cells_y.shape:
            raise ValueError("cells_x and cells_y differ in length")
        self.n_angles = round(360.0 / ray_step_deg)
        if self.n_angles < 4 or not math.isclose(self.n_angles * ray_step_deg, 360.0, rel_tol=1e-9):
            raise ValueError(f"ray_step_deg must divide 360 (got {ray_step_deg})")
        self.ray_step_deg = 360.0 / self.n_angles
        theta = np.arange(self.n_angles) * (2 * np.pi / self.n_angles)
        self._cos, self._sin = np.cos(theta), np.sin(theta)
        padded = np.pad(self.building_mask, 1)  # a free border: samples off the grid are open
        labels, _ = ndimage.label(padded)
        sweeps = []
        for x, y, own in zip(self.cells_x, self.cells_y, self._own_building(labels), strict=True):
            sweeps.append(self._sweep(padded if own == 0 else padded & (labels != own), x, y))
        self.blocking_m = np.stack(sweeps) if sweeps else np.zeros((0, self.n_angles), np.float32)
        # min over the two rays bracketing a bearing: bin a holds min(ray a, ray a + 1)
        self._bracket_m = np.minimum(self.blocking_m, np.roll(self.blocking_m, -1, axis=1)).ravel()
        self._cx32 = self.cells_x.astype(np.float32)
        self._cy32 = self.cells_y.astype(np.float32)

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def from_network(cls, net: Any, cells_x: Sequence[float] | np.ndarray,
                     cells_y: Sequence[float] | np.ndarray, resolution_m: float = 2.0,
                     sidewalk_m: float = 3.0, ray_step_deg: float = 0.1, margin_m: float = 50.0
                     ) -> StreetLOS:
        """Buildings are the blocks between the streets of a sumolib network (see the module doc).

        A street is each non-internal edge's shape (through to the junction centres) widened by
        half its lanes' total width plus ``sidewalk_m``, plus every junction's shape. The grid
        covers the network's boundary and the cells, plus ``margin_m``; outside the boundary is open.
        """
        boundary = cast(Bounds, tuple(float(v) for v in net.getBoundary()))  # sumolib: 4 numbers
        origin, shape = _grid(boundary, cells_x, cells_y, resolution_m, margin_m)
        street = np.zeros(shape, dtype=bool)
        for edge in net.getEdges():
            if edge.getFunction() not in ("", "normal"):
                continue
            half = sum(lane.getWidth() for lane in edge.getLanes()) / 2.0 + sidewalk_m
            _draw_thick_line(street, origin, resolution_m, np.asarray(edge.getShape(True), float), half)
        for node in net.getNodes():
            node_shape = node.getShape()
            if len(node_shape) >= 3:
                _fill_polygon(street, origin, resolution_m, np.asarray(node_shape, float)[:, :2])
        ys, xs = _centres(origin, resolution_m, shape)
        xmin, ymin, xmax, ymax = boundary
        inside = ((ys >= ymin) & (ys <= ymax))[:, None] & ((xs >= xmin) & (xs <= xmax))[None, :]
        return cls(inside & ~street, origin, resolution_m, cells_x, cells_y, ray_step_deg)

    @classmethod
    def from_polygons(cls, polygons: Iterable[Sequence[tuple[float, float]] | np.ndarray], bounds: Bounds,
                      cells_x: Sequence[float] | np.ndarray, cells_y: Sequence[float] | np.ndarray,
                      resolution_m: float = 2.0, ray_step_deg: float = 0.1, margin_m: float = 50.0
                      ) -> StreetLOS:
        """Buildings are the given polygons (x, y vertex lists); ``bounds`` (e.g. the network's
        boundary) and the cells, plus ``margin_m``, set the grid."""
        origin, shape = _grid(cast(Bounds, tuple(float(v) for v in bounds)), cells_x, cells_y,
                              resolution_m, margin_m)
        mask = np.zeros(shape, dtype=bool)
        for poly in polygons:
            _fill_polygon(mask, origin, resolution_m, np.asarray(poly, dtype=float)[:, :2])
        return cls(mask, origin, resolution_m, cells_x, cells_y, ray_step_deg)

    # -- queries ----------------------------------------------------------------------------------

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) of the raster, for ``imshow(..., origin="lower")``."""
        ny, nx = self.building_mask.shape
        x0, y0 = self.origin
        return x0, x0 + nx * self.resolution_m, y0, y0 + ny * self.resolution_m

    def los(self, x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> np.ndarray:
        """LOS of positions ``x, y`` (any shape S) to every cell: bool of shape S + (C,)."""
        x = np.asarray(x, dtype=np.float32)[..., None]
        y = np.asarray(y, dtype=np.float32)[..., None]
        dx = x - self._cx32
        dy = y - self._cy32
        dist = np.sqrt(dx * dx + dy * dy)
        turns = np.arctan2(dy, dx) * np.float32(self.n_angles / (2 * np.pi))
        lower = np.floor(turns).astype(np.intp) % self.n_angles
        lower += np.arange(len(self.cells_x)) * self.n_angles
        return dist < self._bracket_m[lower]

    def building_at(self, x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> np.ndarray:
        """Whether positions fall on a building pixel (outside the grid: no)."""
        ix, iy = self._pixel(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        ny, nx = self.building_mask.shape
        inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        return inside & self.building_mask[np.clip(iy, 0, ny - 1), np.clip(ix, 0, nx - 1)]

    # -- internals --------------------------------------------------------------------------------

    def _pixel(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.resolution_m
        ix = np.floor((x - self.origin[0]) / r).astype(np.intp)
        iy = np.floor((y - self.origin[1]) / r).astype(np.intp)
        return ix, iy

    def _own_building(self, labels: np.ndarray) -> np.ndarray:
        """Label (in the padded raster) of the building each cell stands on; 0 on open ground."""
        ix, iy = self._pixel(self.cells_x, self.cells_y)
        ny, nx = self.building_mask.shape
        inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        return np.where(inside, labels[np.clip(iy, 0, ny - 1) + 1, np.clip(ix, 0, nx - 1) + 1], 0)

    def _sweep(self, padded: np.ndarray, cx: float, cy: float, budget: int = 1 << 17) -> np.ndarray:
        """First-blocking distance of every ray from (cx, cy) on a padded raster: march in chunks,
        dropping the rays that are blocked."""
        ny, nx = self.building_mask.shape
        step = self.resolution_m / 2.0
        x0, y0 = self.origin
        x1, y1 = x0 + nx * self.resolution_m, y0 + ny * self.resolution_m
        reach = max(math.hypot(cx - a, cy - b) for a in (x0, x1) for b in (y0, y1))
        n_steps = int(math.ceil(reach / step)) + 1
        blocking = np.full(self.n_angles, np.inf, dtype=np.float32)
        active = np.arange(self.n_angles)
        k0 = 0
        while active.size and k0 < n_steps:
            k = np.arange(k0, min(n_steps, k0 + max(16, budget // active.size)))
            s = k * step
            ix, iy = self._pixel(cx + self._cos[active, None] * s, cy + self._sin[active, None] * s)
            hit = padded[np.clip(iy, -1, ny) + 1, np.clip(ix, -1, nx) + 1]
            blocked = hit.any(axis=1)
            blocking[active[blocked]] = s[hit[blocked].argmax(axis=1)]
            active = active[~blocked]
            k0 = int(k[-1]) + 1
        return blocking


def read_buildings(path: str | Path, types: Sequence[str] = ("building",), net: Any | None = None
                   ) -> list[np.ndarray]:
    """Shapes (K x 2 arrays, network frame) of the ``<poly>`` elements of a SUMO ``.poly.xml`` whose
    type is in ``types`` or starts with one of them plus a dot (``building.yes`` from polyconvert).

    Shapes given in lon/lat (``geo="1"``) are converted with ``net.convertLonLat2XY``."""
    wanted = tuple(types)
    shapes = []
    for tag, _, poly in xml_elements(Path(path), "radio.channel.buildings"):  # streamed, bounded
        if tag != "poly":
            continue
        kind = poly.get("type", "")
        if not (kind in wanted or kind.split(".")[0] in wanted):
            continue
        pts = np.array([[float(v) for v in p.split(",")[:2]] for p in poly.get("shape", "").split()])
        if len(pts) < 3:
            continue
        if not np.isfinite(pts).all():
            raise ValueError(f"polygon {poly.get('id')!r} has a coordinate that is not a number")
        if poly.get("geo", "").lower() in ("1", "true"):
            if net is None or not net.hasGeoProj():
                raise ValueError(f"polygon {poly.get('id')!r} is in lon/lat (geo=\"1\") but the "
                                 "network has no projection to convert it")
            pts = np.array([net.convertLonLat2XY(lon, lat) for lon, lat in pts])
            if not np.isfinite(pts).all():
                raise ValueError(f"polygon {poly.get('id')!r}: its lon/lat do not convert")
        shapes.append(pts)
    return shapes


def _grid(bounds: Bounds, cells_x: Sequence[float] | np.ndarray, cells_y: Sequence[float] | np.ndarray,
          resolution_m: float, margin_m: float) -> tuple[tuple[float, float], tuple[int, int]]:
    """Origin and (ny, nx) of a grid covering ``bounds`` and the cells plus a margin."""
    cx, cy = np.asarray(cells_x, dtype=float), np.asarray(cells_y, dtype=float)
    xmin, ymin, xmax, ymax = bounds
    if cx.size:
        xmin, xmax = min(xmin, cx.min()), max(xmax, cx.max())
        ymin, ymax = min(ymin, cy.min()), max(ymax, cy.max())
    x0, y0 = xmin - margin_m, ymin - margin_m
    nx = int(math.ceil((xmax + margin_m - x0) / resolution_m))
    ny = int(math.ceil((ymax + margin_m - y0) / resolution_m))
    return (x0, y0), (ny, nx)


def _centres(origin: tuple[float, float], r: float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    return origin[1] + (np.arange(ny) + 0.5) * r, origin[0] + (np.arange(nx) + 0.5) * r


def _window(origin: tuple[float, float], r: float, shape: tuple[int, int],
            lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Pixel slices whose centres may lie in the box [lo, hi], and those centres' coordinates."""
    ny, nx = shape
    ix0 = max(0, int(math.floor((lo[0] - origin[0]) / r - 0.5)))
    iy0 = max(0, int(math.floor((lo[1] - origin[1]) / r - 0.5)))
    ix1 = min(nx, int(math.ceil((hi[0] - origin[0]) / r - 0.5)) + 1)
    iy1 = min(ny, int(math.ceil((hi[1] - origin[1]) / r - 0.5)) + 1)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    xs = origin[0] + (np.arange(ix0, ix1) + 0.5) * r
    ys = origin[1] + (np.arange(iy0, iy1) + 0.5) * r
    return slice(iy0, iy1), slice(ix0, ix1), xs, ys


def _draw_thick_line(mask: np.ndarray, origin: tuple[float, float], r: float, pts: np.ndarray,
                     half_width: float, piece_m: float = 40.0) -> None:
    """Mark pixels whose centre is within ``half_width`` of the polyline (round ends and joints)."""
    if len(pts) == 1:
        pts = np.vstack([pts, pts])
    for p, q in zip(pts[:-1], pts[1:], strict=True):
        n = max(1, int(math.ceil(math.hypot(*(q - p)) / piece_m)))  # short pieces: small windows
        for i in range(n):
            a, b = p + (q - p) * (i / n), p + (q - p) * ((i + 1) / n)
            win = _window(origin, r, mask.shape, np.minimum(a, b) - half_width, np.maximum(a, b) + half_width)
            if win is None:
                continue
            rows, cols, xs, ys = win
            d = b - a
            length2 = float(d @ d)
            px, py = xs[None, :] - a[0], ys[:, None] - a[1]
            t = np.clip((px * d[0] + py * d[1]) / length2, 0.0, 1.0) if length2 > 0 else 0.0
            ex, ey = px - t * d[0], py - t * d[1]
            mask[rows, cols] |= ex * ex + ey * ey <= half_width * half_width


def _fill_polygon(mask: np.ndarray, origin: tuple[float, float], r: float, pts: np.ndarray) -> None:
    """Mark pixels whose centre lies in the polygon (or on its boundary)."""
    if len(pts) < 3:
        return
    poly = shapely.make_valid(shapely.Polygon(pts))
    win = _window(origin, r, mask.shape, pts.min(axis=0), pts.max(axis=0))
    if win is None or poly.is_empty:
        return
    rows, cols, xs, ys = win
    shapely.prepare(poly)
    gx, gy = np.meshgrid(xs, ys)
    mask[rows, cols] |= shapely.intersects_xy(poly, gx, gy)
