"""The ``cosim`` command line.

Exit codes: 0 done; 2 bad input, reported as ONE line ``error: <file>: <field>: <what>`` with no
traceback; 1 internal failure (traceback only with ``--debug``); 130 interrupted.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer

import cosim
from cosim.errors import InputError, MissingDependencyError
from cosim.names import COMPARE_DEFAULTS

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="cosim: SUMO mobility + SimPy radio + federated fine-tuning, on one simulated clock.",
)

T = TypeVar("T")

ScenarioArg = Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a scenario value: dotted.key=value (repeatable)."),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cosim {cosim.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """cosim: SUMO mobility + SimPy radio + federated fine-tuning, on one simulated clock."""


def _guarded(debug: bool, work: Callable[[], T]) -> T:
    """Run a command body and map failures to exit codes and one-line messages. SIGINT and
    SIGTERM both end the run as an interruption (run.json says ``interrupted``, exit 130)."""
    from cosim.destinations import check_cache_folder
    from cosim.interrupts import handled
    from cosim.run_folder import DiskFullError, RunFailedError

    try:
        with handled():
            check_cache_folder()  # every command may fill it: a bad setting is said first
            return work()
    except InputError as exc:
        typer.echo(exc.line(), err=True)
        raise typer.Exit(2) from None
    except (MissingDependencyError, DiskFullError, RunFailedError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except BrokenPipeError:  # the reader left (`cosim status | head -1`): as a shell tool, quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        raise typer.Exit(128 + signal.SIGPIPE) from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # any command's write: said as a run's is
            where = f" writing {exc.filename}" if exc.filename else ""
            typer.echo(f"error: the disk is full{where}", err=True)
            raise typer.Exit(1) from None
        if exc.errno not in PATH_ERRORS or not exc.filename:
            _internal(exc, debug)
        # a path the user gave that the file system refuses (too long, read-only, a loop of
        # links, no permission): bad input, one line
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        _internal(exc, debug)
    raise AssertionError("unreachable")


PATH_ERRORS = (errno.ENAMETOOLONG, errno.EROFS, errno.ELOOP, errno.EACCES, errno.EPERM,
               errno.ENOTDIR, errno.EBUSY)  # EBUSY: a mount point where a rename goes


def _internal(exc: BaseException, debug: bool) -> NoReturn:
    """An error cosim did not expect: exit 1, the traceback with --debug."""
    if debug:
        traceback.print_exception(exc)
    typer.echo(f"error: internal: {type(exc).__name__}: {exc}"
               + ("" if debug else " (run with --debug for the traceback)"), err=True)
    raise typer.Exit(1) from None


@app.command()
def validate(
    scenario: ScenarioArg,
    set_: SetOpt = None,
    show: Annotated[bool, typer.Option(
        "--show", help="Print the resolved scenario, every default filled in, as YAML.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Check a scenario file as `cosim run` does before its folder (building or reading the
    cached network and demand, the cells on it, buildings, data) and print what it would run."""

    def work() -> None:
        from cosim.progress import watch
        from cosim.runner import check_run_inputs, check_sumo_output_places, layer_status
        from cosim.scenario_checks import describe_inputs, resolved_yaml
        from cosim.scenario_loader import load_scenario

        sc = load_scenario(scenario, set_ or [])
        # building the network, demand and synthetic data the first time takes minutes
        with watch("checking the inputs (network, demand, data)", quiet=False):
            inputs, _ = check_run_inputs(sc, scenario)
        check_sumo_output_places(sc, scenario)
        what = describe_inputs(sc, inputs, scenario)
        layers = ", ".join(f"{k}: {v}" for k, v in layer_status(sc).items())
        line = f"ok: {scenario}: {sc.name}, seed {sc.seed}, {sc.duration_s:g} s; {layers}"
        if show:
            typer.echo(f"# {line}\n# {what}\n{resolved_yaml(sc)}", nl=False)
        else:
            typer.echo(f"{line}\n{what}")

    _guarded(debug, work)


@app.command()
def schema(debug: DebugOpt = False) -> None:
    """Print the scenario's JSON Schema (draft 2020-12) for editors' completion and checking:
    `cosim schema > scenario.schema.json`, then name it in a scenario's first line,
    `# yaml-language-server: $schema=scenario.schema.json`."""

    def work() -> None:
        from cosim.scenario.schema import scenario_json_schema

        typer.echo(json.dumps(scenario_json_schema(), indent=2))

    _guarded(debug, work)


@app.command()
def run(
    scenario: Annotated[Path | None, typer.Argument(
        help="Scenario YAML file (not with --resume).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/<name>-<time>).")]
    = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the scenario's seed.")] = None,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an earlier run in --out once this one completes (with "
        "--resume: the complete run beside the resumed one).")] = False,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="Finish an interrupted, failed or killed run (OUT or OUT.partial) with "
        "its own scenario; with output.checkpoint: true no client update is trained twice.",
        show_default=False)] = None,
    debug: DebugOpt = False,
) -> None:
    """Run a scenario and write its traces (Parquet) and run.json.

    The run writes into OUT.partial and becomes OUT when complete; a failed or interrupted run
    stays at OUT.partial, and an earlier run at OUT is untouched until a new one completes."""
    from cosim.runner import resume_target, run_scenario
    from cosim.scenario_loader import load_scenario

    def work() -> None:
        target: Path | None
        source: Path | None
        if resume is not None:
            given = [n for n, v in (("SCENARIO", scenario), ("--out", out), ("--seed", seed),
                                    ("--set", set_)) if v]
            if given:
                raise InputError(None, "--resume", f"resumes the run's own scenario: drop "
                                 f"{', '.join(given)}")
            sc, target, source = resume_target(resume)
        else:
            if scenario is None:
                raise InputError(None, "SCENARIO", "give a scenario file (or --resume RUN_DIR)")
            sc, target, source = load_scenario(scenario, set_ or [], seed=seed), out, scenario

        def announce(layers: dict[str, str]) -> None:
            for layer, state in layers.items():
                typer.echo(f"{layer:>9}: {state}", err=True)

        result = run_scenario(sc, source=source, out=target, quiet=quiet,
                              announce=None if quiet else announce, overwrite=overwrite,
                              resume=resume is not None)
        s = result.info.get("summary", {}).get("mobility", {})
        journal = result.info.get("summary", {}).get("learning", {}).get("journal")
        replayed = f", {journal['replayed']} training calls from the journal" if journal else ""
        typer.echo(f"{result.status}: {result.run_dir} ({result.info['wall_time_s']:.1f} s wall, "
                   f"{s.get('vehicles_seen', 0)} vehicles, peak {s.get('peak_vehicles', 0)}"
                   f"{replayed})")
        if result.status == "complete" and result.run_dir != target and target is not None \
                and result.run_dir.name.endswith(".partial"):
            typer.echo(f"note: {target} was not replaced: it changed while the run ran (a file "
                       "cosim did not write, or it is no longer a run); the new run is complete "
                       f"in {result.run_dir}", err=True)
        if result.info.get("library_warnings"):
            typer.echo(f"note: {result.info['library_warnings']} library warning(s) in "
                       f"{result.run_dir / 'warnings.log'}", err=True)

    _guarded(debug, work)


def _csv(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",")]
    if not any(items):
        raise InputError(None, what, "give at least one, comma-separated")
    if "" in items:  # "0,,1": a value left out, or a typo; never read as "0,1"
        raise InputError(None, what, f"{value!r} has an empty item: separate the values by "
                         "single commas")
    return items


def _seeds(value: str, option: str = "--seeds") -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in _csv(value, option))
    except ValueError:
        raise InputError(None, option, f"{value!r} is not comma-separated integers") from None
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise InputError(None, option, f"{value!r}: each seed once, none negative")
    from cosim.scenario.base import SEED_MAX

    if any(s > SEED_MAX for s in seeds):
        raise InputError(None, option, f"{value!r}: a seed is at most {SEED_MAX} (SUMO's 32-bit seed)")
    return seeds


def _numbers_by_key(items: list[str] | None, option: str, known: tuple[str, ...] | list[str],
                    what: str) -> dict[str, float]:
    """``key=number`` items of a repeatable option, keys among ``known``."""
    out = {}
    for item in items or []:
        key, _, value = item.partition("=")
        if key not in known:
            raise InputError(None, option, f"unknown {what} {key!r} (known: {', '.join(known)})")
        if key in out:  # which of two values was meant cannot be told
            raise InputError(None, option, f"{key} given twice; give each {what} once")
        try:
            out[key] = float(value)
        except ValueError:
            raise InputError(None, option, f"{item!r} is not {what}=number") from None
    return out


def _targets(items: list[str] | None) -> dict[str, float]:
    from cosim.compare import check_targets
    from cosim.names import HEADLINE

    return check_targets(_numbers_by_key(items, "--target", list(HEADLINE), "task"), "--target")


def _every_rounds(value: str) -> int | None:
    if value.strip() == "scenario":
        return None
    try:
        rounds = int(value)
    except ValueError:
        rounds = 0
    if rounds < 1:
        raise InputError(None, "--eval-every-rounds", f"{value!r}: a positive whole number of "
                         "rounds, or 'scenario'")
    return rounds


def _margins(items: list[str] | None) -> dict[str, float]:
    from cosim.analysis.pairs import MARGIN_KEYS
    from cosim.compare import check_margins

    return check_margins(_numbers_by_key(items, "--margin", MARGIN_KEYS, "measure"), "--margin")


class Backend(str, Enum):
    """Where ``cosim compare`` runs the grid (choices shown by --help)."""

    local = "local"
    ray = "ray"


@app.command()
def compare(
    scenario: ScenarioArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for the runs and the summary.")],
    policies: Annotated[str, typer.Option("--policies", help="Comma-separated scheduling policies.")]
    = ",".join(COMPARE_DEFAULTS.policies),
    aggregations: Annotated[str, typer.Option("--aggregations", help="Comma-separated aggregations.")]
    = ",".join(COMPARE_DEFAULTS.aggregations),
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated scenario seeds: the "
                                       "connectivity, one recording each; or auto: add seeds "
                                       "0, 1, 2, ... until the pairs are decided (--max-seeds, "
                                       "--budget-min, --decide).")]
    = ",".join(map(str, COMPARE_DEFAULTS.seeds)),
    min_seeds: Annotated[int | None, typer.Option(
        "--min-seeds", min=2, show_default=str(COMPARE_DEFAULTS.min_seeds), help="With --seeds "
        "auto: seeds before the first look.")] = None,
    max_seeds: Annotated[int | None, typer.Option(
        "--max-seeds", min=2, show_default=str(COMPARE_DEFAULTS.max_seeds), help="With --seeds "
        "auto: stop at this many seeds.")] = None,
    budget_min: Annotated[float | None, typer.Option(
        "--budget-min", help="With --seeds auto: add no seed that would end past this many "
        "minutes of wall time.")] = None,
    decide: Annotated[str | None, typer.Option(
        "--decide", show_default="every pair", help="With --seeds auto: comma-separated cells "
        "(policies, or policy/aggregation) whose pairs must be decided.")] = None,
    decide_on: Annotated[str | None, typer.Option(
        "--decide-on", show_default="completion_rate,area,time_to_target", help="With --seeds "
        "auto: comma-separated measures (summary columns or their prefixes) to decide on.")]
    = None,
    data_seeds: Annotated[str | None, typer.Option(
        "--data-seeds", show_default="the scenario's seed", help="Comma-separated "
        "learning.data seeds (which segments each client holds, which are held out), each run "
        "on every recording.")] = None,
    training_seeds: Annotated[str | None, typer.Option(
        "--training-seeds", show_default="the scenario's seed", help="Comma-separated "
        "learning seeds (initialisation, batch order, every round's draws), each run on every "
        "recording.")] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", min=1, help="Runs in parallel (processes; each gets cores / jobs torch threads). "
        "With --backend ray: the local Ray instance's CPUs; ignored with --ray-address.")] = 1,
    target: Annotated[list[str] | None, typer.Option(
        "--target", help="task=value: report the simulated time to reach it (repeatable; default "
        "80% of the best final value of any run).")] = None,
    eval_every_rounds: Annotated[str, typer.Option(
        "--eval-every-rounds", help="Evaluate the global model every this many rounds (model "
        "versions of hierarchical and spanning-tree cells), or 'scenario' for the scenario's "
        "setting.")] = str(COMPARE_DEFAULTS.eval_every_rounds),
    eval_every_s: Annotated[float | None, typer.Option(
        "--eval-every-s", min=0.001, show_default="each cell's round deadline", help="In "
        "asynchronous cells (fedasync, fedbuff): evaluate every this many simulated seconds.")]
    = None,
    margin: Annotated[list[str] | None, typer.Option(
        "--margin", help="measure=value: the equivalence margin of the pairs table, absolute "
        "(repeatable; measures: a task, completion, time, bytes; defaults: 0.01 per task, 0.02 "
        "completion, 60 s time, none for bytes).")] = None,
    # typer passes the str default through as it is; Backend(backend) below takes either
    backend: Annotated[Backend, typer.Option(
        "--backend", help="local: this machine's process pool (--jobs); ray: each run a Ray task "
        "(needs Ray: pip install ray).")] = "local",  # type: ignore[assignment]
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", show_default="RAY_ADDRESS if set, else start a local Ray instance with "
        "--jobs CPUs", help="With --backend ray: an existing cluster (auto, ray://host:10001); its "
        "free CPUs then bound the parallelism and each run gets 1 torch thread. Every node must see "
        "cosim, the scenario and --out at the same paths.")] = None,
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Finish an interrupted compare in --out (same settings): keep its "
        "complete runs, redo the rest.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an earlier compare in --out, run by run.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    debug: DebugOpt = False,
) -> None:
    """Run policies x aggregations x seeds on the same recorded connectivity; summarise them and
    say, pair by pair, which is better and how sure (paired verdicts)."""

    def work() -> None:
        from cosim.compare import (
            CompareGrid,
            check_compare_out,
            check_grid,
            compare_settings,
            open_runner,
            run_compare,
        )
        from cosim.compare_auto import DEFAULT_MEASURES, AutoSeeds
        from cosim.compare_table import print_pairs, print_spread, print_summary
        from cosim.progress import CompareProgress
        from cosim.scenario_loader import ScenarioSpec

        auto = None
        plan = {"--min-seeds": min_seeds, "--max-seeds": max_seeds, "--budget-min": budget_min,
                "--decide": decide, "--decide-on": decide_on}
        if seeds.strip() == "auto":
            auto = AutoSeeds(min_seeds or COMPARE_DEFAULTS.min_seeds,
                             max_seeds or COMPARE_DEFAULTS.max_seeds, budget_min,
                             tuple(_csv(decide, "--decide")) if decide else (),
                             tuple(_csv(decide_on, "--decide-on")) if decide_on
                             else DEFAULT_MEASURES)
            seed_list: tuple[int, ...] = ()
        else:
            given = [k for k, v in plan.items() if v is not None]
            if given:
                raise InputError(None, given[0], "only with --seeds auto")
            seed_list = _seeds(seeds)
        margins = _margins(margin)
        grid = CompareGrid(tuple(_csv(policies, "--policies")),
                           tuple(_csv(aggregations, "--aggregations")), seed_list,
                           None if data_seeds is None else _seeds(data_seeds, "--data-seeds"),
                           None if training_seeds is None else _seeds(training_seeds,
                                                                      "--training-seeds"),
                           _every_rounds(eval_every_rounds), eval_every_s)
        targets = _targets(target)
        if auto is not None:
            auto.check_cells(grid.policies, grid.aggregations)
        spec = ScenarioSpec.read(scenario, set_ or [])
        check_grid(spec, grid, auto)
        check_compare_out(out, compare_settings(spec, grid, auto), resume, overwrite)
        backend_name = Backend(backend).value
        open_runner(backend_name, jobs, ray_address)  # its one-line errors come before the bar
        total = (len(grid.seeds) if auto is None else auto.max_seeds) * (1 + grid.runs_per_seed())

        def on_look(n: int, stopped: str | None) -> None:
            if stopped is None:
                typer.echo(f"seeds: {n} undecided, adding seed {n}", err=True)
        with CompareProgress(total, quiet) as bar:
            summary = run_compare(spec, grid, out, jobs, targets,
                                  on_done=bar.done, backend=backend_name,
                                  ray_address=ray_address, resume=resume, overwrite=overwrite,
                                  on_progress=bar.run_progress, margins=margins, auto=auto,
                                  on_look=on_look)
        import pyarrow.parquet as pq

        print_pairs(pq.read_table(out / "pairs.parquet"))
        print_spread(pq.read_table(out / "spread.parquet"))
        print_summary(summary)
        info = json.loads((out / "compare.json").read_text())
        if auto is not None:
            typer.echo(f"seeds: auto, stopped after {len(info['seeds_used'])} "
                       f"({', '.join(map(str, info['seeds_used']))}): {info['stopped_because']}")
        if info["warning"]:
            typer.echo(f"warning: {info['warning']}", err=True)
        left = info["settings_left_out"]
        for method, keys in left.items():
            typer.echo(f"note: {method} runs leave out {', '.join(keys)} (settings of another method)")
        typer.echo(f"summary: {out / 'summary.parquet'} and {out / 'summary.csv'}; pairs: "
                   f"{out / 'pairs.parquet'} and {out / 'pairs.csv'}")

    _guarded(debug, work)


@app.command()
def onboarding(
    scenario: ScenarioArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for the runs, figure and table.")],
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")] = "0",
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Runs in parallel (processes).")] = 2,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    debug: DebugOpt = False,
) -> None:
    """The paper's task-onboarding study: Fig. 4 (gated and ideal connectivity) and its table."""

    def work() -> None:
        from cosim.onboarding import job_count, plan, run_onboarding
        from cosim.progress import CompareProgress
        from cosim.scenario_loader import ScenarioSpec

        seed_list = _seeds(seeds)
        spec = ScenarioSpec.read(scenario, set_ or [])
        cfg, _, _ = plan(spec, seed_list)
        with CompareProgress(job_count(cfg, seed_list), quiet, label="onboarding") as bar:
            run_onboarding(spec, out, seed_list, jobs, on_done=bar.done,
                           on_progress=bar.run_progress)
        table = (out / "table.md").read_text(encoding="utf-8")
        typer.echo(table)
        rows = max(0, len(table.strip().splitlines()) - 2)  # less the header and its rule
        typer.echo(f"figures: {', '.join(str(out / f'fig4_{c}.png') for c in cfg.connectivity)}; "
                   f"table: {out / 'table.csv'} ({rows} rows)")

    _guarded(debug, work)


@app.command()
def status(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Run folders, or folders holding runs (default: runs).", show_default=False)] = None,
    debug: DebugOpt = False,
) -> None:
    """Say how each run, compare and onboarding ended: complete, failed, interrupted, running,
    crashed (its file says running but its process is gone), or damaged (complete, but a trace
    it wrote is gone)."""

    def work() -> None:
        from cosim.destinations import RESULT_MARKERS, study_running, study_status
        from cosim.errors import printable
        from cosim.run_folder import find_folders, find_runs, foreign_entries, read_status

        where = paths or [Path("runs")]
        studies = [(s, study_status(s)) for s in find_folders(where, RESULT_MARKERS)]
        found = find_runs(where)
        starting = [p for p in where if p.is_dir() and not study_status(p) and study_running(p)]
        for study in starting:  # its compare.json or onboarding.json is not written yet
            typer.echo(printable(f"{'running':<11} {study}  (a study starting)"))
        if not found and not studies and not starting:
            raise InputError(None, None, f"no run folders in {', '.join(map(str, where))}")
        for study, (kind, state) in ((s, k) for s, k in studies if k is not None):
            typer.echo(printable(f"{state:<11} {study}  ({kind})"))
        for run_dir in found:
            state, info = read_status(run_dir)
            detail = info.get("error") or ""
            missing = [n for n in (info.get("traces") or {}).values()
                       if not (run_dir / n).is_file()] if state == "complete" else []
            if missing:  # what its readers would refuse: never called complete
                state, detail = "damaged", (f"finished, but {len(missing)} trace(s) it wrote are "
                                            f"gone: {', '.join(missing[:3])}")
            if state in ("running", "crashed"):
                detail = (f"pid {info.get('pid')} on {info.get('host')}, last heartbeat "
                          f"{info.get('heartbeat_at')}")
            try:
                foreign = foreign_entries(run_dir) if state != "running" else []
            except OSError:  # a folder it cannot list: its state is all there is to say
                foreign = []
            if foreign:  # a run that cannot be replaced, and files that are not its results
                detail = "; ".join(x for x in (detail, (
                    f"also holds {len(foreign)} file(s) cosim did not write: "
                    f"{', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}")) if x)
            # what run.json and the folder's name say is shown, never obeyed by the terminal
            typer.echo(printable(f"{state:<11} {run_dir}" + (f"  ({detail})" if detail else "")))

    _guarded(debug, work)


@app.command()
def report(
    path: Annotated[Path, typer.Argument(help="A run folder or a compare folder.", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", help="Folder (default PATH/report).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Write report.html (figures embedded, viewable offline) and the figures as PNGs."""

    def work() -> None:
        from cosim.analysis.report import write_report
        from cosim.analysis.runs import open_source
        from cosim.destinations import output_folder

        open_source(path)  # a folder to report on, before where the report goes
        with output_folder(out or path / "report", "--out", "report", allowed_in=path / "report",
                           make=True, of=str(path.resolve())):
            page = write_report(path, out)
        typer.echo(str(page))

    _guarded(debug, work)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or json (JSON Lines).")]
    = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="Folder (default RUN_DIR/export-FORMAT).")]
    = None,
    debug: DebugOpt = False,
) -> None:
    """Export a run's trace tables (with run.json and the column types in schema.json)."""

    def work() -> None:
        from cosim.analysis.export import check_format, export_run, trace_files
        from cosim.destinations import output_folder

        check_format(fmt)  # before export-FORMAT is made
        trace_files(run_dir)  # a complete run to export, before where the files go
        own = run_dir / f"export-{fmt}"
        with output_folder(out or own, "--out", "export", allowed_in=own, make=True,
                           of=f"{run_dir.resolve()} as {fmt}"):
            files = export_run(run_dir, fmt, out or own)
        for path in files:
            typer.echo(str(path))

    _guarded(debug, work)


@app.command()
def pretrain(
    out: Annotated[Path, typer.Option("--out", help="Checkpoint file to write (open_clip state dict).")],
    model: Annotated[str, typer.Option("--model", help="open_clip configuration.")] = "cosim-tiny",
    steps: Annotated[int, typer.Option("--steps", min=1, max=1_000_000)] = 300,
    segments: Annotated[int, typer.Option("--segments", min=2, max=100_000,
                                          help="Synthetic scenes.")] = 96,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**31 - 1)] = 0,
    precision: Annotated[str, typer.Option(
        "--precision", help="fp32, bf16 (refused without bfloat16 matrix units) or auto.")] = "fp32",
    device: Annotated[str, typer.Option(
        "--device", help="cpu, cuda, or auto (CUDA when there is a GPU).")] = "cpu",
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier checkpoint at --out.")]
    = False,
    debug: DebugOpt = False,
) -> None:
    """Pre-train the backbone on synthetic image-caption pairs (CLIP contrastive loss)."""

    def work() -> None:
        import torch
        from rich.progress import Progress

        from cosim.destinations import check_output_file
        from cosim.learning.openclip import open_clip_module
        from cosim.learning.precision import pick_device, resolve
        from cosim.learning.pretrain import PretrainConfig
        from cosim.learning.pretrain import pretrain as run_pretrain
        from cosim.learning.tensor_checks import torch_archive
        from cosim.registry import did_you_mean

        check_output_file(out, "--out", overwrite)
        if out.exists() and not torch_archive(out):
            raise InputError(None, "--out", f"{out} exists and is not a torch checkpoint; "
                             "--overwrite replaces only an earlier checkpoint")
        known = open_clip_module().list_models()
        if model not in known:
            raise InputError(None, "--model", f"unknown open_clip configuration {model!r}"
                             f"{did_you_mean(model, known)}")
        if device not in ("cpu", "cuda", "auto"):
            raise InputError(None, "--device", f"{device!r}: give cpu, cuda or auto")
        if device == "cuda" and not torch.cuda.is_available():
            raise InputError(None, "--device", "cuda: no CUDA device is available (torch "
                             f"{torch.__version__}); use cpu")
        on = pick_device(device)
        try:  # an unknown name or bf16 without bfloat16 units: refused before any work
            resolve(precision, on)
        except ValueError as exc:
            raise InputError(None, "--precision", f"{precision!r}: {exc}") from None
        cfg = PretrainConfig(model=model, steps=steps, segments=segments, seed=seed, precision=precision)
        with Progress(disable=quiet, console=_stderr_console()) as bar:
            task = bar.add_task("pre-training", total=steps)

            def progress(step: int, total: int, loss: float) -> None:
                bar.update(task, completed=step, description=f"pre-training  loss {loss:.3f}")

            report = run_pretrain(cfg, out, progress, on)
        typer.echo(f"wrote {out}: image->text retrieval {report['retrieval_before']:.2f} -> "
                   f"{report['retrieval_after']:.2f} on held-out pairs, loss "
                   f"{report['first_loss']:.2f} -> {report['last_loss']:.2f}")

    _guarded(debug, work)


data_app = typer.Typer(help="Datasets: synthetic Waymo-layout segments, checks.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the v2 layout into.")],
    segments: Annotated[int, typer.Option("--segments", min=1, max=10_000)] = 20,
    frames: Annotated[int, typer.Option("--frames", min=1, max=2_000)] = 40,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    debug: DebugOpt = False,
) -> None:
    """Write synthetic segments in the Waymo perception v2 layout."""

    def work() -> None:
        import time

        from cosim.destinations import output_folder
        from cosim.learning.data.synth import SynthConfig, generate
        from cosim.scenario.limits import MAX_SYNTHETIC_FRAMES

        if segments * frames > MAX_SYNTHETIC_FRAMES:  # the scenario's limit on the same work
            raise InputError(None, "--frames", f"{segments} segments x {frames} frames are "
                             f"{segments * frames:.3g} frames; at most {MAX_SYNTHETIC_FRAMES:.0e}")
        t0 = time.perf_counter()
        # new, or an earlier synthetic set of the same settings: regenerated as it was
        with output_folder(out, "--out", "data synth", make=True,
                           of=f"segments={segments} frames={frames} seed={seed}"):
            names = generate(out, SynthConfig(segments=segments, frames=frames, seed=seed))
        typer.echo(f"wrote {len(names)} segments x {frames} frames to {out} "
                   f"in {time.perf_counter() - t0:.1f} s")

    _guarded(debug, work)


@data_app.command("check")
def data_check(
    root: Annotated[Path, typer.Argument(help="A Waymo folder: v2 (one sub-folder per component) "
                                         "or v1 (<segment>.tfrecord files).")],
    debug: DebugOpt = False,
) -> None:
    """Read and decode every frame of every segment; exit 2 naming the first bad file."""

    def work() -> None:
        from cosim.learning.data.validate import check_any_dataset

        fmt, segments, frames = check_any_dataset(root)
        typer.echo(f"ok: {root}: Waymo {fmt}, {segments} segments, {frames} frames")

    _guarded(debug, work)


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="Scenario name: writes NAME.yaml.", show_default=False)],
    net: Annotated[Path | None, typer.Option("--net", help="A SUMO network (.net.xml).")] = None,
    osm: Annotated[Path | None, typer.Option(
        "--osm", help="An OpenStreetMap extract (.osm), converted to NAME.net.xml with netconvert.")]
    = None,
    folder: Annotated[Path, typer.Option("--dir", help="Folder for NAME.yaml (and NAME.net.xml).")]
    = Path("."),
    routes: Annotated[list[Path] | None, typer.Option(
        "--routes", help="Your SUMO routes (.rou.xml, repeatable): the traffic, instead of "
        "random trips.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing NAME.yaml.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Write a commented starter scenario for a network: random demand (or --routes), cells
    placed over it, learning off. `cosim validate` accepts it as written."""

    def work() -> None:
        from cosim.starter import write_starter

        out, summary, notes = write_starter(name, folder, net=net, osm=osm, force=force,
                                            routes=routes)
        for note in notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo(f"wrote {out}: {summary}; next: cosim validate {out} --show")

    _guarded(debug, work)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def main() -> None:
    """Console-script entry point. A usage error (an unknown option, a value of the wrong type)
    is one line and exit 2, as every other input error is."""
    try:
        code = app(standalone_mode=False)
    except Exception as exc:
        if getattr(exc, "exit_code", None) != 2 or not hasattr(exc, "format_message"):
            raise
        line = usage_line(exc)  # click's UsageError and its kinds
        if line:  # none after the help a bare command prints
            typer.echo(f"error: {line}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def usage_line(exc: Exception) -> str:
    """``--seed: Input should be a valid integer ...``: the option and what is wrong, one line."""
    message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    param = getattr(exc, "param", None)
    if isinstance(exc, typer.BadParameter) and param is not None and message:
        opts = getattr(param, "opts", None)
        return f"{opts[0] if opts else param.name}: {message}"
    return message


if __name__ == "__main__":
    main()
