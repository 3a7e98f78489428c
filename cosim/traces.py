"""Parquet trace tables written in row groups while the run goes (memory bounded).

A table is written as ``<name>.parquet.part``; when the run completes it is renamed to
``<name>.parquet``. A failed or interrupted run closes it as ``<name>.incomplete.parquet``, still
readable but never looking complete. Settings are fixed so that the same rows give the same bytes.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


class TraceTable:
    """One Parquet table; ``append`` buffers columns, full row groups go to disk."""

    def __init__(self, folder: Path, name: str, schema: pa.Schema, row_group_rows: int,
                 writer_thread: ThreadPoolExecutor | None = None):
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
        self._chunks: list[dict] = []
        self._buffered = 0
        # Encoding and compressing a row group (Arrow releases the GIL) overlaps the run when a
        # writer thread is given; one thread for all tables keeps every file's writes in order.
        self._thread = writer_thread
        self._pending: list[Future] = []

    def append(self, columns: Mapping[str, Sequence | np.ndarray | pa.Array] | pa.RecordBatch) -> None:
        """Add rows given as one array (or list) per column, all of one length, or as a batch.

        The rows are kept as given (numpy arrays copied) and converted to Arrow once per row group:
        a run appends a few hundred rows at a time, and converting each append costs more than
        the rows. Row groups end where they would if every append were converted on its own."""
        if isinstance(columns, pa.RecordBatch):
            chunk = {f.name: columns.column(f.name) for f in self.schema}
        else:
            chunk = {f.name: _snapshot(columns[f.name]) for f in self.schema}
        rows = len(chunk[self.schema[0].name])
        if rows == 0:
            return
        self._chunks.append(chunk)
        self._buffered += rows
        if self._buffered >= self.row_group_rows:
            self.flush()

    def flush(self) -> None:
        if not self._chunks:
            return
        batch = pa.RecordBatch.from_arrays(
            [_column([c[f.name] for c in self._chunks], f.type) for f in self.schema], schema=self.schema)
        table = pa.Table.from_batches([batch])
        if self._thread is None:
            self._writer.write_table(table, row_group_size=self.row_group_rows)
        else:
            self._wait(done_only=True)  # a failed write (a full disk) surfaces at the next flush
            self._pending.append(self._thread.submit(self._writer.write_table, table,
                                                     row_group_size=self.row_group_rows))
        self.rows_written += batch.num_rows
        self._chunks, self._buffered = [], 0

    def _wait(self, done_only: bool = False) -> None:
        """Wait for the writes handed to the writer thread (or just collect the finished ones),
        raising the first one's error."""
        pending, self._pending = self._pending, []
        for i, future in enumerate(pending):
            if done_only and not future.done():
                self._pending = pending[i:]
                return
            future.result()

    def close(self, complete: bool) -> Path:
        """Write what is buffered and give the file its final name."""
        if self._writer is None:
            return self.path(complete)
        try:
            self.flush()
        finally:
            try:
                self._wait()
            finally:
                self._writer.close()
            self._writer = None
        final = self.path(complete)
        os.replace(self._partial, final)
        return final

    def path(self, complete: bool) -> Path:
        suffix = ".parquet" if complete else ".incomplete.parquet"
        return self.folder / f"{self.name}{suffix}"


def _snapshot(values: Sequence | np.ndarray | pa.Array) -> list | np.ndarray | pa.Array:
    """The values as they are now: the caller may reuse its arrays after ``append``. Arrow
    converts a list of Python strings ~10x faster than an object ndarray of them (same result)."""
    if isinstance(values, pa.Array):
        return values
    if isinstance(values, np.ndarray):
        return values.tolist() if values.dtype == object else values.copy()
    return list(values)


def _column(parts: list, type_: pa.DataType) -> pa.Array:
    """One column of a row group from its appended parts."""
    if all(isinstance(p, np.ndarray) for p in parts):
        return pa.array(np.concatenate(parts), type=type_)
    if all(isinstance(p, list) for p in parts):
        return pa.array(list(itertools.chain.from_iterable(parts)), type=type_)
    arrays = [p if isinstance(p, pa.Array) else pa.array(p, type=type_) for p in parts]
    return pa.concat_arrays([a if a.type == type_ else a.cast(type_) for a in arrays])


class TraceSet:
    """The run folder's trace tables, opened by the layers that own them."""

    def __init__(self, folder: Path, row_group_rows: int):
        self.folder = folder
        self.row_group_rows = row_group_rows
        self.tables: dict[str, TraceTable] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cosim-traces")

    def table(self, name: str, schema: pa.Schema) -> TraceTable:
        if name in self.tables:
            raise ValueError(f"trace table {name!r} opened twice")
        self.tables[name] = TraceTable(self.folder, name, schema, self.row_group_rows, self._thread)
        return self.tables[name]

    def close(self, complete: bool) -> dict[str, str]:
        """Close every table; return {name: file name} as written."""
        written = {}
        try:
            for name, table in self.tables.items():
                written[name] = table.close(complete).name
        finally:
            self._thread.shutdown(wait=True)
        return written
