"""Export a run's traces to CSV, Parquet or JSON Lines, for tools that do not read Parquet.

Every format round-trips: CSV is written by Arrow (shortest exact float text) and read back with
the trace's schema; JSON Lines use Python's exact float repr (JSON has no NaN: NaN is written
as null). The schemas go along in
``schema.json`` so a reader can restore the column types.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from cosim.analysis.summary import read_run_json
from cosim.errors import InputError
from cosim.run_folder import check_traces_unchanged, refuse_output_folder

FORMATS = ("csv", "parquet", "json")
_SUFFIX = {"csv": ".csv", "parquet": ".parquet", "json": ".jsonl"}


def trace_files(run_dir: Path) -> list[Path]:
    """The complete trace tables of a run (an incomplete run's tables are not exported)."""
    from cosim.destinations import refuse_being_written

    refuse_output_folder(run_dir)
    refuse_being_written(run_dir)
    info = read_run_json(run_dir)
    if info.get("status") != "complete":
        raise InputError(run_dir, None, f"the run is {info.get('status')!r}, not complete: its "
                         "traces are partial")
    check_traces_unchanged(run_dir, info, "they are not the run's results")
    return sorted(p for p in run_dir.glob("*.parquet") if not p.name.endswith(".incomplete.parquet"))


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InputError(None, "--format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def export_run(run_dir: Path, fmt: str, out: Path) -> list[Path]:
    """Write every trace table of the run to ``out`` in the format; return the files."""
    check_format(fmt)
    files = trace_files(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, schemas = [], {}
    for path in files:
        name = path.name.removesuffix(".parquet")
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(path, None, f"not a readable Parquet file: {exc}") from None
        target = out / f"{name}{_SUFFIX[fmt]}"
        if fmt == "parquet":
            shutil.copyfile(path, target)
        elif fmt == "csv":
            pacsv.write_csv(table, target)
        else:
            with target.open("w", encoding="utf-8") as f:
                for row in _nan_as_null(table).to_pylist():
                    f.write(json.dumps(row, allow_nan=False) + "\n")
        schemas[name] = [{"name": fld.name, "type": str(fld.type)} for fld in table.schema]
        written.append(target)
    shutil.copyfile(run_dir / "run.json", out / "run.json")
    (out / "schema.json").write_text(json.dumps(schemas, indent=2) + "\n", encoding="utf-8")
    return written


def _nan_as_null(table: pa.Table) -> pa.Table:
    """JSON has no NaN: a float NaN becomes null."""
    for i, fld in enumerate(table.schema):
        if pa.types.is_floating(fld.type):
            col = table.column(i)
            table = table.set_column(i, fld, pc.if_else(pc.is_nan(col), None, col))
    return table


def read_exported(path: Path, schema: pa.Schema) -> pa.Table:
    """Read an exported table back with its original schema (what the round-trip test checks)."""
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".csv":
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False))
    if path.suffix == ".jsonl":
        if path.stat().st_size == 0:
            return schema.empty_table()
        return pajson.read_json(path, parse_options=pajson.ParseOptions(
            explicit_schema=schema)).select(schema.names)
    raise ValueError(f"not an exported trace: {path}")
