"""The mobility trace's rows for one SUMO step, as an Arrow record batch: built by the mobility
layer, or by a pipelined SUMO session's child process while the run works on earlier steps."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from cosim.mobility.geo import GeoReference
from cosim.mobility.session import VehicleStates
from cosim.trace_schemas import MOBILITY_SCHEMA


def mobility_batch(s: VehicleStates, types: Mapping[str, str], geo: GeoReference | None
                   ) -> pa.RecordBatch:
    """Every vehicle of ``s`` (its ``t`` on the engine clock) as rows of the mobility trace."""
    n = len(s)
    if geo is not None:
        lon, lat = geo.lonlat(s.x, s.y)
        lon, lat = pa.array(lon, pa.float64()), pa.array(lat, pa.float64())
    else:
        lon = lat = pa.nulls(n, pa.float64())
    ids = s.ids.tolist()
    columns = {
        "t": pa.array(np.full(n, s.t), pa.float64()), "vehicle": pa.array(ids, pa.string()),
        "x": pa.array(s.x, pa.float64()), "y": pa.array(s.y, pa.float64()), "lon": lon, "lat": lat,
        "speed": pa.array(s.speed, pa.float64()), "heading": pa.array(s.heading, pa.float64()),
        "edge": pa.array(s.edge.tolist(), pa.string()), "parked": pa.array(s.parked, pa.bool_()),
        "type": pa.array([types[v] for v in ids], pa.string()),
    }
    return pa.RecordBatch.from_arrays([columns[f.name] for f in MOBILITY_SCHEMA], schema=MOBILITY_SCHEMA)
