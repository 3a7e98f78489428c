"""Find the runs behind a report: one run folder, or every run of a compare folder.

A compare folder's runs share connectivity per seed, so connectivity plots read the seed's
recording; learning plots read each run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from cosim.analysis.summary import read_run_json
from cosim.errors import InputError
from cosim.names import compare_run_dir, recording_dir, replicates

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
    """A run folder (run.json) or a compare folder (compare.json); InputError otherwise."""
    if (path / "compare.json").is_file():
        spec = json.loads((path / "compare.json").read_text(encoding="utf-8"))
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
    if (path / "run.json").is_file():
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


def table(run: RunRef, name: str) -> pd.DataFrame | None:
    """A trace table of the run as a data frame, or None when the run did not write it."""
    path = run.path / f"{name}.parquet"
    if not path.is_file():
        return None
    return pq.read_table(path).to_pandas()
