"""Trace tables: rows appended piecemeal (numpy, lists, Arrow arrays or record batches) are written
as pyarrow itself writes the whole table with the same row groups, on the writer thread."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cosim.traces import TraceSet

SCHEMA = pa.schema([("t", pa.float64()), ("vehicle", pa.string()), ("cell", pa.int32()),
                    ("sinr_db", pa.float32()), ("ok", pa.bool_())])


def _pieces(rng):
    for i in range(40):
        n = int(rng.integers(0, 30))
        sinr = rng.normal(5, 10, n).astype(np.float32)
        sinr[rng.random(n) < 0.2] = np.nan
        yield {"t": np.full(n, float(i)), "vehicle": np.array([f"v{j}" for j in range(n)], dtype=object),
               "cell": rng.integers(-1, 9, n), "sinr_db": pa.array(sinr, pa.float32(), from_pandas=True),
               "ok": rng.random(n) < 0.5}


def test_piecemeal_rows_give_the_bytes_pyarrow_writes_for_the_whole_table(tmp_path):
    rows_per_group = 64
    pieces = list(_pieces(np.random.default_rng(0)))
    traces = TraceSet(tmp_path, rows_per_group)
    table = traces.table("x", SCHEMA)
    reference_groups, buffered = [], []
    for i, piece in enumerate(pieces):
        batch = pa.RecordBatch.from_arrays([pa.array(piece[f.name].tolist() if isinstance(
            piece[f.name], np.ndarray) and piece[f.name].dtype == object else piece[f.name], f.type)
            for f in SCHEMA], schema=SCHEMA)
        table.append(batch if i % 3 == 0 else piece)  # batches and column dicts mixed
        if i % 5 == 0 and isinstance(piece["cell"], np.ndarray):
            piece["cell"][:] = 99  # the caller reuses its arrays: the trace keeps what was appended
        buffered.append(batch)
        if sum(b.num_rows for b in buffered) >= rows_per_group:  # where a row group is due
            reference_groups.append(pa.Table.from_batches(buffered))
            buffered = []
    if buffered:
        reference_groups.append(pa.Table.from_batches(buffered))
    traces.close(complete=True)
    with pq.ParquetWriter(tmp_path / "ref.parquet", SCHEMA, compression="zstd", compression_level=3,
                          use_dictionary=True, write_statistics=True) as writer:
        for group in reference_groups:
            writer.write_table(group, row_group_size=rows_per_group)
    written = pq.read_table(tmp_path / "x.parquet")
    assert written.num_rows == sum(len(p["t"]) for p in pieces) > 300
    assert 99 not in written.column("cell").to_pylist()
    assert (tmp_path / "x.parquet").read_bytes() == (tmp_path / "ref.parquet").read_bytes()
