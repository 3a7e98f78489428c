"""Parquet trace tables written in row groups while the run goes (memory bounded).

A table is written as ``<name>.parquet.part``; when the run completes it is renamed to
``<name>.parquet``. A failed or interrupted run closes it as ``<name>.incomplete.parquet``, still
readable but never looking complete. Settings are fixed so that the same rows give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


class TraceTable:
    """One Parquet table; ``append`` buffers columns, full row groups go to disk."""

    def __init__(self, folder: Path, name: str, schema: pa.Schema, row_group_rows: int):
        self.name = name
        self.schema = schema
        self.folder = folder
        self.row_group_rows = row_group_rows
        self.rows_written = 0
        self._partial = folder / f"{name}.parquet.part"
        self._writer = pq.ParquetWriter(
            self._partial, schema, compression="zstd", compression_level=3,
            use_dictionary=True, write_statistics=True,
        )
        self._chunks: list[pa.RecordBatch] = []
        self._buffered = 0

    def append(self, columns: Mapping[str, Sequence | np.ndarray]) -> None:
        """Add rows given as one array (or list) per column, all of one length."""
        batch = pa.RecordBatch.from_arrays(
            [pa.array(_convertible(columns[f.name]), type=f.type) for f in self.schema], schema=self.schema
        )
        if batch.num_rows == 0:
            return
        self._chunks.append(batch)
        self._buffered += batch.num_rows
        if self._buffered >= self.row_group_rows:
            self.flush()

    def flush(self) -> None:
        if not self._chunks:
            return
        table = pa.Table.from_batches(self._chunks, schema=self.schema)
        self._writer.write_table(table, row_group_size=self.row_group_rows)
        self.rows_written += table.num_rows
        self._chunks, self._buffered = [], 0

    def close(self, complete: bool) -> Path:
        """Write what is buffered and give the file its final name."""
        if self._writer is None:
            return self.path(complete)
        try:
            self.flush()
        finally:
            self._writer.close()
            self._writer = None
        final = self.path(complete)
        os.replace(self._partial, final)
        return final

    def path(self, complete: bool) -> Path:
        suffix = ".parquet" if complete else ".incomplete.parquet"
        return self.folder / f"{self.name}{suffix}"


def _convertible(values: Sequence | np.ndarray) -> Sequence | np.ndarray:
    """Arrow converts a list of Python strings ~10x faster than an object ndarray of them (same
    result)."""
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values.tolist()
    return values


class TraceSet:
    """The run folder's trace tables, opened by the layers that own them."""

    def __init__(self, folder: Path, row_group_rows: int):
        self.folder = folder
        self.row_group_rows = row_group_rows
        self.tables: dict[str, TraceTable] = {}

    def table(self, name: str, schema: pa.Schema) -> TraceTable:
        if name in self.tables:
            raise ValueError(f"trace table {name!r} opened twice")
        self.tables[name] = TraceTable(self.folder, name, schema, self.row_group_rows)
        return self.tables[name]

    def close(self, complete: bool) -> dict[str, str]:
        """Close every table; return {name: file name} as written."""
        written = {}
        for name, table in self.tables.items():
            written[name] = table.close(complete).name
        return written
