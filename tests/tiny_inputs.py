"""Small real input files the tests write: an OpenStreetMap extract SUMO's netconvert reads."""

from __future__ import annotations

from pathlib import Path

TINY_OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="cosim-test">
{nodes}
{ways}
</osm>
"""


def tiny_osm(path: Path) -> Path:
    """A 3 x 3 block street grid in San Francisco with one building, as OSM XML."""
    nodes, ways, way_id = [], [], 100
    for i in range(3):
        for j in range(3):
            nodes.append(f'  <node id="{1 + 3 * i + j}" lat="{37.770 + 0.003 * i:.4f}" '
                         f'lon="{-122.420 + 0.004 * j:.4f}"/>')
    for line in ([1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 4, 7], [2, 5, 8], [3, 6, 9]):
        refs = "".join(f'<nd ref="{n}"/>' for n in line)
        ways.append(f'  <way id="{way_id}">{refs}<tag k="highway" v="residential"/></way>')
        way_id += 1
    # one building in the south-west block
    for k, (lat, lon) in enumerate(((37.7710, -122.4190), (37.7710, -122.4170),
                                    (37.7720, -122.4170), (37.7720, -122.4190))):
        nodes.append(f'  <node id="{11 + k}" lat="{lat}" lon="{lon}"/>')
    ways.append('  <way id="200"><nd ref="11"/><nd ref="12"/><nd ref="13"/><nd ref="14"/>'
                '<nd ref="11"/><tag k="building" v="yes"/></way>')
    path.write_text(TINY_OSM.format(nodes="\n".join(nodes), ways="\n".join(ways)))
    return path
