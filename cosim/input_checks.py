"""Checks of user-given Parquet files (datasets, replayed traces, oracle windows), shared by
every reader so that a corrupt file is one InputError naming the file and the column.

pyarrow does the decoding; these checks add what it accepts but a reader cannot use: a column
stored with the wrong kind of type, nulls where a value is needed, NaN or infinite numbers.
Types are compared by kind (an integer where an integer is expected, any float width), so files
written by other tools with other widths still read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cosim.errors import InputError

CHECK_VERSION = "1"  # bump when a check changes: passes remembered by ``remembered`` are void
# pyarrow raises these on a truncated, foreign or corrupt file (OSError covers ArrowIOError)
ARROW_ERRORS = (pa.ArrowException, OSError, ValueError, TypeError, IndexError)


class Where:
    """How an error names its place: by column (``field`` None) or by a scenario field, with
    the column in the message."""

    def __init__(self, path: Path, field: str | None = None):
        self.path, self.field = Path(path), field

    def error(self, column: str | None, message: str) -> InputError:
        if self.field is None:
            return InputError(self.path, column, message)
        return InputError(self.path, self.field, f"column {column!r}: {message}" if column else message)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def read_schema(where: Where, what: str = "Parquet file") -> pa.Schema:
    try:
        return pq.read_schema(where.path)
    except FileNotFoundError:
        raise where.error(None, "file not found") from None
    except ARROW_ERRORS as exc:
        raise where.error(None, f"not a readable {what}: {_first_line(exc)}") from None


def read_table(where: Where, columns: Sequence[str], what: str = "Parquet file",
               filters: list | None = None) -> pa.Table:
    try:
        table = decoded(pq.read_table(where.path, columns=list(columns), filters=filters))
        table.validate(full=True)  # text that is not UTF-8 fails here, not where it is read
        return table
    except FileNotFoundError:
        raise where.error(None, "file not found") from None
    except ARROW_ERRORS as exc:
        raise where.error(None, f"not a readable {what}: {_first_line(exc)}") from None


def decoded(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns (pandas' categoricals, as Parquet stores them) as their plain
    values: what the checks and readers after ``read_table`` compute on."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, pc.cast(table.column(i), field.type.value_type))
    return table


_t = pa.types


def _is_list(t: pa.DataType) -> bool:
    return _t.is_list(t) or _t.is_large_list(t) or _t.is_fixed_size_list(t)


# (is the expected type of this kind, is a stored type of the same kind)
_KINDS = (
    (_t.is_binary, lambda a: _t.is_binary(a) or _t.is_large_binary(a) or _t.is_fixed_size_binary(a)),
    (_t.is_string, lambda a: _t.is_string(a) or _t.is_large_string(a)),
    (_t.is_boolean, _t.is_boolean),
    (_t.is_integer, _t.is_integer),
    (_t.is_floating, lambda a: _t.is_floating(a) or _t.is_integer(a)),  # ints read as floats
)


def same_kind(expected: pa.DataType, actual: pa.DataType) -> bool:
    """Whether a column of ``actual`` type reads as ``expected`` does (widths aside)."""
    if _t.is_dictionary(actual):
        return same_kind(expected, actual.value_type)
    if _is_list(expected):
        return _is_list(actual) and same_kind(expected.value_type, actual.value_type)
    for is_expected, matches in _KINDS:
        if is_expected(expected):
            return bool(matches(actual))
    return actual == expected


def check_columns(where: Where, schema: pa.Schema, expected: pa.Schema, what: str = "file") -> None:
    """Every expected column is present with a type of the expected kind."""
    for name, want in zip(expected.names, expected.types, strict=True):
        index = schema.get_field_index(name)
        if index < 0:
            raise where.error(name, f"missing column (not a {what})")
        got = schema.field(index).type
        if not same_kind(want, got):
            raise where.error(name, f"stored as {got}; expected {want}")


def _values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The numbers of a column, through list nesting."""
    while _is_list(column.type):
        column = pc.list_flatten(column)
    return column


def check_values(where: Where, table: pa.Table, nullable: Collection[str] = (),
                 row_label: str = "row") -> None:
    """No nulls (outside ``nullable``) and no NaN or infinite numbers, in any column."""
    for name in table.column_names:
        column = table.column(name)
        if name not in nullable and column.null_count:
            row = pc.index(pc.is_null(column), True).as_py()
            raise where.error(name, f"null value ({row_label} {row})")
        values = _values(column)
        if name not in nullable and values.null_count:
            raise where.error(name, "null value inside a list")
        if pa.types.is_floating(values.type) and len(values):
            bad = pc.invert(pc.is_finite(values))
            if pc.any(bad).as_py():
                raise where.error(name, "holds NaN or infinite values")


def remembered(kind: str, files: Sequence[Path], check: Callable[[], object]) -> None:
    """Run ``check`` unless it passed before on these files, as they are now (paths, sizes,
    modification and change times): a slow check of big inputs runs once, not once per run.
    Only passes are remembered; a file that changes is checked again."""
    from cosim.cache import content_key, remember_pass

    stamps = []
    for path in files:
        st = Path(path).stat()
        stamps.append(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}")
    passed, record = remember_pass(kind, content_key([CHECK_VERSION, *stamps]))
    if passed:
        return
    check()
    record()
