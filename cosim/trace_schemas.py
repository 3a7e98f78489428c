"""Every Parquet trace a run writes: its table name and Arrow schema, defined once.

The layers that write a table and ``analysis/`` that reads it both import it from here. Beside
each schema, its columns' units and meanings (``*_COLUMNS``: column -> (unit, meaning); "" where a
column has no unit): documentation only, so the written Parquet bytes do not depend on them. The
trace reference is generated from these, and a test checks that every column has its entry.
"""

from __future__ import annotations

import pyarrow as pa

Columns = dict[str, tuple[str, str]]  # column -> (unit, meaning)

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
MOBILITY_COLUMNS: Columns = {
    "t": ("s", "simulated time since the warm-up ended"),
    "vehicle": ("", "SUMO vehicle id"),
    "x": ("m", "position east in the network's frame (after netOffset)"),
    "y": ("m", "position north in the network's frame"),
    "lon": ("deg", "longitude from mobility.geo_origin; null without it"),
    "lat": ("deg", "latitude from mobility.geo_origin; null without it"),
    "speed": ("m/s", "speed"),
    "heading": ("deg", "SUMO's angle: 0 = north, clockwise"),
    "edge": ("", "the edge the vehicle is on; starts with ':' inside a junction"),
    "parked": ("", "stopped in a parking area"),
    "type": ("", "SUMO vType"),
}
CELL_SCHEMA = pa.schema([
    ("cell", pa.int32()), ("id", pa.string()), ("kind", pa.string()), ("scenario", pa.string()),
    ("x", pa.float64()), ("y", pa.float64()), ("height_m", pa.float64()),
    ("tx_power_dbm", pa.float64()), ("antenna_gain_dbi", pa.float64()),
    ("carrier_ghz", pa.float64()), ("bandwidth_mhz", pa.float64()),
    ("azimuth_deg", pa.float64()), ("downtilt_deg", pa.float64()),  # null azimuth: omnidirectional
])
CELL_COLUMNS: Columns = {
    "cell": ("", "the integer index the other tables use"),
    "id": ("", "the cell's name"),
    "kind": ("", "macro, small or rsu"),
    "scenario": ("", "38.901 path-loss scenario: uma or umi"),
    "x": ("m", "position east in the network's frame"),
    "y": ("m", "position north in the network's frame"),
    "height_m": ("m", "antenna height"),
    "tx_power_dbm": ("dBm", "total transmit power over the bandwidth"),
    "antenna_gain_dbi": ("dBi", "antenna gain on boresight"),
    "carrier_ghz": ("GHz", "carrier frequency"),
    "bandwidth_mhz": ("MHz", "channel bandwidth"),
    "azimuth_deg": ("deg", "boresight bearing, clockwise from north; null: omnidirectional"),
    "downtilt_deg": ("deg", "electrical downtilt, positive towards the ground"),
}
RADIO_SCHEMA = pa.schema([
    ("t", pa.float64()), ("vehicle", pa.string()), ("serving_cell", pa.int32()),
    ("rsrp_dbm", pa.float32()), ("sinr_db", pa.float32()), ("rate_bps", pa.float64()),
    ("ul_rate_bps", pa.float64()),
])
RADIO_COLUMNS: Columns = {
    "t": ("s", "simulated time"),
    "vehicle": ("", "SUMO vehicle id"),
    "serving_cell": ("", "serving cell index (cells.parquet); -1 when not connected"),
    "rsrp_dbm": ("dBm", "serving cell's RSRP per resource element"),
    "sinr_db": ("dB", "downlink SINR on the serving cell"),
    "rate_bps": ("bit/s", "single-user downlink rate"),
    "ul_rate_bps": ("bit/s", "single-user uplink rate"),
}
HANDOFF_SCHEMA = pa.schema([
    ("t", pa.float64()), ("vehicle", pa.string()), ("from_cell", pa.int32()),
    ("to_cell", pa.int32()), ("kind", pa.string()), ("interruption_s", pa.float64()),
    ("ping_pong", pa.bool_()),
])
HANDOFF_COLUMNS: Columns = {
    "t": ("s", "simulated time of the event"),
    "vehicle": ("", "SUMO vehicle id"),
    "from_cell": ("", "cell index before the event; -1: none"),
    "to_cell": ("", "cell index after the event; -1: none"),
    "kind": ("", "handoff, rlf (radio link failure), attach or detach"),
    "interruption_s": ("s", "time without data the event caused"),
    "ping_pong": ("", "a return to the previous cell within handoff.ping_pong_s"),
}
WINDOW_SCHEMA = pa.schema([
    ("vehicle", pa.string()), ("cell", pa.int32()), ("start", pa.float64()), ("end", pa.float64()),
    ("duration_s", pa.float64()), ("mean_rate_bps", pa.float64()), ("min_rate_bps", pa.float64()),
    ("censored", pa.bool_()),
])
WINDOW_COLUMNS: Columns = {
    "vehicle": ("", "SUMO vehicle id"),
    "cell": ("", "cell index; -1: connected to any cell, across handoffs"),
    "start": ("s", "simulated time the window opened"),
    "end": ("s", "simulated time the window closed"),
    "duration_s": ("s", "end - start"),
    "mean_rate_bps": ("bit/s", "mean single-user downlink rate over the window"),
    "min_rate_bps": ("bit/s", "lowest single-user downlink rate in the window"),
    "censored": ("", "still open when the run ended"),
}
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
PARTICIPATION_COLUMNS: Columns = {
    "round": ("", "aggregation round the attempt belongs to"),
    "client": ("", "the client's data partition"),
    "vehicle": ("", "the SUMO vehicle carrying it"),
    "selected_at": ("s", "simulated time the client was selected"),
    "outcome": ("", "completed or failed"),
    "reason": ("", "why it failed: left_network, radio_link_failure, out_of_coverage, deadline"),
    "t_download_end": ("s", "simulated time the download ended"),
    "t_compute_end": ("s", "simulated time local training ended"),
    "t_upload_end": ("s", "simulated time the upload ended"),
    "bytes_down": ("B", "bytes downloaded"),
    "bytes_up": ("B", "bytes the cellular uplink carried for this update"),
    "staleness": ("", "aggregations since the model the client trained from (asynchronous)"),
    "model_version": ("", "global model version the client downloaded"),
    "via": ("", "null: its own uplink; relay or cluster: how it reached the server"),
    "via_vehicle": ("", "the relay or cluster head that uploaded it"),
    "bytes_sidelink": ("B", "bytes the V2V sidelink carried for it"),
}
# Maximal intervals in which a pair of vehicles has a sidelink (radio.sidelink), a < b.
V2V_WINDOW_SCHEMA = pa.schema([
    ("a", pa.string()), ("b", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
    ("duration_s", pa.float64()), ("mean_rate_bps", pa.float64()), ("min_rate_bps", pa.float64()),
    ("censored", pa.bool_()),
])
V2V_WINDOW_COLUMNS: Columns = {
    "a": ("", "one vehicle of the pair (a < b)"),
    "b": ("", "the other vehicle"),
    "start": ("s", "simulated time the sidelink came up"),
    "end": ("s", "simulated time it went down"),
    "duration_s": ("s", "end - start"),
    "mean_rate_bps": ("bit/s", "mean sidelink rate over the window"),
    "min_rate_bps": ("bit/s", "lowest sidelink rate in the window"),
    "censored": ("", "still up when the run ended"),
}
METRICS_SCHEMA = pa.schema([
    ("round", pa.int32()), ("sim_time_s", pa.float64()),
    ("task", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
    # Null on the global model's rows on the held-out segments (every reader of learning curves
    # keeps only those). learning.personalisation adds per-client rows on the client's own
    # validation frames: its partition index, and which model ("global", "finetune", "tap").
    ("client", pa.int32()), ("model", pa.string()),
])

METRICS_COLUMNS: Columns = {
    "round": ("", "the round after which the model was evaluated"),
    "sim_time_s": ("s", "simulated time of the evaluation"),
    "task": ("", "seg3d, det3d, pan2d or det2d"),
    "metric": ("", "mIoU, mAP, mAPH, mAP_center, STQ, SQ, AQ, mAP50, loss"),
    "value": ("", "the metric's value (a fraction; loss: the task's loss)"),
    "client": ("", "null: the global model on the held-out segments; else the client's partition"),
    "model": ("", "null, or global, finetune or tap (personalisation rows)"),
}
# Every transfer an update, an aggregate or the dispatched model makes over a relay, a cluster or
# a spanning tree (cosim.learning.federated.hops): who sent it where, over which link, energy.
HOPS_SCHEMA = pa.schema([
    ("round", pa.int32()), ("client", pa.int32()), ("src", pa.string()), ("dst", pa.string()),
    ("link", pa.string()), ("purpose", pa.string()), ("nbytes", pa.int64()),
    ("bytes_moved", pa.int64()), ("t_start", pa.float64()), ("t_end", pa.float64()),
    ("latency_s", pa.float64()), ("energy_j", pa.float64()), ("ok", pa.bool_()),
    ("reason", pa.string()),
])

HOPS_COLUMNS: Columns = {
    "round": ("", "aggregation round"),
    "client": ("", "the client whose update (or aggregate) moved"),
    "src": ("", "sending vehicle (or server)"),
    "dst": ("", "receiving vehicle (or server)"),
    "link": ("", "uplink or sidelink"),
    "purpose": ("", "upload, relay, aggregate or dispatch"),
    "nbytes": ("B", "bytes to move"),
    "bytes_moved": ("B", "bytes moved before it ended"),
    "t_start": ("s", "simulated time the transfer started"),
    "t_end": ("s", "simulated time it ended"),
    "latency_s": ("s", "t_end - t_start"),
    "energy_j": ("J", "transmitter power x transfer duration"),
    "ok": ("", "the transfer completed"),
    "reason": ("", "why it failed; null when ok"),
}
SCHEMAS = {MOBILITY: MOBILITY_SCHEMA, CELLS: CELL_SCHEMA, RADIO: RADIO_SCHEMA,
           HANDOFFS: HANDOFF_SCHEMA, LINK_WINDOWS: WINDOW_SCHEMA,
           PARTICIPATION: PARTICIPATION_SCHEMA, METRICS: METRICS_SCHEMA,
           V2V_WINDOWS: V2V_WINDOW_SCHEMA, HOPS: HOPS_SCHEMA}
# The tables that describe connectivity: equal for every policy that replays one recording.
CONNECTIVITY_TABLES = (CELLS, RADIO, HANDOFFS, LINK_WINDOWS)
COLUMNS: dict[str, Columns] = {
    MOBILITY: MOBILITY_COLUMNS, CELLS: CELL_COLUMNS, RADIO: RADIO_COLUMNS,
    HANDOFFS: HANDOFF_COLUMNS, LINK_WINDOWS: WINDOW_COLUMNS, PARTICIPATION: PARTICIPATION_COLUMNS,
    METRICS: METRICS_COLUMNS, V2V_WINDOWS: V2V_WINDOW_COLUMNS, HOPS: HOPS_COLUMNS,
}
