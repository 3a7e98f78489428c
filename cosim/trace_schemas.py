"""Every Parquet trace a run writes: its table name and Arrow schema, defined once.

The layers that write a table and ``analysis/`` that reads it both import it from here.
"""

from __future__ import annotations

import pyarrow as pa

MOBILITY = "mobility"
CELLS = "cells"
RADIO = "radio"
HANDOFFS = "handoffs"
LINK_WINDOWS = "link_windows"
PARTICIPATION = "participation"
METRICS = "metrics"
V2V_WINDOWS = "v2v_windows"
HOPS = "hops"
# every table a run may write (a file of another name in a run folder is not cosim's)
TRACE_TABLES = (MOBILITY, CELLS, RADIO, HANDOFFS, LINK_WINDOWS, PARTICIPATION, METRICS,
                V2V_WINDOWS, HOPS)

MOBILITY_SCHEMA = pa.schema([
    ("t", pa.float64()),
    ("vehicle", pa.string()),
    ("x", pa.float64()),
    ("y", pa.float64()),
    ("lon", pa.float64()),
    ("lat", pa.float64()),
    ("speed", pa.float64()),
    ("heading", pa.float64()),
    ("edge", pa.string()),
    ("parked", pa.bool_()),
    ("type", pa.string()),  # SUMO vType
])
CELL_SCHEMA = pa.schema([
    ("cell", pa.int32()), ("id", pa.string()), ("kind", pa.string()), ("scenario", pa.string()),
    ("x", pa.float64()), ("y", pa.float64()), ("height_m", pa.float64()),
    ("tx_power_dbm", pa.float64()), ("antenna_gain_dbi", pa.float64()),
    ("carrier_ghz", pa.float64()), ("bandwidth_mhz", pa.float64()),
    ("azimuth_deg", pa.float64()), ("downtilt_deg", pa.float64()),  # null azimuth: omnidirectional
])
RADIO_SCHEMA = pa.schema([
    ("t", pa.float64()), ("vehicle", pa.string()), ("serving_cell", pa.int32()),
    ("rsrp_dbm", pa.float32()), ("sinr_db", pa.float32()), ("rate_bps", pa.float64()),
    ("ul_rate_bps", pa.float64()),
])
HANDOFF_SCHEMA = pa.schema([
    ("t", pa.float64()), ("vehicle", pa.string()), ("from_cell", pa.int32()),
    ("to_cell", pa.int32()), ("kind", pa.string()), ("interruption_s", pa.float64()),
    ("ping_pong", pa.bool_()),
])
WINDOW_SCHEMA = pa.schema([
    ("vehicle", pa.string()), ("cell", pa.int32()), ("start", pa.float64()), ("end", pa.float64()),
    ("duration_s", pa.float64()), ("mean_rate_bps", pa.float64()), ("min_rate_bps", pa.float64()),
    ("censored", pa.bool_()),
])
PARTICIPATION_SCHEMA = pa.schema([
    ("round", pa.int32()), ("client", pa.int32()), ("vehicle", pa.string()),
    ("selected_at", pa.float64()), ("outcome", pa.string()), ("reason", pa.string()),
    ("t_download_end", pa.float64()), ("t_compute_end", pa.float64()),
    ("t_upload_end", pa.float64()), ("bytes_down", pa.int64()), ("bytes_up", pa.int64()),
    ("staleness", pa.int32()), ("model_version", pa.int32()),
    # How the update reached the server: null over the client's own uplink; "relay": a neighbour
    # took it over the sidelink and uploaded it; "cluster": the cluster head (``via_vehicle``)
    # uploaded it in its aggregate. bytes_up is what the cellular uplink carried for it (a
    # cluster's aggregate is on its head's row), bytes_sidelink what the V2V sidelink carried.
    ("via", pa.string()), ("via_vehicle", pa.string()), ("bytes_sidelink", pa.int64()),
])
# Maximal intervals in which a pair of vehicles has a sidelink (radio.sidelink), a < b.
V2V_WINDOW_SCHEMA = pa.schema([
    ("a", pa.string()), ("b", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
    ("duration_s", pa.float64()), ("mean_rate_bps", pa.float64()), ("min_rate_bps", pa.float64()),
    ("censored", pa.bool_()),
])
METRICS_SCHEMA = pa.schema([
    ("round", pa.int32()), ("sim_time_s", pa.float64()),
    ("task", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
    # Null on the global model's rows on the held-out segments (every reader of learning curves
    # keeps only those). learning.personalisation adds per-client rows on the client's own
    # validation frames: its partition index, and which model ("global", "finetune", "tap").
    ("client", pa.int32()), ("model", pa.string()),
])

# Every transfer an update, an aggregate or the dispatched model makes over a relay, a cluster or
# a spanning tree (cosim.learning.federated.hops): who sent it where, over which link, energy.
HOPS_SCHEMA = pa.schema([
    ("round", pa.int32()), ("client", pa.int32()), ("src", pa.string()), ("dst", pa.string()),
    ("link", pa.string()), ("purpose", pa.string()), ("nbytes", pa.int64()),
    ("bytes_moved", pa.int64()), ("t_start", pa.float64()), ("t_end", pa.float64()),
    ("latency_s", pa.float64()), ("energy_j", pa.float64()), ("ok", pa.bool_()),
    ("reason", pa.string()),
])

SCHEMAS = {MOBILITY: MOBILITY_SCHEMA, CELLS: CELL_SCHEMA, RADIO: RADIO_SCHEMA,
           HANDOFFS: HANDOFF_SCHEMA, LINK_WINDOWS: WINDOW_SCHEMA,
           PARTICIPATION: PARTICIPATION_SCHEMA, METRICS: METRICS_SCHEMA,
           V2V_WINDOWS: V2V_WINDOW_SCHEMA, HOPS: HOPS_SCHEMA}
# The tables that describe connectivity: equal for every policy that replays one recording.
CONNECTIVITY_TABLES = (CELLS, RADIO, HANDOFFS, LINK_WINDOWS)
