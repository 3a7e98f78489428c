"""Run a grid of scheduling policies x aggregations x seeds on one scenario, side by side.

For each seed the mobility (and the radio, when configured) is run once and recorded; every cell of
the grid then replays that recording, so every policy sees the same vehicles and the same
connectivity. That is checked, not assumed: each run's radio tables must be byte-identical to the
recording's, and their digest goes into the summary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cosim.analysis.pairs import METHOD as PAIRS_METHOD
from cosim.analysis.pairs import margins_with_defaults
from cosim.bounded_read import read_json_file
from cosim.compare_auto import AutoSeeds, describe, stop_reason
from cosim.compare_job import OnProgress, RunJob, check_kept_run, is_complete, run_one
from cosim.compare_pool import run_in_pool
from cosim.destinations import (
    check_study_free,
    check_study_out,
    foreign_in_study,
    study_folder,
    study_lock,
    study_writes,
)
from cosim.errors import InputError
from cosim.names import (
    ASYNC_METHODS,
    COMPARE_DEFAULTS,
    HEADLINE,
    RECORDINGS,
    Replicate,
    compare_run_dir,
    recording_dir,
    replicates,
)
from cosim.runner import check_run_inputs, refuse_sumo_outputs_in_study
from cosim.scenario import METHOD_CONFIGS
from cosim.scenario.base import named_paths
from cosim.scenario_loader import Override, ScenarioSpec
from cosim.trace_schemas import CONNECTIVITY_TABLES

if TYPE_CHECKING:
    from cosim.ray_backend import RayRunner


@dataclass(frozen=True)
class CompareGrid:
    policies: tuple[str, ...]
    aggregations: tuple[str, ...]
    seeds: tuple[int, ...]  # connectivity: one recording each
    data_seeds: tuple[int, ...] | None = None  # learning.data.seed; None: the scenario's seed
    training_seeds: tuple[int, ...] | None = None  # learning.seed; None: the scenario's seed
    # The curves' resolution: evaluate every this many rounds (None: as the scenario says) and,
    # in asynchronous cells, every this many simulated seconds (None: each cell's round deadline)
    eval_every_rounds: int | None = COMPARE_DEFAULTS.eval_every_rounds
    eval_every_s: float | None = None

    def __post_init__(self) -> None:
        """What the command line's parsers check, checked again here for every caller (the
        Python API among them): names are names, seeds SUMO's, the resolutions positive; and a
        cell or seed named twice would write one run folder twice."""
        from cosim.scenario.base import SEED_MAX

        for field, names in (("policies", self.policies), ("aggregations", self.aggregations)):
            if not all(isinstance(v, str) and v for v in names):
                raise InputError(None, field, f"{list(names)!r}: names, as strings")
        for field, numbers in (("seeds", self.seeds), ("data_seeds", self.data_seeds or ()),
                               ("training_seeds", self.training_seeds or ())):
            if not all(_whole(s) and 0 <= s <= SEED_MAX for s in numbers):
                raise InputError(None, field, f"{list(numbers)!r}: seeds are whole numbers from "
                                 f"0 to {SEED_MAX} (SUMO's 32-bit seed)")
        lists: tuple[tuple[str, tuple[object, ...]], ...] = (
            ("policies", self.policies), ("aggregations", self.aggregations),
            ("seeds", self.seeds), ("data_seeds", self.data_seeds or ()),
            ("training_seeds", self.training_seeds or ()))
        for field, values in lists:
            twice = sorted({str(v) for v in values if list(values).count(v) > 1})
            if twice:
                raise InputError(None, field, f"named more than once: {', '.join(twice)}")
        if self.eval_every_rounds is not None and not (
                _whole(self.eval_every_rounds) and self.eval_every_rounds >= 1):
            raise InputError(None, "eval_every_rounds", f"{self.eval_every_rounds!r}: a positive "
                             "whole number of rounds")
        if self.eval_every_s is not None and not (
                _real(self.eval_every_s) and math.isfinite(self.eval_every_s)
                and self.eval_every_s >= MIN_EVAL_EVERY_S):
            raise InputError(None, "eval_every_s", f"{self.eval_every_s!r}: a finite number of "
                             f"simulated seconds, at least {MIN_EVAL_EVERY_S}")

    def replicates(self) -> list[Replicate]:
        return replicates(self.seeds, self.data_seeds, self.training_seeds)

    def runs_per_seed(self) -> int:
        return (len(self.policies) * len(self.aggregations) * len(self.data_seeds or [None])
                * len(self.training_seeds or [None]))


def run_compare(spec: ScenarioSpec, grid: CompareGrid, out: Path, jobs: int,
                targets: dict[str, float] | None = None,
                on_done: Callable[[str], None] | None = None, backend: str = "local",
                ray_address: str | None = None, resume: bool = False,
                overwrite: bool = False, on_progress: OnProgress | None = None,
                margins: dict[str, float] | None = None, auto: AutoSeeds | None = None,
                on_look: Callable[[int, str | None], None] | None = None) -> pa.Table:
    """Record once per seed, replay for every (policy, aggregation); write the summary tables.

    ``resume`` keeps the complete runs of an earlier, interrupted compare of the same settings
    in ``out`` and redoes the rest; ``overwrite`` replaces an earlier compare run by run.
    ``margins``: equivalence margins of the pairs table (cosim.analysis.pairs). ``auto``: ignore
    ``grid.seeds`` and add seeds 0, 1, 2, ... until the plan stops (cosim.compare_auto);
    ``on_look(seeds, stop reason or None)`` is told after each look."""
    out = out.absolute()  # the runs' overrides name recordings in it: not the scenario's folder
    base = check_grid(spec, grid, auto)
    settings = compare_settings(spec, grid, auto)
    check_compare_out(out, settings, resume, overwrite)
    check_recording_inputs(spec, grid.seeds[0] if grid.seeds else 0)
    with study_lock(out, COMPARE_COMMAND, lambda: check_compare_out(out, settings, resume, overwrite)), \
            study_folder(out, COMPARE_COMMAND):
        started = time.monotonic()
        seeds = list(grid.seeds) if auto is None else list(range(auto.min_seeds))
        looks = 1 if auto is None else auto.looks
        sections = {a: aggregation_section(spec, a, grid) for a in grid.aggregations}
        if resume:  # refused before compare.json says "running" again
            recordings, cells = _seed_jobs(spec, grid, seeds, out, sections,
                                           base.mobility.step_length_s, 1)
            check_kept_runs([*recordings, *(r[3] for r in cells)])
        runs: list[tuple[str, str, int, RunJob]] = []
        stopped = None
        try:
            with open_runner(backend, jobs, ray_address) as runner:
                out.mkdir(parents=True, exist_ok=True)
                _write_info(out, {**settings, "status": "running", "seeds_used": seeds})
                new = seeds
                while True:
                    runs += _run_seeds(runner, spec, grid, new, out, sections,
                                       base.mobility.step_length_s, resume, overwrite, on_done, on_progress)
                    if auto is None:
                        break
                    if not targets:  # fixed at the first look: a measure means the same at every look
                        targets = _default_targets([Path(r[3].out) for r in runs], targets)
                    summary = _summarise(out, runs, grid, targets)
                    with study_writes(out, COMPARE_COMMAND, PAIRS_FILES):
                        pairs = write_pairs(out, summary, margins, looks).to_pandas()
                    elapsed = time.monotonic() - started
                    stopped = stop_reason(pairs, auto, len(seeds), elapsed, elapsed / len(seeds))
                    if on_look is not None:
                        on_look(len(seeds), stopped)
                    if stopped is not None:
                        break
                    new = [max(seeds) + 1]
                    seeds = seeds + new
                    _write_info(out, {**settings, "status": "running", "seeds_used": seeds})
        except BaseException as exc:  # compare.json says how it ended, not "running"
            if (out / "compare.json").exists():
                _write_info(out, {**settings, "seeds_used": seeds, "status": (
                    "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"),
                    "error": exc.line() if isinstance(exc, InputError) else
                    f"{type(exc).__name__}: {exc}"})
            raise
        if auto is None:  # with auto, the last look's summary and pairs are the final ones
            targets = _default_targets([Path(r[3].out) for r in runs], targets)
            summary = _summarise(out, runs, grid, targets)
        with study_writes(out, COMPARE_COMMAND, (*PAIRS_FILES, *SUMMARY_FILES)):
            if auto is None:
                pairs = write_pairs(out, summary, margins, looks).to_pandas()
            pq.write_table(summary, out / "summary.parquet")
            summary.to_pandas().to_csv(out / "summary.csv", index=False)
        stop_info: dict[str, Any] = {}
        if auto is not None:
            assert stopped is not None  # the loop above ends with auto only once a stop reason is set
            stop_info = {"stopped": stopped, "stopped_because": describe(stopped, len(seeds), pairs, auto),
                         "looks": looks}
        _write_info(out, {
            **settings, "status": "complete", "seeds_used": seeds,
            **stop_info,
            "targets": targets,
            "margins": margins_with_defaults(margins),
            "pairs_method": PAIRS_METHOD,
            "settings_left_out": {a: left for a, (_, left) in sections.items() if left},
            "connectivity_identical_per_seed": True,
            "warning": separation_warning(summary),
            "backend": backend,
            **({"ray_address": cast("RayRunner", runner).address} if backend == "ray" else {}),
            "wall_time_s": round(time.monotonic() - started, 1),
        })
        return summary


def _write_info(out: Path, info: dict[str, Any]) -> None:
    with study_writes(out, COMPARE_COMMAND, ("compare.json",)):  # the folder is this compare's
        (out / "compare.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


COMPARE_COMMAND = "compare"
PAIRS_FILES = ("pairs.parquet", "pairs.csv", "spread.parquet", "spread.csv")  # write_pairs'
SUMMARY_FILES = ("summary.parquet", "summary.csv")
RUN_FOLDERS = (RECORDINGS, "runs")  # where a compare's runs live (cosim.names)


def _run_seeds(runner: LocalRunner | RayRunner, spec: ScenarioSpec, grid: CompareGrid,
               seeds: list[int], out: Path, sections: dict[str, tuple[Override, list[str]]],
               step: float, resume: bool,
               overwrite: bool, on_done: Callable[[str], None] | None,
               on_progress: OnProgress | None) -> list[tuple[str, str, int, RunJob]]:
    """The recordings of these seeds, then every cell's replay of them."""
    recordings, runs = _seed_jobs(spec, grid, seeds, out, sections, step, runner.threads)
    runner.run([_with(j, resume, overwrite) for j in recordings], on_done, on_progress)
    runner.run([_with(r[3], resume, overwrite) for r in runs], on_done, on_progress)
    return runs


def _seed_jobs(spec: ScenarioSpec, grid: CompareGrid, seeds: list[int], out: Path,
               sections: dict[str, tuple[Override, list[str]]], step: float, threads: int
               ) -> tuple[list[RunJob], list[tuple[str, str, int, RunJob]]]:
    """These seeds' recording jobs, and every cell's replay job (with its policy, aggregation
    and seed)."""
    recordings = recording_jobs(spec, seeds, out, threads, step)
    runs: list[tuple[str, str, int, RunJob]] = []
    for s, d, t in replicates(seeds, grid.data_seeds, grid.training_seeds):
        recording = recording_dir(out, s)
        for policy in grid.policies:
            for aggregation in grid.aggregations:
                cell = _cell(policy, sections[aggregation][0], recording)
                runs.append((policy, aggregation, s, RunJob(
                    spec.plus(("seed", s), *stream_seeds(d, t), *cell,
                              ("output.mobility_period_s", step)),
                    str(compare_run_dir(out, policy, aggregation, s, d, t)), threads)))
    return recordings, runs


def check_kept_runs(jobs: list[RunJob]) -> None:
    """Before a resumed compare changes its folder: every complete run it would keep ran its
    job's scenario (InputError naming the first that did not)."""
    for job in jobs:
        if is_complete(Path(job.out)):
            check_kept_run(Path(job.out), job.scenario.load().model_dump(mode="json"))


def write_pairs(out: Path, summary: pa.Table, margins: dict[str, float] | None,
                looks: int = 1) -> pa.Table:
    """pairs.parquet and pairs.csv: every pair of cells on every measure (cosim.analysis.pairs);
    spread.parquet and spread.csv: each varied stream's spread beside them (.streams)."""
    from cosim.analysis.pairs import pairs_table
    from cosim.analysis.streams import stream_spread

    frame = summary.to_pandas()
    pairs_frame = pairs_table(frame, margins, looks=looks)
    pairs = pa.Table.from_pandas(pairs_frame, preserve_index=False)
    pq.write_table(pairs, out / "pairs.parquet")
    pairs_frame.to_csv(out / "pairs.csv", index=False)
    spread = stream_spread(frame, pairs_frame)
    pq.write_table(pa.Table.from_pandas(spread, preserve_index=False), out / "spread.parquet")
    spread.to_csv(out / "spread.csv", index=False)
    return pairs


MIN_EVAL_EVERY_S = 0.001  # the finest curve resolution a compare takes (--eval-every-s)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_targets(targets: dict[str, float], field: str = "targets") -> dict[str, float]:
    """Each target a task's and a finite number: a NaN or infinite target is never reached."""
    from cosim.names import HEADLINE

    for task, value in targets.items():
        if task not in HEADLINE:
            raise InputError(None, field, f"unknown task {task!r} (known: {', '.join(HEADLINE)})")
        if not _real(value) or not math.isfinite(value):
            raise InputError(None, field, f"{task}={value}: a target is a finite number")
    return targets


def check_margins(margins: dict[str, float], field: str = "margins") -> dict[str, float]:
    """Each equivalence margin a known measure's and a positive, finite number."""
    from cosim.analysis.pairs import MARGIN_KEYS

    for key, value in margins.items():
        if key not in MARGIN_KEYS:
            raise InputError(None, field, f"unknown measure {key!r} (known: "
                             f"{', '.join(MARGIN_KEYS)})")
        if not _real(value) or not value > 0 or not math.isfinite(value):
            raise InputError(None, field, f"{key}={value!r}: a margin is a positive number")
    return margins


def check_jobs(jobs: object, field: str = "jobs") -> int:
    """Runs in parallel: a whole number, at least 1."""
    if not _whole(jobs) or jobs < 1:  # type: ignore[operator]
        raise InputError(None, field, f"{jobs!r}: a whole number of runs in parallel, at least 1")
    return jobs  # type: ignore[return-value]


def stream_seeds(data_seed: int | None, training_seed: int | None) -> list[Override]:
    """The overrides that pin the data and training streams (none: they follow the seed)."""
    return ([] if data_seed is None else [("learning.data.seed", data_seed)]) + (
        [] if training_seed is None else [("learning.seed", training_seed)])


def _with(job: RunJob, resume: bool, overwrite: bool) -> RunJob:
    return dataclasses.replace(job, reuse=resume, overwrite=overwrite)


def compare_settings(spec: ScenarioSpec, grid: CompareGrid, auto: AutoSeeds | None = None
                     ) -> dict[str, Any]:
    """What identifies a compare (compare.json): a resume must give the same. With ``auto`` the
    seeds are "auto" and the plan is recorded; the seeds it used are ``seeds_used``. A scenario
    given to the Python API in memory names no file; its digest identifies it."""
    return {"scenario": None if spec.source is None else str(spec.source),
            "scenario_digest": scenario_digest(spec), "cosim_version": _cosim_version(),
            "overrides": json.loads(json.dumps([list(o) for o in spec.overrides], default=str)),
            "policies": list(grid.policies), "aggregations": list(grid.aggregations),
            "seeds": list(grid.seeds) if auto is None else "auto",
            **({} if auto is None else {"auto": auto.settings()}),
            "data_seeds": None if grid.data_seeds is None else list(grid.data_seeds),
            "training_seeds": None if grid.training_seeds is None else list(grid.training_seeds),
            "eval_every_rounds": grid.eval_every_rounds, "eval_every_s": grid.eval_every_s,
            "user_code_digest": user_code_digest(spec, grid)}


def user_code_digest(spec: ScenarioSpec, grid: CompareGrid) -> str | None:
    """The source files of the user's modules that the cells and the scenario name
    (``module:Name``), as imported by ``check_grid``: an edited policy changes what the runs
    compute, so a resume after the edit is refused. None when they name none."""
    import sys

    from cosim.registry import is_user_reference

    def strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        return [s for v in value for s in strings(v)] if isinstance(value, list) else []

    named = [*grid.policies, *grid.aggregations, *strings(spec.load().model_dump(mode="json"))]
    files = sorted({Path(file) for ref in named if is_user_reference(ref)
                    for file in [getattr(sys.modules.get(ref.partition(":")[0]), "__file__", None)]
                    if file and Path(file).is_file()})
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        h.update(str(path).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:32]


def scenario_digest(spec: ScenarioSpec) -> str:
    """What the runs compute from: the resolved scenario (every default filled in) and the bytes
    of every input file it names. An edited scenario or network changes it, so a resume after
    the edit is refused instead of mixing runs of two scenarios in one summary."""
    from cosim.mobility.build import files_read_along
    from cosim.run_folder import files_below

    scenario = spec.load()
    h = hashlib.sha256(json.dumps(scenario.model_dump(mode="json"), sort_keys=True).encode())
    named = {path for _, path in named_paths(scenario)}
    files = {p for p in named if p.is_file()} | set(files_read_along(scenario.mobility,
                                                                     spec.source))
    for path in sorted(files):
        h.update(str(path).encode())
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    for folder in sorted(p for p in named if p.is_dir()):  # a data set: too large to hash
        for path in (folder / n for n in files_below(folder) if (folder / n).is_file()):
            st = path.stat()
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _cosim_version() -> str:
    from cosim import __version__

    return __version__


def check_compare_out(out: Path, settings: dict[str, Any], resume: bool, overwrite: bool) -> None:
    """Refuse an ``--out`` that holds anything unless told what to do with it: ``--resume`` (the
    same settings only) or ``--overwrite`` (a compare folder only)."""
    if resume and overwrite:
        raise InputError(None, "--resume", "give --resume or --overwrite, not both")
    check_study_out(out)
    check_study_free(out, COMPARE_COMMAND)
    if not out.is_dir() or not any(out.iterdir()):
        return
    foreign = foreign_in_study(out, COMPARE_COMMAND, RUN_FOLDERS)
    try:
        earlier = read_json_file(out / "compare.json", "compare.json")
    except (OSError, InputError):
        earlier = None
    if foreign is None or not isinstance(earlier, dict):
        raise InputError(None, "--out", f"{out} is not empty and not a cosim compare folder; "
                         "choose another folder")
    if foreign:
        raise InputError(None, "--out", f"{out} holds files the compare did not write (or that "
                         f"were changed since): {', '.join(foreign[:5])}"
                         f"{', ...' if len(foreign) > 5 else ''}; move them away first")
    if resume:
        differs = [k for k, v in settings.items() if earlier.get(k) != v]
        if differs:
            raise InputError(None, "--resume", f"{out} holds a compare with other settings "
                             f"({', '.join(differs)} differ); resume with the same ones")
    elif not overwrite:
        raise InputError(None, "--out", f"{out} holds an earlier compare "
                         f"({earlier.get('status', 'complete')}); pass --resume to finish it or "
                         "--overwrite to replace it")


BACKENDS = ("local", "ray")


class LocalRunner:
    """Today's backend: runs one after another, or in a spawn process pool of ``jobs``."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.threads = max(1, (os.cpu_count() or 1) // max(jobs, 1))

    def __enter__(self) -> LocalRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, batch: list[RunJob], on_done: Callable[[str], None] | None,
            on_progress: OnProgress | None = None) -> None:
        run_jobs(batch, self.jobs, on_done, on_progress)


def open_runner(backend: str, jobs: int, ray_address: str | None = None) -> LocalRunner | RayRunner:
    """The backend that runs the grid's batches (a context manager): ``local`` or ``ray``
    (cosim.ray_backend, imported only then: Ray is an optional dependency)."""
    if backend not in BACKENDS:
        raise InputError(None, "--backend", f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if backend == "local":
        if ray_address is not None:
            raise InputError(None, "--ray-address", "only with --backend ray")
        return LocalRunner(jobs)
    from cosim.ray_backend import RayRunner

    return RayRunner(jobs, ray_address)


SEPARATION_COMPLETION = 0.99


def separation_warning(summary: pa.Table) -> str | None:
    """A warning when every policy completes nearly every client round it starts: the scenario's
    connectivity then decides nothing, and policies can only differ by whom they pick."""
    rows = mean_std_table(summary)
    # a NaN rate (no client round started) says nothing about separation either
    if not rows or any(not r["completion_rate"][0] >= SEPARATION_COMPLETION for r in rows):
        return None
    low = min(r["completion_rate"][0] for r in rows)
    return (f"every policy completes >= {SEPARATION_COMPLETION:.0%} of its client rounds (lowest "
            f"{low:.1%}): this scenario's connectivity cannot separate the policies; shorten "
            "aggregation.round_deadline_s, raise the model's cost (learning.deployed_model) or the "
            "cells' load (radio.background)")


def check_grid(spec: ScenarioSpec, grid: CompareGrid, auto: AutoSeeds | None = None):
    """Every cell's scenario is valid (InputError otherwise), before any run starts; with
    ``auto``, for every seed the plan may add."""
    base = spec.load()
    if not base.learning_enabled:
        raise InputError(spec.named, "learning", "compare needs learning enabled (policies "
                         "and aggregations have nothing to act on): add a learning section, or "
                         "--set learning.enabled=true to use the defaults")
    refuse_sumo_outputs_in_study(base, spec.named, "compare")
    from cosim.learning.federated.policies import policy_class
    from cosim.learning.run_inputs import check_user_extensions

    for policy in grid.policies:  # the oracle's windows come from the recording: not yet
        policy_class(policy)  # a user's module:Class must name a policy class
        chosen: list[Override] = [] if policy == "oracle" else [("scheduling.policy", policy)]
        for aggregation in grid.aggregations:
            section, _ = aggregation_section(spec, aggregation, grid)
            # each user's module:Name is what its extension point needs, before the folder
            check_user_extensions(spec.plus(*chosen, section).load())
    for d in grid.data_seeds or ():  # every stream seed, whatever the connectivity seeds
        spec.plus(*stream_seeds(d, None)).load()
    for t in grid.training_seeds or ():
        spec.plus(*stream_seeds(None, t)).load()
    check_data_splits(spec, grid, grid.seeds if auto is None else tuple(range(auto.max_seeds)))
    return base


def check_data_splits(spec: ScenarioSpec, grid: CompareGrid, seeds: tuple[int, ...]) -> None:
    """Each data split the grid's runs will use serves its clients (enough segments, no client
    without frames), before the compare's folder: a split is drawn from the data seed, which
    follows each connectivity seed (``seeds``) unless ``--data-seeds`` fixes it."""
    check_splits([spec.plus(*stream_seeds(d, None)) for d in grid.data_seeds] if grid.data_seeds
                 else [spec.plus(("seed", s)) for s in seeds], spec.named)


def check_splits(specs: list[ScenarioSpec], named: Path) -> None:
    """The data split of each of these scenarios serves its clients (once per data seed);
    InputError naming ``named``, the field and the data seed otherwise."""
    from cosim.learning.data.validate import check_run_data

    checked: set[int] = set()
    for cell in specs:
        sc = cell.load()
        seed = sc.seeds()["data"]
        if sc.learning is not None and seed not in checked:
            checked.add(seed)
            try:
                check_run_data(sc.learning.data, seed)
            except InputError as exc:
                raise InputError(exc.file or named, exc.field,
                                 f"{exc.message} (data seed {seed})") from None


def aggregation_section(spec: ScenarioSpec, method: str, grid: CompareGrid | None = None
                        ) -> tuple[Override, list[str]]:
    """The override that switches the scenario's aggregation to ``method``, keeping the settings
    that method has, at the grid's evaluation resolution; and the settings it leaves out (another
    method's, said in compare.json)."""
    raw = spec.mapping()
    section = raw.get("aggregation") or {}
    if not isinstance(section, dict):
        return ("aggregation.method", method), []  # validation names what is wrong
    config = METHOD_CONFIGS.get(method)
    fields = config.model_fields if config is not None else {}
    kept = {k: v for k, v in section.items() if k in fields or config is None}
    left = sorted(k for k in section if k not in kept)
    kept["method"] = method
    if grid is not None and config is not None:
        if method in ASYNC_METHODS:  # versions come with arrivals: a time grid instead
            kept["eval_every_s"] = grid.eval_every_s or kept.get(
                "round_deadline_s", config.model_fields["round_deadline_s"].default)
        elif grid.eval_every_rounds is not None:
            kept["eval_every_rounds"] = grid.eval_every_rounds
    return ("aggregation", kept), left


def _cell(policy: str, aggregation_override: Override, recording: Path) -> list[Override]:
    # every run spans the recording's whole duration, so its radio tables can equal the recording's
    cell: list[Override] = [("scheduling.policy", policy), aggregation_override,
                            ("mobility.replay", str(recording)),
                            ("aggregation.end_run_at_max_rounds", False)]
    if policy == "oracle":  # the oracle knows the recorded future link windows
        cell.append(("scheduling.oracle_windows", str(recording / "link_windows.parquet")))
    return cell


def recording_jobs(spec: ScenarioSpec, seeds, out: Path, threads: int, step_s: float
                   ) -> list[RunJob]:
    """Per seed, the mobility (and radio) recorded every step, for the runs to replay."""
    return [RunJob(spec.plus(("seed", s), ("learning.enabled", False),
                             ("output.mobility_period_s", step_s)),
                   str(recording_dir(out, s)), threads) for s in seeds]


def check_recording_inputs(spec: ScenarioSpec, seed: int) -> None:
    """What a study's first recording reads (network, routes, additional files, cells), checked
    before the study's folder exists: a bad input leaves no folder behind."""
    check_run_inputs(spec.plus(("seed", seed), ("learning.enabled", False)).load(), spec.source)


def run_jobs(jobs_: list[RunJob], jobs: int, on_done: Callable[[str], None] | None,
             on_progress: OnProgress | None = None) -> None:
    if jobs <= 1:
        for job in jobs_:
            run_one(job, on_progress)
            if on_done:
                on_done(job.out)
        return
    run_in_pool(jobs_, jobs, on_done, on_progress)


def connectivity_digest(run_dir: Path) -> str:
    """One hash over the run's radio tables (cells, radio, handoffs, link windows)."""
    h = hashlib.sha256()
    for name in CONNECTIVITY_TABLES:
        path = run_dir / f"{name}.parquet"
        if path.is_file():
            h.update(name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _summarise(out: Path, runs: list, grid: CompareGrid, targets: dict[str, float]) -> pa.Table:
    from cosim.analysis.summary import summarise_run

    rows = []
    for policy, aggregation, seed, job in runs:
        run_dir = Path(job.out)
        row = summarise_run(run_dir, targets)
        row["policy"], row["aggregation"], row["seed"] = policy, aggregation, seed
        row["connectivity_digest"] = connectivity_digest(run_dir)
        recorded = connectivity_digest(recording_dir(out, seed))
        if row["connectivity_digest"] != recorded:  # e.g. a kept run of an earlier recording
            raise InputError(run_dir, "connectivity", f"differs from the seed's recording "
                             f"({row['connectivity_digest']} != {recorded}): the run replayed "
                             "another recording; remove it to compute it again")
        rows.append(row)
    rows.sort(key=lambda r: (grid.policies.index(r["policy"]),
                             grid.aggregations.index(r["aggregation"]), r["seed"], r["data_seed"],
                             r["training_seed"]))
    return pa.Table.from_pylist(rows)


def _default_targets(run_dirs: list[Path], targets: dict[str, float] | None
                            ) -> dict[str, float]:
    """Given targets, or by default 80% of the best final value any run reached, per task."""
    from cosim.analysis.summary import headline_curves

    if targets:
        return dict(targets)
    best: dict[str, float] = {}
    for run_dir in run_dirs:
        for task, (_, _, values) in headline_curves(run_dir).items():
            if len(values) and np.isfinite(values[-1]):
                best[task] = max(best.get(task, -math.inf), float(values[-1]))
    return {t: 0.8 * best[t] for t in HEADLINE if t in best and best[t] > 0}


def mean_std_table(summary: pa.Table) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds per (policy, aggregation), for the printed table."""
    df = summary.to_pandas()
    numeric = [c for c in df.select_dtypes(include=["number", "bool"]).columns
               if c not in ("seed", "data_seed", "training_seed")]
    grouped = df.groupby(["policy", "aggregation"], sort=False)[numeric]
    mean, std = grouped.mean(), grouped.std(ddof=1)  # the sample standard deviation
    rows = []
    for key in mean.index:
        row: dict[str, Any] = {"policy": key[0], "aggregation": key[1]}
        for c in numeric:
            row[c] = (float(mean.loc[key, c]), float(std.loc[key, c]))
        rows.append(row)
    return rows
