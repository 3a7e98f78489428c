"""The Python API: run a scenario or a compare grid, and read run and compare folders as frames.

The command line and this module share one implementation (``run_scenario``, ``run_compare``,
``cosim.analysis.runs``), so a run made here writes the same files as ``cosim run`` and a folder
written by either reads back the same way. Nothing is cached in memory: a :class:`Run` or
:class:`Compare` is its folder, and every frame is read from its Parquet files when asked for.

Frames come from pyarrow tables. **pandas is the default** because it is already a main dependency
(``cosim.analysis`` builds its summaries with it, and ``pyarrow.Table.to_pandas`` needs it), so the
default costs a user nothing more; ``backend="polars"`` converts the same Arrow table with
``polars.from_arrow`` and needs polars, which only the ``dev`` extra installs (a missing polars is a
:class:`~cosim.errors.MissingDependencyError`, not a failed import of this module).

Errors in what the caller passes (a path that is no run, a scenario that does not validate) are
:class:`~cosim.errors.InputError`, as on the command line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pyarrow as pa
import pyarrow.parquet as pq

from cosim.errors import InputError, MissingDependencyError, printable
from cosim.names import COMPARE_DEFAULTS
from cosim.scenario import Scenario
from cosim.trace_schemas import METRICS

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from cosim.scenario_loader import ScenarioSpec

    Frame: TypeAlias = "pd.DataFrame | pl.DataFrame"

Backend = Literal["pandas", "polars"]
ScenarioLike = str | os.PathLike | Scenario | Mapping[str, Any]

# The columns that say which run of a compare grid a row comes from, first in every compare frame.
KEYS = ("policy", "aggregation", "seed", "run_dir")
DEFAULTS = COMPARE_DEFAULTS  # compare(scenario, out) runs what `cosim compare` would


@dataclass(frozen=True)
class Run:
    """One run folder: its run.json as properties, its trace tables read on demand."""

    path: Path
    info: dict[str, Any] = field(repr=False)  # run.json as written

    @property
    def status(self) -> str:
        """``complete``, ``failed``, ``interrupted`` (or ``running`` while it runs)."""
        return self.info["status"]

    @property
    def seed(self) -> int:
        """The scenario's seed: the connectivity stream (and the others unless pinned)."""
        return self.info["seed"]

    @property
    def seeds(self) -> dict[str, int]:
        """The three streams' seeds: connectivity, data and training."""
        seeds = self.info.get("seeds") or {}
        return {"connectivity": self.seed, "data": seeds.get("data", self.seed),
                "training": seeds.get("training", self.seed)}

    @property
    def scenario(self) -> dict[str, Any]:
        """The resolved scenario the run used (defaults filled in, paths absolute)."""
        return self.info["scenario"]

    @property
    def name(self) -> str:
        return self.scenario["name"]

    @property
    def summary(self) -> dict[str, Any]:
        """run.json's ``summary``: per-layer statistics (mobility, radio, learning)."""
        return self.info.get("summary", {})

    @property
    def learning(self) -> bool:
        learning = self.scenario.get("learning")
        return bool(learning and learning.get("enabled"))

    @property
    def policy(self) -> str | None:
        """The scheduling policy, or None when the run trained nothing."""
        return self.scenario["scheduling"]["policy"] if self.learning else None

    @property
    def aggregation(self) -> str | None:
        """The aggregation method, or None when the run trained nothing."""
        return self.scenario["aggregation"]["method"] if self.learning else None

    def tables(self) -> list[str]:
        """The names of the trace tables the run wrote (``mobility``, ``handoffs``, ...)."""
        return list(self.info.get("traces") or {})

    def arrow(self, name: str, *, partial: bool = False) -> pa.Table:
        """A trace table as pyarrow. A run that did not complete left ``*.incomplete.parquet``
        files, which are read only with ``partial=True`` so they are never taken for results."""
        if not isinstance(name, str):
            raise InputError(None, "name", f"{printable(repr(name))[:80]}: a table's name, as a "
                             "string")
        _flags(partial=partial)
        if self.status != "complete" and not partial:
            raise InputError(self.path, name, f"the run is {self.status!r}, not complete: its "
                             "tables are partial (pass partial=True to read them anyway)")
        files = self.info.get("traces") or {}
        if name not in files:
            raise InputError(self.path, name, f"this run wrote no {name} table (its tables: "
                             f"{', '.join(files) or 'none'})")
        path = self.path / files[name]
        if not os.path.lexists(path):
            raise InputError(path, None, "listed in run.json but missing")
        if path.is_symlink() or not path.is_file():  # the run wrote a file here, nothing else
            raise InputError(path, None, "not a regular file in the run's folder (a link, a "
                             "FIFO, a folder): not what the run wrote")
        return pq.read_table(path)

    def table(self, name: str, *, backend: Backend = "pandas", partial: bool = False) -> Frame:
        """A trace table (see the README's "Traces") as a pandas or polars frame."""
        return _frame(self.arrow(name, partial=partial), backend)

    def metrics(self, *, backend: Backend = "pandas") -> Frame:
        """metrics.parquet: one row per (round, task, metric) evaluation of the global model
        (``client`` and ``model`` null), then, with learning.personalisation, per-client rows of
        the global and personalised models on each client's validation frames."""
        return self.table(METRICS, backend=backend)


@dataclass(frozen=True)
class Compare:
    """A ``cosim compare`` folder: its runs, and tidy frames over all of them.

    Every frame starts with the columns policy, aggregation, seed (read from each run's run.json)
    and run_dir (the run's folder as found now, so a moved compare folder still points right)."""

    path: Path
    info: dict[str, Any] = field(repr=False)  # compare.json: the grid, targets, warning
    runs: tuple[Run, ...] = field(repr=False)

    def summary(self, *, backend: Backend = "pandas") -> Frame:
        """summary.parquet as compare wrote it, one row per run (final and initial headline
        metrics, time to target, participation, drops, bytes, wall time)."""
        path = self.path / "summary.parquet"
        if not path.is_file():
            raise InputError(path, None, "missing: the compare did not finish")
        table = _study_table(self.path, "summary.parquet")
        where = {_key(r): str(r.path) for r in self.runs}
        rows = zip(*(table[k].to_pylist() for k in (*KEYS[:3], "data_seed", "training_seed")),
                   strict=True)
        try:
            run_dirs = [where[row] for row in rows]
        except KeyError as exc:
            raise InputError(path, None, f"a row for {exc.args[0]} but no such run in "
                             "compare.json's grid") from None
        table = table.drop_columns([c for c in ("run_dir",) if c in table.column_names])
        table = table.append_column("run_dir", pa.array(run_dirs, pa.string()))
        return _frame(table.select([*KEYS, *(c for c in table.column_names if c not in KEYS)]),
                      backend)

    def pairs(self, *, backend: Backend = "pandas") -> Frame:
        """pairs.parquet: per measure and pair of grid cells (A, B), the paired difference A - B
        over seeds, its t interval, the Holm-corrected p, the equivalence test and the verdict."""
        path = self.path / "pairs.parquet"
        if not path.is_file():
            raise InputError(path, None, "missing: the compare did not finish, or an older cosim "
                             "wrote it (run cosim compare --resume to add it)")
        return _frame(_study_table(self.path, "pairs.parquet"), backend)

    def arrow(self, name: str) -> pa.Table:
        """One trace table of every run, stacked, with the key columns in front."""
        parts = [_tagged(run, run.arrow(name)) for run in self.runs]
        return pa.concat_tables(parts, promote_options="default")

    def table(self, name: str, *, backend: Backend = "pandas") -> Frame:
        """One trace table of every run in long format (participation, handoffs, ...)."""
        return _frame(self.arrow(name), backend)

    def metrics(self, *, backend: Backend = "pandas") -> Frame:
        """Every metrics row of every run: policy, aggregation, seed, run_dir, round,
        sim_time_s, wall_time_s, task, metric, value."""
        return self.table(METRICS, backend=backend)


def load_run(path: str | os.PathLike) -> Run:
    """Open a run folder (one with run.json), whatever its status; a complete run's traces
    must be the ones it wrote (their SHA-256 in run.json), as ``cosim report`` checks."""
    from cosim.analysis.summary import read_run_json
    from cosim.run_folder import check_traces_unchanged

    path = _folder(path)
    if (path / "compare.json").is_file():
        raise InputError(path, None, "a compare folder, not a run folder: use load_compare")
    info = read_run_json(path, ("status", "scenario", "seed"))
    if info["status"] == "complete":
        check_traces_unchanged(path, info, "they are not the run's results")
    return Run(path, info)


def load_compare(path: str | os.PathLike) -> Compare:
    """Open a compare folder (one with compare.json); its runs are found as ``cosim report``
    finds them (``cosim.analysis.runs.open_source``)."""
    from cosim.analysis.runs import open_source

    path = _folder(path)
    spec = path / "compare.json"
    if not spec.is_file():
        if (path / "run.json").is_file():
            raise InputError(path, None, "a run folder, not a compare folder: use load_run")
        raise InputError(path, None, "not a cosim compare folder (no compare.json)")
    from cosim.analysis.runs import read_compare_json

    info = read_compare_json(spec)
    if info.get("status", "complete") != "complete":
        raise InputError(spec, None, f"the compare is {info.get('status')!r}, not complete: "
                         "finish it with cosim compare --resume")
    source = open_source(path)
    return Compare(path, info, tuple(Run(ref.path, ref.info) for ref in source.runs))


def run(scenario: ScenarioLike, *, out: str | os.PathLike | None = None, seed: int | None = None,
        overrides: Sequence[str] | None = None, quiet: bool = True, overwrite: bool = False) -> Run:
    """Run a scenario as ``cosim run`` does and return the finished run.

    ``scenario``: a YAML path, a loaded :class:`~cosim.scenario.Scenario`, or a dict in the
    YAML's shape (relative paths in a dict are resolved against the working directory).
    ``overrides`` are ``--set`` items (``"duration_s=60"``); ``out`` defaults to
    ``runs/<name>-<time>``; ``overwrite`` as ``--overwrite``. A run that fails raises, after
    writing its run.json."""
    from cosim.destinations import check_cache_folder
    from cosim.runner import run_scenario

    _flags(quiet=quiet, overwrite=overwrite)
    check_cache_folder()
    sc, source = _scenario(scenario, _overrides(overrides), seed)
    result = run_scenario(sc, source=source, out=None if out is None else _path(out, "out"),
                          quiet=quiet, overwrite=overwrite)
    return load_run(result.run_dir)


def compare(scenario: ScenarioLike, out: str | os.PathLike, *,
            policies: Sequence[str] | str | None = None,
            aggregations: Sequence[str] | str | None = None,
            seeds: Sequence[int] | int | Literal["auto"] | None = None,
            data_seeds: Sequence[int] | int | None = None,
            training_seeds: Sequence[int] | int | None = None, jobs: int = 1,
            overrides: Sequence[str] | None = None,
            targets: Mapping[str, float] | None = None,
            margins: Mapping[str, float] | None = None,
            eval_every_rounds: int | None = DEFAULTS.eval_every_rounds,
            eval_every_s: float | None = None, min_seeds: int = DEFAULTS.min_seeds,
            max_seeds: int = DEFAULTS.max_seeds, budget_min: float | None = None,
            decide: Sequence[str] = (), decide_on: Sequence[str] | None = None,
            resume: bool = False, overwrite: bool = False) -> Compare:
    """Run a compare grid as ``cosim compare`` does (same defaults, ``resume`` and ``overwrite``
    as ``--resume`` and ``--overwrite``) and return it. ``seeds`` vary the connectivity (one
    recording each); ``data_seeds`` and ``training_seeds`` vary those streams on every recording
    (None: they follow the scenario's seed). ``eval_every_rounds`` (None: the scenario's) and
    ``eval_every_s`` (asynchronous cells; None: their round deadline) set the curves' resolution.
    ``seeds="auto"`` adds seeds until the pairs are decided, as ``--seeds auto`` does, with
    ``min_seeds``, ``max_seeds``, ``budget_min``, ``decide`` (cells) and ``decide_on`` (measures).
    A Scenario or dict is sent to the worker processes as it is (compare.json then names no
    scenario file; its digest still identifies the scenario for ``resume``)."""
    from cosim.compare import CompareGrid, check_jobs, check_margins, check_targets, run_compare
    from cosim.compare_auto import DEFAULT_MEASURES, AutoSeeds
    from cosim.destinations import check_cache_folder

    auto = None
    if seeds == "auto":
        auto = AutoSeeds(min_seeds, max_seeds, budget_min,
                         _names(decide, (), "decide") if decide else (),
                         _names(decide_on, DEFAULT_MEASURES, "decide_on") if decide_on
                         else DEFAULT_MEASURES)
    grid = CompareGrid(_names(policies, DEFAULTS.policies, "policies"),
                       _names(aggregations, DEFAULTS.aggregations, "aggregations"),
                       () if auto is not None else _seed_list(seeds),
                       None if data_seeds is None else _seed_list(data_seeds, "data_seeds"),
                       None if training_seeds is None else _seed_list(training_seeds,
                                                                      "training_seeds"),
                       eval_every_rounds, eval_every_s)
    check_jobs(jobs)
    _flags(resume=resume, overwrite=overwrite)
    check_cache_folder()
    checked_targets = check_targets(_mapping(targets, "targets")) if targets else None
    checked_margins = check_margins(_mapping(margins, "margins")) if margins else None
    spec = _spec(scenario, _overrides(overrides))
    out = _path(out, "out")
    if auto is not None:
        auto.check_cells(grid.policies, grid.aggregations)
    run_compare(spec, grid, Path(out), jobs, checked_targets, resume=resume, overwrite=overwrite,
                margins=checked_margins, auto=auto)
    return load_compare(out)


def log_metrics(run: Run | Compare | str | os.PathLike, tensorboard_dir: str | os.PathLike | None = None,
                mlflow: bool = False) -> int:
    """Write a finished run's metrics.parquet to TensorBoard and/or MLflow; return the rows logged.

    Each row becomes the scalar ``task/metric`` at step ``round`` (a per-client row of
    learning.personalisation: ``personalisation/MODEL/clientN/task/metric``). TensorBoard: event files in
    ``tensorboard_dir`` (a Compare: one sub-folder per run, named as the run), with each event's
    wall time set to the run's start plus its simulated time, so TensorBoard's "relative" axis is
    simulated seconds. MLflow: one MLflow run per cosim run (nested when one is active) in the
    current tracking URI and experiment, with scenario, seed, policy and aggregation as params.
    Both are optional dependencies, imported only here."""
    _flags(mlflow=mlflow)
    if tensorboard_dir is None and not mlflow:
        raise InputError(None, "log_metrics", "give tensorboard_dir, mlflow=True or both")
    if tensorboard_dir is not None:  # event files go in no run's or study's folder
        _check_event_folders(run, _path(tensorboard_dir, "tensorboard_dir"))
    writer_class = _summary_writer() if tensorboard_dir is not None else None
    mlflow_module = _mlflow() if mlflow else None  # both checked before anything is written
    if isinstance(run, Compare):
        return sum(log_metrics(r, None if tensorboard_dir is None else Path(tensorboard_dir) / r.path.name,
                               mlflow) for r in run.runs)
    if not isinstance(run, Run):
        run = load_run(run)
    rows = run.arrow(METRICS).to_pylist()
    if writer_class is not None and tensorboard_dir is not None:
        start = _started(run)
        writer = writer_class(log_dir=str(Path(tensorboard_dir).absolute()))
        try:
            for r in rows:
                writer.add_scalar(_tag(r), r["value"], global_step=r["round"],
                                  walltime=start + r["sim_time_s"])
        finally:
            writer.close()
    if mlflow_module is not None:
        with mlflow_module.start_run(run_name=run.path.name,
                                     nested=mlflow_module.active_run() is not None):
            mlflow_module.log_params({"scenario": run.name, "seed": run.seed, "policy": run.policy,
                                      "aggregation": run.aggregation, "run_dir": str(run.path)})
            for r in rows:
                mlflow_module.log_metric(_tag(r), r["value"], step=r["round"])
    return len(rows)


# ---- helpers ----------------------------------------------------------------------------------
def _study_table(folder: Path, name: str) -> pa.Table:
    """A table at a compare's top, the one the compare wrote (its mark's SHA-256), read."""
    from cosim.compare import COMPARE_COMMAND
    from cosim.destinations import check_study_file

    check_study_file(folder, name, COMPARE_COMMAND)
    try:
        return pq.read_table(folder / name)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(folder / name, None, f"not a readable Parquet table: {exc}") from None


def _check_event_folders(run: object, folder: Path) -> None:
    """Where TensorBoard's event files go (a Compare's: a sub-folder per run) is a folder of the
    user's: neither in nor itself a run's, a study's or a command's output folder."""
    from cosim.bounded_read import virtual_file
    from cosim.destinations import check_not_in_results, check_study_out

    if virtual_file(folder):
        raise InputError(None, "tensorboard_dir", f"{folder} is in a kernel's virtual file system "
                         "(/proc, /sys, /dev); name a folder on disk")
    check_study_out(folder, "tensorboard_dir")
    check_not_in_results(folder, "tensorboard_dir")
    if isinstance(run, Compare):
        for r in run.runs:
            check_study_out(folder / r.path.name, "tensorboard_dir")
            check_not_in_results(folder / r.path.name, "tensorboard_dir")


def _tag(row: dict[str, Any]) -> str:
    """A metrics row's scalar name; per-client rows apart from the global learning curves."""
    tag = f"{row['task']}/{row['metric']}"
    if row.get("client") is None:
        return tag
    return f"personalisation/{row['model']}/client{row['client']}/{tag}"


def _folder(path: str | os.PathLike) -> Path:
    path = _path(path, "path")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(path, None, "no such folder") from None
    except (OSError, ValueError) as exc:  # too long a name, a loop of links, no permission, NUL
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(None, "path", f"{printable(str(path))[:200]}: {why}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(path, None, "not a folder")
    return path


def _frame(table: pa.Table, backend: Backend) -> Frame:
    if backend == "pandas":
        return table.to_pandas()
    if backend == "polars":
        try:
            import polars as pl
        except ImportError:
            raise MissingDependencyError("backend='polars' needs polars: pip install polars") from None
        return pl.from_arrow(table)
    raise InputError(None, "backend", f"unknown backend {backend!r} (known: pandas, polars)")


def _key(run: Run) -> tuple[str | None, str | None, int, int, int]:
    return run.policy, run.aggregation, run.seed, run.seeds["data"], run.seeds["training"]


def _tagged(run: Run, table: pa.Table) -> pa.Table:
    """The table with the run's key columns in front."""
    n = table.num_rows
    keys = [pa.repeat(pa.scalar(run.policy, pa.string()), n),
            pa.repeat(pa.scalar(run.aggregation, pa.string()), n),
            pa.repeat(pa.scalar(run.seed, pa.int64()), n),
            pa.repeat(pa.scalar(str(run.path), pa.string()), n)]
    return pa.Table.from_arrays([*keys, *table.columns], names=[*KEYS, *table.column_names])


def _scenario(scenario: ScenarioLike, overrides: list[str], seed: int | None
              ) -> tuple[Scenario, Path | None]:
    """The validated scenario, and the file it came from (None when it was built in memory). A
    Scenario is validated again: its fields may have been set since it was loaded."""
    spec = _spec(scenario, overrides)
    if seed is not None:
        spec = spec.plus(("seed", seed))
    return spec.load(), spec.source


def _spec(scenario: ScenarioLike, overrides: Sequence[str]) -> ScenarioSpec:
    """A YAML file, a Scenario or a dict as data, with ``--set``-style overrides."""
    from cosim.scenario_loader import DICT_SOURCE, ScenarioSpec, parse_override

    if isinstance(scenario, str | os.PathLike):
        return ScenarioSpec.read(Path(scenario), overrides)
    if isinstance(scenario, Scenario):
        base = scenario.model_dump(mode="json")  # every field: re-validating it gives it back
    elif isinstance(scenario, Mapping):
        base = _scenario_data(scenario)
    else:
        raise InputError(None, "scenario", "expected a YAML path, a Scenario or a dict, got "
                         f"{type(scenario).__name__}")
    return ScenarioSpec(base, None, tuple(parse_override(i, DICT_SOURCE) for i in overrides))


def _overrides(overrides: Sequence[str] | None) -> list[str]:
    """``--set`` items: a list of strings (a lone string would be read letter by letter)."""
    if overrides is None:
        return []
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise InputError(None, "overrides", f"{overrides!r}: a list of 'key=value' strings")
    return list(overrides)


def _path(value: object, what: str) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise InputError(None, what, f"{value!r}: a path (a string or a Path)")
    if not os.fspath(value):  # "" is no place (TensorBoard would pick ./runs/ for itself)
        raise InputError(None, what, "an empty path: name a folder")
    return Path(value)


def _scenario_data(scenario: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a scenario given as a dict, held to what a scenario file may be: JSON's
    types (what YAML could not hold is refused), no cycles, and the YAML reader's limits on
    nesting and size."""
    from cosim.safe_yaml import MAX_DEPTH, MAX_NODES

    try:
        base = json.loads(json.dumps(scenario, allow_nan=True))
    except (TypeError, ValueError, RecursionError) as exc:  # a type JSON lacks, a cycle, depth
        why = "it refers to itself" if "ircular" in str(exc) else (
            "nested too deep" if isinstance(exc, RecursionError) else str(exc).splitlines()[0])
        raise InputError(None, "scenario", f"not a scenario's data: {why}") from None
    nodes, stack = 0, [(base, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise InputError(None, "scenario", f"nested more than {MAX_DEPTH} levels deep")
        if nodes > MAX_NODES:
            raise InputError(None, "scenario", f"more than {MAX_NODES:,} values: not a scenario")
        children = value.values() if isinstance(value, dict) else (
            value if isinstance(value, list) else ())
        stack.extend((child, depth + 1) for child in children)
    return base


def _mapping(value: object, what: str) -> dict[str, float]:
    """``targets`` or ``margins``: a mapping of names to numbers (each checked by its reader)."""
    if not isinstance(value, Mapping):
        raise InputError(None, what, f"expected a dict of names to numbers, got "
                         f"{type(value).__name__}")
    for key, number in value.items():
        if not isinstance(key, str) or not isinstance(number, int | float) \
                or isinstance(number, bool):
            raise InputError(None, what, f"{key!r}: {number!r} is not a number")
    return {k: float(v) for k, v in value.items()}


def _names(value: Sequence[str] | str | None, default: tuple[str, ...], what: str) -> tuple[str, ...]:
    if value is None:
        return default
    if not isinstance(value, str | Iterable):
        raise InputError(None, what, f"{value!r}: names, as strings")
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in items):
        raise InputError(None, what, f"{value!r}: names, as strings")
    names = tuple(v.strip() for v in items)
    if not names:
        raise InputError(None, what, "give at least one")
    if "" in names:  # "random,": a name left out, or a typo, as the command line says
        raise InputError(None, what, f"{value!r} has an empty name")
    return names


def _flags(**flags: object) -> None:
    """Flags are True or False: a string such as "no" would be taken as yes."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise InputError(None, name, f"{value!r}: True or False")


def _seed_list(value: Sequence[int] | int | str | None, what: str = "seeds") -> tuple[int, ...]:
    """The seeds as a tuple (one or more; each checked by ``CompareGrid``)."""
    if value is None:
        return DEFAULTS.seeds
    if isinstance(value, int):
        seeds: tuple[int, ...] = (value,)
    elif isinstance(value, Iterable) and not isinstance(value, str):
        seeds = tuple(value)
    else:
        raise InputError(None, what, f"expected integers, got {value!r}")
    if not seeds:
        raise InputError(None, what, "give at least one seed")
    return seeds


def _started(run: Run) -> float:
    try:
        return dt.datetime.fromisoformat(run.info["started_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return 0.0


def _summary_writer() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MissingDependencyError("logging to TensorBoard needs the tensorboard package: "
                                     "pip install tensorboard") from None
    return SummaryWriter


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise MissingDependencyError("logging to MLflow needs the mlflow package: "
                                     "pip install mlflow") from None
    return mlflow
