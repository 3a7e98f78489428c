"""Run one scenario: prepare inputs, create the run folder, drive the layers, write run.json.

run.json is written when the run starts (status ``running``, with the writer's pid, host and a
heartbeat) and rewritten when it ends, whether it completes, fails or is interrupted; trace files
of a run that did not complete are renamed ``*.incomplete.parquet`` so they never look complete.
The run writes into ``<out>.partial`` and becomes ``<out>`` only when complete (cosim.run_folder).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cosim
from cosim import interrupts
from cosim.bounded_read import file_sha256, read_json_file
from cosim.destinations import (
    check_not_in_results,
    check_sumo_outputs,
    sumo_written_paths,
    writes_file,
)
from cosim.engine import Engine, Layer
from cosim.errors import InputError, MissingDependencyError, warnings_after_checks
from cosim.mobility.backends import open_session
from cosim.mobility.build import SumoInputs, check_sumo_loads, network_file, prepare_inputs
from cosim.mobility.layer import MobilityLayer
from cosim.mobility.replay import ReplaySession
from cosim.mobility.session import GuiOptions, SumoLaunch, TraciSession
from cosim.mobility.sumo_tools import binary, sumo_version
from cosim.names import JOURNAL_DIR
from cosim.progress import RunProgress, watch
from cosim.radio.boundary import check_cells_inside
from cosim.run_folder import (
    DISK_FULL,
    HEARTBEAT_S,
    PARTIAL_SUFFIX,
    DiskFullError,
    Heartbeat,
    RunFailedError,
    RunFolder,
    check_out_name,
    partial_path,
    read_run_info,
    read_status,
    write_atomically,
    writer_identity,
)
from cosim.scenario import EXTENSION_FIELDS, Scenario
from cosim.scenario.base import named_paths, user_references
from cosim.scenario.mobility import GuiConfig
from cosim.traces import TraceSet

LayerFactory = Callable[[Engine], Layer]


@dataclass
class RunResult:
    run_dir: Path
    status: str
    info: dict[str, Any] = field(default_factory=dict)


def _refuse_inputs_in(scenario: Scenario, source: Path | None, folders: Iterable[Path]) -> None:
    """An input inside the run's own folder or its staging folder would be replaced or removed
    by the run that reads it (``--overwrite``, a discarded attempt): run.json would name a file
    that no longer holds what the run read."""
    inputs = [(name, path.resolve()) for name, path in named_paths(scenario)
              if not name.startswith("output.")]
    for folder in folders:
        where = folder.resolve()  # a link to the folder leads into it too
        for name, path in inputs:
            if path.is_relative_to(where):
                raise InputError(source, name, f"{path} is inside {folder}, which this run "
                                 "writes; copy it elsewhere first")


def _sumo_writers(scenario: Scenario) -> frozenset[str]:
    """The options the scenario's SUMO writes files with (none given: nothing to look up)."""
    from cosim.destinations import SUMO_WRITERS, sumo_writers

    if not scenario.mobility.sumo_options:
        return frozenset(SUMO_WRITERS)
    try:
        return sumo_writers(binary("sumo"))
    except MissingDependencyError:  # a replay needs no SUMO: the fixed list then
        return sumo_writers(None)


def check_sumo_output_places(scenario: Scenario, source: Path | None) -> None:
    """What ``cosim validate`` can tell of the files SUMO will write, knowing neither ``--out``
    nor ``--overwrite``: none into a folder of results, none a link, a hard link or a folder,
    each in a writable folder (the run checks the rest before its folder)."""
    writers = _sumo_writers(scenario)
    check_sumo_outputs(scenario.mobility.sumo_options, default_run_dir(scenario), replace=None,
                       writers=writers, declared=_declared_outputs(scenario, writers),
                       source=source)


def refuse_sumo_outputs_in_study(scenario: Scenario, named: Path | None, study: str) -> None:
    """A compare or onboarding runs its scenario many times: a file SUMO writes (an output
    option, or one an additional file or sumocfg declares) would be written by each run over the
    last one's. InputError before the study's folder."""
    writers = _sumo_writers(scenario)
    outputs = [("mobility.sumo_options", option, path)
               for option, path in sumo_written_paths(scenario.mobility.sumo_options, writers)]
    outputs += _declared_outputs(scenario, writers)
    if outputs:
        field, what, path = outputs[0]
        raise InputError(named, field, f"{what} {path}: each of the {study}'s runs would write "
                         "this file over the last one's; remove it (cosim run writes it)")


def default_run_dir(scenario: Scenario) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = scenario.output.root / f"{scenario.name}-{stamp}"
    candidate, n = base, 1
    while candidate.exists() or partial_path(candidate).exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def versions(scenario: Scenario | None = None) -> dict[str, str]:
    """What ran; SUMO's version where SUMO runs (a replay needs no SUMO installed: "not used"
    where it is missing)."""
    replay = scenario is not None and scenario.mobility.replay is not None
    try:
        sumo = sumo_version()
    except MissingDependencyError:
        if not replay:
            raise
        sumo = "not used (replay; SUMO not installed)"
    out = {"cosim": cosim.__version__, "sumo": sumo, "python": platform.python_version()}
    for dist in ("simpy", "numpy", "pyarrow", "pydantic", "libsumo", "traci"):
        try:
            out[dist] = version(dist)
        except Exception:  # not installed: nothing to record
            continue
    return out


def layer_status(scenario: Scenario) -> dict[str, str]:
    """Which layers this run drives (said by the CLI and recorded in run.json)."""
    replay = scenario.mobility.replay
    return {
        "mobility": f"replay of {replay}" if replay else f"SUMO via {scenario.mobility.backend}",
        "radio": ("SimPy radio (3GPP TR 38.901)" if scenario.radio is not None
                  else "not configured (no radio section)"),
        **({"sidelink": ("V2V sidelink (3GPP TR 37.885) among the clients" if scenario.learning_enabled
                         else "not run: it evaluates the clients' links, and learning is off")}
           if scenario.radio is not None and scenario.radio.sidelink is not None else {}),
        "learning": ("federated trainer" if scenario.learning_enabled
                     else "disabled (learning.enabled: false)" if scenario.learning is not None
                     else "not configured (no learning section)"),
    }


def run_scenario(
    scenario: Scenario,
    source: Path | None = None,
    out: Path | None = None,
    quiet: bool = False,
    extra_layers: Iterable[LayerFactory] = (),
    announce: Callable[[dict[str, str]], None] | None = None,
    overwrite: bool = False,
    on_tick: Callable[[float, float], None] | None = None,
    resume: bool = False,
    in_study: bool = False,
) -> RunResult:
    """Run the scenario to its duration; always leaves a run.json that says how it ended.

    ``announce`` hears which layers run once the inputs are known to be good. ``overwrite``
    lets a complete run replace an earlier run at ``out`` (refused otherwise). ``on_tick(now,
    duration)`` hears the clock (compare's per-run progress). ``resume`` keeps the training
    journal of an interrupted attempt at ``out`` (see ``resume_target``). ``in_study``: ``out``
    is one of a compare's or onboarding's runs, inside the study's folder (no other run is
    written inside a folder of results)."""
    folder = RunFolder(out or default_run_dir(scenario), overwrite)
    if not in_study:
        check_not_in_results(folder.out.parent, "--out")
    folder.check(resuming=resume)  # a refused --out is said before any input is built
    _refuse_inputs_in(scenario, source, (folder.out, folder.partial))
    writers = _sumo_writers(scenario)
    # on --resume, --overwrite replaces a complete OUT, never a file the attempt did not write
    declared = _declared_outputs(scenario, writers)  # read once: the files may change later
    check_sumo_outputs(scenario.mobility.sumo_options, folder.out, replace=overwrite and not resume,
                       writers=writers, own=_recorded_sumo_outputs(folder.partial) if resume else None,
                       declared=declared, source=source,
                       earlier=_recorded_sumo_outputs(folder.out) if overwrite else None)
    sumo_outputs = _sumo_output_paths(scenario, writers, declared)
    with watch("preparing the inputs (network, demand, data checks)", quiet):
        inputs, replay = check_run_inputs(scenario, source)  # bad inputs fail here, before any folder
    if announce is not None:
        announce(layer_status(scenario))
    started = dt.datetime.now(dt.timezone.utc)
    info: dict[str, Any] = {
        "status": "running", **writer_identity(), "scenario_file": str(source) if source else None,
        "scenario": scenario.model_dump(mode="json"), "seed": scenario.seed,
        "seeds": scenario.seeds(),
        "versions": versions(scenario), "layers": layer_status(scenario),
        "started_at": started.isoformat(timespec="seconds"),
        **({"torch_threads": _torch_threads(scenario), "learning_precision": _precision(scenario)}
           if scenario.learning_enabled else {}),
        "inputs": {"net": str(inputs.net) if inputs.net else None,
                   "sumocfg": str(inputs.sumocfg) if inputs.sumocfg else None,
                   "routes": [str(p) for p in inputs.routes],
                   "additional": [str(p) for p in inputs.additional]},
    }
    traces: TraceSet | None = None
    run_dir = folder.open(keep=JOURNAL_DIR if resume else None)  # from here run.json says how
    wall0 = time.perf_counter()
    engine: Engine | None = None
    status = "failed"
    refused = False  # a resume its journal turned down: the attempt it resumed is put back
    try:
        _write_run_json(run_dir, info)
        traces = TraceSet(run_dir, scenario.output.row_group_rows)
        early_beats = [EARLY_BEATS]

        def beat(i: dict[str, Any]) -> None:  # a run killed later may resume its SUMO outputs
            i["sumo_outputs"] = _sumo_output_files(sumo_outputs)
            _write_run_json(run_dir, i)
            if len(i["sumo_outputs"]) < len(sumo_outputs) and early_beats[0] > 0:
                early_beats[0] -= 1  # SUMO has not opened them all yet: again at the next tick
                heartbeat.again()

        heartbeat = Heartbeat(beat, info)
        with (RunProgress(scenario.duration_s, lambda: {}, quiet) as progress,
              warnings_to_log(run_dir / WARNINGS_LOG) as warned):
            engine = _drive(scenario, inputs, replay, source, run_dir, traces, extra_layers,
                            progress, heartbeat, on_tick)
        info["library_warnings"] = warned()
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except Exception as exc:
        full = _disk_full(exc, run_dir)
        if full is None:
            refused = resume and isinstance(exc, InputError)
            info["error"] = exc.line() if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            raise
        info["error"] = full
        kept = (run_dir / "run.json").exists()  # else nothing was written: no folder is kept
        raise DiskFullError(f"{full} (run folder {run_dir})" if kept else full) from None
    finally:
        info["status"] = status
        info["traces"] = _close_traces(traces, status == "complete", info)
        status = info["status"]  # a table that could not be closed fails the run
        info["sumo_outputs"] = _sumo_output_digests(sumo_outputs)
        if status == "complete":  # what a later reader (replay, oracle) checks it reads unchanged
            info["trace_sha256"] = {name: file_sha256(run_dir / file)
                                    for name, file in info["traces"].items()}
        info["wall_time_s"] = round(time.perf_counter() - wall0, 3)
        info["sim_time_s"] = engine.env.now if engine is not None else 0.0
        info["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if engine is not None:
            info["summary"] = engine.summary()
        if not refused and not _final_run_json(run_dir, info):
            status = info["status"] = "failed"
        run_dir = folder.finish(status == "complete", restore=refused)
    if status != "complete":  # the run went to its end, then its outputs could not be written
        raise RunFailedError(f"{info.get('error', 'the outputs could not be written')} "
                             f"(run folder {run_dir}, run.json says failed)")
    return RunResult(run_dir, status, info)


def _declared_outputs(scenario: Scenario, writers: frozenset[str]) -> list[tuple[str, str, Path]]:
    """(field, what declares it, path) of each file the scenario's additional files and sumocfg
    make SUMO write."""
    from cosim.mobility.declared_outputs import declared_sumo_outputs

    m = scenario.mobility
    gui_settings = m.gui.settings_file if m.backend == "gui" and m.gui is not None else None
    return [(d.field, d.what, d.path) for d in declared_sumo_outputs(
        list(m.additional), m.sumocfg, lambda name: writes_file(name, writers), m.net,
        gui_settings)]


def _sumo_output_paths(scenario: Scenario, writers: frozenset[str],
                       declared: list[tuple[str, str, Path]]) -> list[Path]:
    """Every file the scenario makes SUMO write: its options' and ``declared`` (what its input
    files declare)."""
    paths = [p for _, p in sumo_written_paths(scenario.mobility.sumo_options, writers)]
    return [p.absolute() for p in [*paths, *(p for _, _, p in declared)]]


def _sumo_output_digests(outputs: list[Path]) -> dict[str, str]:
    """The SHA-256 of each file the scenario's SUMO outputs wrote, by absolute path: a resumed
    attempt replaces only these, and only while they hold what this run wrote."""
    digests = {}
    for where in outputs:
        with contextlib.suppress(OSError):
            if where.is_file() and not where.is_symlink():
                digests[str(where)] = file_sha256(where)
    return digests


def _sumo_output_files(outputs: list[Path]) -> dict[str, dict[str, Any]]:
    """Which file (device, inode) each of the scenario's SUMO outputs is while the run goes, its
    size now (SUMO's outputs only grow) and until when SUMO may have written it if the run is
    killed before the next heartbeat."""
    files = {}
    until = time.time() + HEARTBEAT_S + 5.0
    for where in outputs:
        with contextlib.suppress(OSError):
            st = where.lstat()
            if stat.S_ISREG(st.st_mode):
                files[str(where)] = {"file": [st.st_dev, st.st_ino], "size_at_least": st.st_size,
                                     "written_until": until}
    return files


def _recorded_sumo_outputs(run_dir: Path) -> dict[str, Any]:
    """What the run in ``run_dir`` recorded of its SUMO output files (``sumo_outputs``): none
    when it is no run or says nothing readable."""
    try:
        recorded = read_json_file(run_dir / "run.json", "run.json").get("sumo_outputs")
    except (OSError, InputError, AttributeError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {k: v for k, v in recorded.items() if isinstance(k, str)}


WARNINGS_LOG = "warnings.log"
EARLY_BEATS = 20  # ticks at most that run.json is rewritten on until SUMO's outputs all exist
# torch.save's errors for a failed write come from its zip writer, named in the message
TORCH_WRITER = ("inline_container", "PytorchStreamWriter")


def _disk_full(exc: BaseException, run_dir: Path) -> str | None:
    """What to say when ``exc`` means the disk filled up (None otherwise): an OSError ENOSPC
    (naming its file), or torch.save's RuntimeError while the run folder's disk has no room."""
    if isinstance(exc, OSError):
        if exc.errno not in DISK_FULL:
            return None
        # SimPy re-raises a process's error as a copy made from its args; the file is in the cause
        filename = exc.filename or getattr(exc.__cause__, "filename", None)
        where = f" writing {filename}" if filename else ""
        return f"the disk is full{where}: {exc.strerror}"
    if isinstance(exc, RuntimeError) and any(w in str(exc) for w in TORCH_WRITER):
        try:
            free = os.statvfs(run_dir)
        except OSError:
            return None
        if free.f_bavail * free.f_frsize < 1 << 20:  # under a megabyte left: that is why
            return "the disk is full writing a model file (global_modules.pt)"
    return None


@contextlib.contextmanager
def warnings_to_log(path: Path):
    """Python warnings of the libraries (torchmetrics, PIL, ...) go to ``path`` in the run folder,
    not between the progress lines; yields a function giving how many were written."""
    import threading
    import warnings

    lock, count = threading.Lock(), [0]

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        with lock, open(path, "a", encoding="utf-8") as f:
            f.write(warnings.formatwarning(message, category, filename, lineno, line))
            count[0] += 1

    before = warnings.showwarning
    warnings.showwarning = show
    try:
        yield lambda: count[0]
    finally:
        warnings.showwarning = before


def _drive(scenario: Scenario, inputs: Any, replay: ReplaySession | None, source: Path | None,
           run_dir: Path, traces: TraceSet, extra_layers: Iterable[LayerFactory],
           progress: RunProgress, heartbeat: Heartbeat,
           on_tick: Callable[[float, float], None] | None) -> Engine:
    """Build the layers (SUMO's warm-up, the learning set-up) and run the clock."""
    m = scenario.mobility
    gui = m.gui if m.gui is not None else GuiConfig()
    launch = SumoLaunch(
        inputs=inputs, backend=m.backend, step_length_s=m.step_length_s, seed=scenario.seed,
        extra_options=tuple(m.sumo_options), log_file=run_dir / "sumo.log", pipeline=m.pipeline,
        gui=GuiOptions(gui.delay_ms, gui.settings_file, gui.keep_open),
    )
    session_context = (contextlib.nullcontext(replay) if replay is not None
                       else open_session(launch))
    def phase(text: str | None) -> None:
        interrupts.check()  # a signal whose raise was lost in a C callback ends the run here
        progress.phase(text)

    with session_context as session:
        engine = Engine(scenario.duration_s, traces)
        phase(f"warm-up: SUMO, {scenario.mobility.warmup_s:g} s simulated"
                       if replay is None else "warm-up: loading the recorded mobility")
        mobility = MobilityLayer(session, m, scenario.output.mobility_period_s,
                                 network_file(inputs))  # SUMO's warm-up starts
        radio = None
        if scenario.radio is not None:
            from cosim.radio.layer import RadioLayer

            phase("warm-up: radio (cells, channel)")
            radio = RadioLayer(scenario.radio, scenario.seed, m.step_length_s, network_file(inputs),
                               source)
        engine.add_layer(mobility)
        sidelink = None
        if radio is not None:
            engine.add_layer(radio)
            if radio.cfg.sidelink is not None and scenario.learning_enabled:  # for the clients
                from cosim.radio.sidelink import SidelinkLayer

                sidelink = SidelinkLayer(radio.cfg.sidelink, scenario.seed, m.step_length_s)
                engine.add_layer(sidelink)
        if scenario.learning_enabled:
            from cosim.learning.federated.server import FederatedLayer
            from cosim.learning.federated.wiring import learning_ports

            phase("warm-up: learning (data, model, pre-trained backbone)")
            from cosim.learning.federated.settings import FederatedSettings

            settings = FederatedSettings.of(scenario)
            ports = learning_ports(settings.clients, settings.scheduling, engine.env, mobility, radio,
                                   sidelink)
            engine.add_layer(FederatedLayer(settings, ports))
        if m.backend == "gui" and replay is None:  # cells as POIs, vehicles by serving cell
            from cosim.mobility.gui import GuiLayer

            assert isinstance(session, TraciSession)  # the gui backend opens SUMO over TraCI
            engine.add_layer(GuiLayer(session.connection, gui.colour_period_s))
        for factory in extra_layers:
            engine.add_layer(factory(engine))
        tick_s = max(scenario.mobility.step_length_s, scenario.duration_s / 1000)
        progress.fields = engine.progress_fields
        phase(None)

        def tick(now: float) -> None:
            interrupts.check()
            progress.tick(now)
            heartbeat()
            if on_tick is not None:
                on_tick(now, scenario.duration_s)

        engine.run(tick, tick_s)
    return engine


def _close_traces(traces: TraceSet | None, complete: bool, info: dict[str, Any]) -> dict[str, str]:
    """Close the tables; a table that cannot be closed (the disk is full) fails the run."""
    if traces is None:
        return {}
    try:
        return traces.close(complete=complete)
    except OSError as exc:
        info["status"] = "failed"
        info.setdefault("error", f"closing the traces: {exc.strerror or exc}")
        return {}


def resume_target(path: Path) -> tuple[Scenario, Path, Path | None]:
    """An interrupted, failed or crashed run to resume: its scenario (as run.json resolved it),
    the ``--out`` it completes into, and its scenario file. ``path`` is ``OUT`` or
    ``OUT.partial``."""
    from cosim.scenario_loader import validate_mapping

    partial, out = _resume_folders(path)
    if not partial.is_dir():
        if (out / "run.json").is_file():
            raise InputError(None, "--resume", f"{out} is complete: nothing to resume")
        raise InputError(None, "--resume", f"no interrupted run at {partial}")
    info = read_run_info(partial, needs=RESUME_NEEDS)
    status, _ = read_status(partial)
    if status == "running":
        raise InputError(None, "--resume", f"{partial} is still being written by pid "
                         f"{info.get('pid')} on {info.get('host')}")
    if status == "complete":  # a complete run left here (its --out was taken): keep it as it is
        raise InputError(None, "--resume", f"{partial} is complete: nothing to resume (rename it "
                         "to keep it as a run)")
    if status not in ("interrupted", "failed", "crashed"):
        raise InputError(None, "--resume", f"{partial}: run.json's status is not one cosim "
                         "resumes (interrupted, failed or crashed)")
    _refuse_user_code(info["scenario"], partial / "run.json")
    source = Path(info["scenario_file"]) if info.get("scenario_file") else None
    if source is not None and not source.is_file():  # recorded relative to another folder
        source = None
    # errors name run.json, whose values these are; relative paths start at the scenario's folder
    scenario = validate_mapping(dict(info["scenario"]), partial / "run.json",
                                (source or partial / "run.json").resolve().parent)
    _check_seeds(scenario, info, partial / "run.json")
    threads = info.get("torch_threads")
    cfg = scenario.learning  # None or disabled: neither is read below
    if (scenario.learning_enabled and cfg is not None and cfg.local.threads is None and threads
            and cfg.local.backend != "threads"):
        # the same float rounding as the interrupted run: its torch threads
        local = cfg.local.model_copy(update={"threads": int(threads)})
        learning = cfg.model_copy(update={"local": local})
        scenario = scenario.model_copy(update={"learning": learning})
    precision = info.get("learning_precision")
    cfg = scenario.learning
    if scenario.learning_enabled and cfg is not None and precision and precision != cfg.precision:
        # what the interrupted run computed in (``auto`` resolved there), never a silent switch
        if precision != "fp32" and _precision(scenario) != precision:
            raise InputError(None, "--resume", f"the run computed in {precision} (learning.precision: "
                             f"{cfg.precision}), which this machine cannot: resume it "
                             "on one like the machine that started it")
        learning = cfg.model_copy(update={"precision": precision})
        scenario = scenario.model_copy(update={"learning": learning})
    if (partial / JOURNAL_DIR).is_dir():  # damaged entries, another scenario's: said now, not mid-run
        _check_journal(scenario, partial / JOURNAL_DIR)
    return scenario, out, source


RESUME_NEEDS = ("status", "scenario")  # what run.json must hold for a resume


def _refuse_user_code(raw: Any, path: Path) -> None:
    """run.json is data: it never chooses a module to import. Checked on its scenario as plain
    data, before anything validates, builds or imports from it."""
    named = user_references(raw, EXTENSION_FIELDS)
    if named:
        field, value = named[0]
        raise InputError(path, f"scenario.{field}", f"{value!r} is code from a module; cosim "
                         "imports that only from a scenario file you give: run that scenario "
                         "again instead")


def _check_seeds(scenario: Scenario, info: dict[str, Any], path: Path) -> None:
    """run.json records the seeds the run drew from twice (its scenario, and beside it): an
    edited one is another run's scenario, refused before the folder is touched."""
    recorded = info.get("seeds")
    edited_seeds = isinstance(recorded, dict) and recorded != scenario.seeds()
    if info.get("seed", scenario.seed) != scenario.seed or edited_seeds:
        raise InputError(path, "scenario.seed", f"the run drew from seed {info.get('seed')} "
                         f"({recorded}), its scenario now says {scenario.seed} "
                         f"({scenario.seeds()}): run.json was edited; the journal is not this "
                         "scenario's run")


def _check_journal(scenario: Scenario, folder: Path) -> None:
    """Every journal entry checked against the resumed run before its folder is touched: the
    scenario it was trained for (run.json's, as the resume resolved it), module names, shapes
    and dtypes from the model on the meta device (no weights), clients and tasks from the
    scenario."""
    from cosim.learning.federated.journal_checks import JournalModel, check_journal, scenario_digest

    digest = scenario_digest(scenario)
    cfg = scenario.learning
    if not scenario.learning_enabled or cfg is None:
        check_journal(folder, scenario=digest)
        return
    from cosim.learning.backbone import check_checkpoint
    from cosim.learning.deployed import meta_model

    try:  # run.json's model name, before the model is built from it
        check_checkpoint(cfg.model.name, None)
    except InputError as exc:
        raise InputError(folder.parent / "run.json", f"scenario.{exc.field}", exc.message) from None
    model = meta_model(cfg.model)
    names = model.module_names()
    modules = {k: (tuple(v.shape), v.dtype) for k, v in model.export_modules(names).items()}
    check_journal(folder, JournalModel(modules, scenario.clients.count, len(cfg.model.tasks),
                                       tuple(names)), digest)


def _resume_folders(path: Path) -> tuple[Path, Path]:
    """``--resume``'s staging folder and the ``--out`` it completes into, from ``OUT`` or
    ``OUT.partial``; a path that names no folder cosim could have written is refused."""
    absolute = path.absolute()  # "." and "" name the working folder
    if not absolute.name or absolute.name in (".", ".."):
        raise InputError(None, "--resume", f"{path}: name the run folder to resume "
                         f"(OUT or OUT.partial), not {absolute}")
    name = absolute.name.removesuffix(PARTIAL_SUFFIX)
    if not name:
        raise InputError(None, "--resume", f"{path}: not the name of a run folder")
    out = absolute.with_name(name)
    check_out_name(out, "--resume")
    return partial_path(out), out


def _precision(scenario: Scenario) -> str:
    """What ``learning.precision`` resolves to on this machine (``auto`` included)."""
    from cosim.learning.precision import UnsupportedPrecision, pick_device, resolve

    cfg = scenario.learning
    assert cfg is not None  # asked of a learning run only
    try:
        return resolve(cfg.precision, pick_device(cfg.local.device)).name
    except UnsupportedPrecision:
        return "fp32"


def _torch_threads(scenario: Scenario) -> int:
    """The torch threads the run's training uses (a resume uses the same: same rounding); with
    worker threads, this process's (the workers' are in ``summary.learning.trainer``)."""
    cfg = scenario.learning
    assert cfg is not None  # asked of a learning run only
    if cfg.local.threads is not None:
        return cfg.local.threads
    import torch

    return torch.get_num_threads()


def check_run_inputs(scenario: Scenario, source: Path | None
                     ) -> tuple[SumoInputs, ReplaySession | None]:
    """Every input a run reads, built or checked before its folder exists (``cosim validate``
    runs the same): SUMO's network and demand (cached), the cells on it, a replayed trace, the
    modules to start from, the checkpoint, the data and the oracle's windows. Warnings are
    said once every check has passed."""
    with warnings_after_checks():
        return _check_run_inputs(scenario, source)


def _check_run_inputs(scenario: Scenario, source: Path | None
                      ) -> tuple[SumoInputs, ReplaySession | None]:
    inputs = prepare_inputs(scenario.mobility, scenario.seed, scenario.duration_s, source,
                            lambda net: check_cells_inside(scenario.radio, net, source))
    replay = _replay_session(scenario, inputs)
    if replay is None:  # what SUMO will load, loaded by SUMO now (cached)
        check_sumo_loads(inputs, scenario.mobility.sumo_options, source)
    if scenario.mobility.geo_origin == "network":  # the network must carry its projection
        import numpy as np

        from cosim.mobility.layer import geo_reference

        geo = geo_reference("network", network_file(inputs))
        assert geo is not None  # "network" gives a reference or raises
        geo.lonlat(np.array([0.0]), np.array([0.0]))  # pyproj is there
    if scenario.radio is not None and not isinstance(scenario.radio.cells, list):
        _check_generated_cells(scenario, inputs, source)
    if scenario.radio is not None and scenario.radio.channel.buildings is not None:
        _check_buildings(scenario, inputs, source)
    cfg = scenario.learning
    if scenario.learning_enabled and cfg is not None and cfg.init_modules is not None:
        from cosim.learning.deployed import meta_model
        from cosim.learning.module_file import check_fits, load_module_file

        # a bad file is input, caught up front: readable, finite, and fitting this model's
        # modules (their shapes and dtypes from the model built on the meta device: no weights)
        saved = load_module_file(cfg.init_modules)
        model = meta_model(cfg.model)
        check_fits(cfg.init_modules, saved, model.export_modules(model.module_names()))
    from cosim.learning.run_inputs import check_learning_inputs

    try:
        check_learning_inputs(scenario)
    except InputError as exc:  # a scenario field's value: the scenario file says it
        if exc.file is not None or source is None or not (exc.field or "").startswith(
                ("learning.", "aggregation.")):
            raise
        raise InputError(source, exc.field, exc.message) from None
    sched = scenario.scheduling
    if (scenario.learning_enabled and not scenario.clients.ideal_connectivity
            and "oracle" in (sched.policy, sched.predictor)):
        from cosim.radio.prediction import check_windows_source

        assert sched.oracle_windows is not None  # the scheduling section requires it for the oracle
        check_windows_source(sched.oracle_windows, scenario.model_dump(mode="json"),
                             replay.vehicles() if replay is not None else None)
    return inputs, replay


def _check_generated_cells(scenario: Scenario, inputs: SumoInputs, source: Path | None) -> None:
    """The cell generators place at least their cells on the network (e.g. a lattice with no
    site near a road is refused here, not in the warm-up)."""
    import sumolib

    from cosim.radio.cells import build_cells

    net = network_file(inputs)
    assert scenario.radio is not None  # checked for a scenario with a radio section only
    try:
        build_cells(scenario.radio, sumolib.net.readNet(str(net)) if net is not None else None)
    except ValueError as exc:
        raise InputError(source, "radio.cells", str(exc)) from None


def _check_buildings(scenario: Scenario, inputs: SumoInputs, source: Path | None) -> None:
    """The buildings file parses into polygons (lon/lat ones through the network)."""
    import xml.etree.ElementTree as ET

    from cosim.radio.buildings import read_buildings

    assert scenario.radio is not None  # checked for a scenario with buildings only
    channel = scenario.radio.channel
    buildings = channel.buildings
    assert buildings is not None
    try:
        try:
            read_buildings(buildings, tuple(channel.building_types))
        except ValueError:  # lon/lat polygons: converted through the network
            import sumolib

            read_buildings(buildings, tuple(channel.building_types),
                           sumolib.net.readNet(str(network_file(inputs))))
    except (ET.ParseError, ValueError, InputError) as exc:
        said = exc.message if isinstance(exc, InputError) else str(exc)
        raise InputError(source, "radio.channel.buildings",
                         f"cannot read {buildings.name}: {said}") from None


def _replay_session(scenario: Scenario, inputs: SumoInputs) -> ReplaySession | None:
    """The recorded trace the scenario replays, checked to cover the whole run and to lie on
    the scenario's network."""
    m = scenario.mobility
    if m.replay is None:
        return None
    replay = ReplaySession(m.replay, m.step_length_s)
    net = network_file(inputs)
    if net is not None:
        from cosim.mobility.location import read_location

        replay.check_inside(read_location(net).boundary, net)
    needed = math.ceil(scenario.duration_s / m.step_length_s - 1e-9) * m.step_length_s
    if replay.covers_s < needed - 1e-6:
        raise InputError(m.replay, "mobility.replay",
                         f"the trace ends at {replay.covers_s:g} s; the scenario needs {needed:g} s "
                         "(shorten duration_s)")
    if replay.start_s >= scenario.duration_s:
        raise InputError(m.replay, "mobility.replay", f"the trace starts at {replay.start_s:g} s, "
                         f"after the run's {scenario.duration_s:g} s: no vehicle would be replayed")
    return replay


def _write_run_json(run_dir: Path, info: dict[str, Any]) -> None:
    """run.json replaced whole: a failed write (a full disk) leaves the previous one."""
    text = json.dumps(info, indent=2, sort_keys=False) + "\n"
    write_atomically(run_dir / "run.json", text.encode("utf-8"), tmp=run_dir / "run.json.tmp")


# what a failed run's run.json keeps when the disk is full: what --resume and status read
RESUME_RECORD = ("status", "pid", "host", "heartbeat_at", "scenario_file", "scenario", "seed",
                 "seeds", "layers", "started_at", "torch_threads", "learning_precision",
                 "finished_at", "error", "sumo_outputs")


def _final_run_json(run_dir: Path, info: dict[str, Any]) -> bool:
    """Write the final run.json. On a full disk, rewrite the previous one in place with the
    record a resume needs, without indentation: no bigger than the indented one it replaces, so
    it takes no new blocks. Returns whether the full record was written."""
    try:
        _write_run_json(run_dir, info)
        return True
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        reason = f"the disk is full writing run.json: {exc.strerror}"
    info.update(status="failed", error=info.get("error") or reason)
    short = {k: info[k] for k in RESUME_RECORD if k in info}
    data = (json.dumps(short, separators=(",", ":")) + "\n").encode("utf-8")
    path = run_dir / "run.json"
    with contextlib.suppress(OSError):  # none written yet, or no room: the previous one stays
        if len(data) <= path.stat().st_size:
            with open(path, "r+b") as f:
                f.write(data)
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
    return False
