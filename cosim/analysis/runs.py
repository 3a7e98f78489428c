"""Find the runs behind a report: one run folder, or every run of a compare folder.

A compare folder's runs share connectivity per seed, so connectivity plots read the seed's
recording; learning plots read each run.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from cosim.analysis.summary import read_run_json
from cosim.bounded_read import read_json_file, virtual_file
from cosim.errors import InputError
from cosim.input_checks import ARROW_ERRORS, Where, read_schema
from cosim.names import compare_run_dir, recording_dir, replicates
from cosim.run_folder import _json_type, check_traces_unchanged, refuse_output_folder
from cosim.trace_schemas import SCHEMAS

REPORT_NEEDS = ("status", "scenario", "seed")  # what a report reads of each run's run.json


@dataclass(frozen=True)
class RunRef:
    path: Path
    label: str  # "policy / aggregation" (the legend entry)
    seed: int
    info: dict


@dataclass(frozen=True)
class ReportSource:
    kind: str  # "run" | "compare"
    root: Path
    runs: list[RunRef]
    connectivity: list[RunRef]  # the runs whose radio tables to plot (one per seed)


def open_source(path: Path) -> ReportSource:
    """A run folder (run.json) or a compare folder (compare.json), every file the report reads
    of it checked before anything is written; InputError otherwise."""
    from cosim.destinations import refuse_being_written

    refuse_output_folder(path)
    refuse_being_written(path)
    src = _open_source(path)
    for run in {r.path: r for r in (*src.runs, *src.connectivity)}.values():
        for name in SCHEMAS:  # each a regular file with a Parquet footer, before it is hashed
            check_table_file(run.path / f"{name}.parquet")
        check_traces_unchanged(run.path, run.info, "they are not the run's results")
    if src.kind == "compare":
        check_table_file(src.root / "pairs.parquet")
    return src


def _open_source(path: Path) -> ReportSource:
    if os.path.lexists(path / "compare.json"):
        spec = read_compare_json(path / "compare.json")
        seeds = spec.get("seeds_used", spec["seeds"])  # "auto": the seeds it added
        runs = []
        for policy in spec["policies"]:
            for aggregation in spec["aggregations"]:
                for seed, data, training in replicates(seeds, spec.get("data_seeds"),
                                                       spec.get("training_seeds")):
                    run = compare_run_dir(path, policy, aggregation, seed, data, training)
                    info = read_run_json(run, REPORT_NEEDS)
                    runs.append(RunRef(run, f"{policy} / {aggregation}", seed, info))
        recordings = [recording_dir(path, s) for s in seeds]
        connectivity = [RunRef(r, f"seed {s}", s, read_run_json(r, REPORT_NEEDS))
                        for r, s in zip(recordings, seeds, strict=True)]
        return ReportSource("compare", path, runs, connectivity)
    if os.path.lexists(path / "run.json"):
        info = read_run_json(path, REPORT_NEEDS)
        if info.get("status") != "complete":
            from cosim.run_folder import read_status

            status, _ = read_status(path)  # "crashed" when run.json says running, nobody does
            detail = f": {info['error']}" if info.get("error") else ""
            raise InputError(path, None, f"the run is {status}, not complete{detail}")
        sc = info["scenario"]
        label = (f"{sc['scheduling']['policy']} / {sc['aggregation']['method']}"
                 if sc.get("learning") and sc["learning"].get("enabled") else sc["name"])
        ref = RunRef(path, label, info["seed"], info)
        return ReportSource("run", path, [ref], [ref])
    raise InputError(path, None, "neither a run folder (run.json) nor a compare folder "
                     "(compare.json)")


# what a report reads of compare.json besides its seeds: lists of names
_NAME_LISTS = ("policies", "aggregations")


def read_compare_json(path: Path) -> dict[str, Any]:
    """compare.json read like run.json (a regular file, size-capped, valid JSON) and checked to
    hold what a report reads, with the types cosim writes there."""
    spec = read_json_file(path, "compare.json")
    if not isinstance(spec, dict):
        raise InputError(path, None, f"a JSON {_json_type(spec)}, not the object cosim writes")
    for key in _NAME_LISTS:
        value = spec.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise InputError(path, key, "missing or not a list of names, as cosim writes it")
    if "seeds" not in spec:
        raise InputError(path, "seeds", "missing: this compare.json is not one cosim wrote")
    used = "seeds_used" if "seeds_used" in spec else "seeds"  # seeds "auto": the seeds it added
    for key in (used, "data_seeds", "training_seeds"):
        value = spec.get(key)
        if value is None and key != used:
            continue  # that stream follows the scenario's seed
        if not isinstance(value, list) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise InputError(path, key, "not a list of integer seeds, as cosim writes it")
    return spec


def check_table_file(path: Path) -> None:
    """A trace table the report will read: absent (the run did not write it), or a regular file
    whose Parquet footer reads (a FIFO or device would block or be skipped without a word)."""
    if not os.path.lexists(path):
        return
    try:
        regular = stat.S_ISREG(path.stat().st_mode) and not virtual_file(path)
    except OSError as exc:  # a link to nothing, a loop of links
        raise InputError(path, None, f"cannot read it: {exc.strerror or exc}") from None
    if not regular:
        raise InputError(path, None, "not a regular file (a trace table is read from a file)")
    read_schema(Where(path))


def table(run: RunRef, name: str) -> pd.DataFrame | None:
    """A trace table of the run as a data frame, or None when the run did not write it."""
    path = run.path / f"{name}.parquet"
    if not os.path.lexists(path):
        return None
    check_table_file(path)
    try:
        return pq.read_table(path).to_pandas()
    except ARROW_ERRORS as exc:
        raise InputError(path, None, f"not a readable Parquet file: {str(exc)[:160]}") from None
