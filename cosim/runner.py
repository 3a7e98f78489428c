"""Run one scenario: prepare inputs, create the run folder, drive the layers, write run.json.

run.json is written when the run starts (status ``running``) and rewritten when it ends, whether
it completes, fails or is interrupted; trace files of a run that did not complete are renamed
``*.incomplete.parquet`` so they never look complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import platform
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cosim
from cosim.engine import Engine, Layer
from cosim.errors import InputError
from cosim.mobility.build import network_file, prepare_inputs
from cosim.mobility.layer import MobilityLayer
from cosim.mobility.replay import ReplaySession
from cosim.mobility.session import SumoLaunch, open_session
from cosim.mobility.sumo_tools import sumo_version
from cosim.progress import RunProgress
from cosim.scenario import Scenario
from cosim.traces import TraceSet

LayerFactory = Callable[[Engine], Layer]


@dataclass
class RunResult:
    run_dir: Path
    status: str
    info: dict[str, Any] = field(default_factory=dict)


def default_run_dir(scenario: Scenario) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = scenario.output.root / f"{scenario.name}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def prepare_run_dir(run_dir: Path, source: Path | None) -> Path:
    """Create the run folder; reuse it only if it is empty or an earlier cosim run folder."""
    if run_dir.exists():
        if not run_dir.is_dir():
            raise InputError(None, "--out", f"{run_dir} exists and is not a folder")
        entries = list(run_dir.iterdir())
        if entries and not (run_dir / "run.json").exists():
            raise InputError(None, "--out", f"{run_dir} is not empty and not a cosim run folder")
        for entry in entries:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def versions() -> dict[str, str]:
    out = {"cosim": cosim.__version__, "sumo": sumo_version(),
           "python": platform.python_version()}
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
) -> RunResult:
    """Run the scenario to its duration; always leaves a run.json that says how it ended.

    ``announce`` hears which layers run once the inputs are known to be good."""
    inputs = prepare_inputs(scenario, source)  # bad inputs fail here, before any folder exists
    replay = _replay_session(scenario)
    if scenario.learning_enabled and scenario.learning.init_modules is not None:
        from cosim.learning.module_file import load_module_file

        load_module_file(scenario.learning.init_modules)  # a bad file is input, caught up front
    if announce is not None:
        announce(layer_status(scenario))
    run_dir = prepare_run_dir(out or default_run_dir(scenario), source)
    started = dt.datetime.now(dt.timezone.utc)
    info: dict[str, Any] = {
        "status": "running", "scenario_file": str(source) if source else None,
        "scenario": scenario.model_dump(mode="json"), "seed": scenario.seed,
        "versions": versions(), "layers": layer_status(scenario),
        "started_at": started.isoformat(timespec="seconds"),
        "inputs": {"net": str(inputs.net) if inputs.net else None,
                   "sumocfg": str(inputs.sumocfg) if inputs.sumocfg else None,
                   "routes": [str(p) for p in inputs.routes],
                   "additional": [str(p) for p in inputs.additional]},
    }
    _write_run_json(run_dir, info)
    traces = TraceSet(run_dir, scenario.output.row_group_rows)
    wall0 = time.perf_counter()
    engine: Engine | None = None
    status = "failed"
    try:
        launch = SumoLaunch(
            inputs=inputs, backend=scenario.mobility.backend,
            step_length_s=scenario.mobility.step_length_s, seed=scenario.seed,
            extra_options=tuple(scenario.mobility.sumo_options), log_file=run_dir / "sumo.log",
            pipeline=scenario.mobility.pipeline,
        )
        session_context = (contextlib.nullcontext(replay) if replay is not None
                           else open_session(launch))
        with session_context as session:
            engine = Engine(scenario, traces)
            mobility = MobilityLayer(session, scenario)  # SUMO's warm-up starts
            radio = None
            if scenario.radio is not None:
                from cosim.radio.layer import RadioLayer

                radio = RadioLayer(scenario, network_file(inputs), source)
            engine.add_layer(mobility)
            if radio is not None:
                engine.add_layer(radio)
            if scenario.learning_enabled:
                from cosim.learning.federated.server import FederatedLayer
                from cosim.learning.federated.wiring import learning_ports

                ports = learning_ports(scenario, engine.env, mobility, radio)
                engine.add_layer(FederatedLayer(scenario, ports))
            for factory in extra_layers:
                engine.add_layer(factory(engine))
            tick_s = max(scenario.mobility.step_length_s, scenario.duration_s / 1000)
            with RunProgress(scenario.duration_s, engine.progress_fields, quiet) as progress:
                engine.run(progress.tick, tick_s)
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except Exception as exc:
        info["error"] = exc.line() if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        raise
    finally:
        info["status"] = status
        info["traces"] = traces.close(complete=status == "complete")
        info["wall_time_s"] = round(time.perf_counter() - wall0, 3)
        info["sim_time_s"] = engine.env.now if engine is not None else 0.0
        info["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if engine is not None:
            info["summary"] = engine.summary()
        _write_run_json(run_dir, info)
    return RunResult(run_dir, status, info)


def _replay_session(scenario: Scenario) -> ReplaySession | None:
    """The recorded trace the scenario replays, checked to cover the whole run."""
    m = scenario.mobility
    if m.replay is None:
        return None
    replay = ReplaySession(m.replay, m.step_length_s)
    needed = math.ceil(scenario.duration_s / m.step_length_s - 1e-9) * m.step_length_s
    if replay.end_s < needed - 1e-6:
        raise InputError(m.replay, "mobility.replay",
                         f"the trace ends at {replay.end_s:g} s; the scenario needs {needed:g} s "
                         "(shorten duration_s)")
    return replay


def _write_run_json(run_dir: Path, info: dict[str, Any]) -> None:
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(run_dir / "run.json")
