"""The paper's task-onboarding study (section VI), run inside cosim with real connectivity.

For each arriving task, the three other tasks are first learnt with FedAvg (ideal connectivity,
every client every round) and that global model is saved once; every method then starts from it:
the arriving task's head from scratch, the modality adapters (and, where the method has it, the
shared task adapter) fine-tuned, the three learnt heads frozen but still in the loss (their
gradients are what GradNorm and CAGrad balance against the new task's). Each method runs with
connectivity-gated rounds (the scenario's radio, scheduling and deadline, replaying the seed's
recorded mobility) and with ideal connectivity (every client completes every round: the paper's
own setting).

NTA methods build the model without the shared task adapter, so they start from a model
pre-trained without it (the same rounds, data and seed): a model pre-trained with the adapter
and then stripped of it would have heads fitted to features the adapter had changed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosim.bounded_read import read_json_file
from cosim.compare import (
    aggregation_section,
    check_kept_runs,
    check_recording_inputs,
    check_splits,
    recording_jobs,
    run_jobs,
)
from cosim.compare_job import RunJob
from cosim.destinations import (
    STUDY_STATES,
    check_study_free,
    check_study_out,
    foreign_in_study,
    study_folder,
    study_lock,
    study_writes,
)
from cosim.errors import InputError
from cosim.names import (
    PRETRAINED,
    RECORDINGS,
    TASKS,
    onboarding_pretrained_dir,
    onboarding_run_dir,
    recording_dir,
)
from cosim.runner import refuse_sumo_outputs_in_study
from cosim.scenario import OnboardingConfig
from cosim.scenario_loader import Override, ScenarioSpec

# method -> (shared task adapter, gradient balancing)
METHODS = {
    "FedAdapt": (True, "cagrad"),
    "NTA": (False, "sum"),
    "NTA+GR": (False, "gradnorm"),
    "NTA+CA": (False, "cagrad"),
    "FedAdapt_no_CA": (True, "sum"),
    "FedAdapt_no_CA+GR": (True, "gradnorm"),
}


@dataclass(frozen=True)
class OnboardingRun:
    task: str
    method: str
    connectivity: str
    seed: int
    path: Path


def plan(spec: ScenarioSpec, seeds: tuple[int, ...]) -> tuple[OnboardingConfig, int, float]:
    """Validate the scenario for onboarding; its onboarding settings, client count and step."""
    sc = spec.load()
    if not sc.learning_enabled:
        raise InputError(spec.named, "learning", "onboarding needs learning enabled")
    if sc.radio is None and "gated" in (sc.onboarding or OnboardingConfig()).connectivity:
        raise InputError(spec.named, "radio", "connectivity-gated rounds need a radio section")
    if not seeds:
        raise InputError(None, "--seeds", "give at least one seed")
    refuse_sumo_outputs_in_study(sc, spec.named, "onboarding study")
    learning = spec.mapping().get("learning") or {}
    for key in SET_PER_RUN:
        given: Any = learning
        for part in key.split("."):
            given = given.get(part) if isinstance(given, dict) else None
        if given not in (None, [], {}):
            raise InputError(spec.named, f"learning.{key}", "the onboarding study sets it for "
                             "each run (its method's model, pre-trained start and frozen heads); "
                             "remove it from the scenario")
    return sc.onboarding or OnboardingConfig(), sc.clients.count, sc.mobility.step_length_s


# learning settings each study run gets from its method and stage: a scenario's own would be
# replaced without a word
SET_PER_RUN = ("init_modules", "frozen_modules", "model.tasks", "model.task_adapter",
               "balancing.method", "evaluation.tasks")


def run_onboarding(spec: ScenarioSpec, out: Path, seeds: tuple[int, ...], jobs: int,
                   on_done: Callable[[str], None] | None = None,
                   on_progress: Callable[[str, float, float], None] | None = None
                   ) -> list[OnboardingRun]:
    """Record, pre-train once per (seed, arriving task), onboard every method; write Fig. 4 and
    its table (cosim.analysis.onboarding); return the runs."""
    from cosim.analysis.onboarding import write_outputs

    cfg, clients, step = plan(spec, seeds)
    check_onboarding_out(out)
    check_recording_inputs(spec, seeds[0])
    check_splits([spec.plus(("seed", s)) for s in seeds], spec.named)  # each seed's data split
    out = out.absolute()  # the runs' overrides name recordings in it: not the scenario's folder
    with study_lock(out, ONBOARDING_COMMAND, lambda: check_onboarding_out(out)), \
            study_folder(out, ONBOARDING_COMMAND):
        runs = _run_study(spec, cfg, clients, step, out, seeds, jobs, on_done, on_progress)
        with study_writes(out, ONBOARDING_COMMAND, output_files(cfg.connectivity)):
            write_outputs(runs, out, cfg.arriving_tasks, cfg.methods, cfg.connectivity)
    return runs


def _run_study(spec: ScenarioSpec, cfg: OnboardingConfig, clients: int, step: float, out: Path,
               seeds: tuple[int, ...], jobs: int, on_done: Callable[[str], None] | None,
               on_progress: Callable[[str, float, float], None] | None) -> list[OnboardingRun]:
    study = {
        "scenario": None if spec.source is None else str(spec.source),
        "overrides": json.loads(json.dumps([list(o) for o in spec.overrides], default=str)),
        "seeds": list(seeds),
        "onboarding": cfg.model_dump(mode="json"),
    }
    threads = max(1, (os.cpu_count() or 1) // max(jobs, 1))
    recordings = [dataclasses.replace(j, reuse=True)
                  for j in recording_jobs(spec, seeds, out, threads, step)]
    sync, left_out = aggregation_section(spec, "sync")  # the paper's rounds
    pretrain = _pretrain_jobs(spec, cfg, clients, step, out, seeds, threads, sync)
    runs, onboard = _onboard_jobs(spec, cfg, clients, step, out, seeds, threads, sync)
    # before onboarding.json says "running"; a run whose pre-trained model is to be computed
    # again is checked by its worker, once that model is there
    check_kept_runs([*recordings, *pretrain, *(j for j in onboard if _start_model(j).is_file())])
    _write_info(out, {**study, "status": "running"})  # the folder is an onboarding's from now
    try:
        for stage in (recordings, pretrain, onboard):
            run_jobs(stage, jobs, on_done, on_progress)
    except BaseException as exc:  # onboarding.json says how it ended, not "running"
        _write_info(out, {**study, "status": (
            "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"),
            "error": exc.line() if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"})
        raise
    _write_info(out, {
        **study, "status": "complete",
        "aggregation_settings_left_out": left_out,
        "runs": [{"task": r.task, "method": r.method, "connectivity": r.connectivity,
                  "seed": r.seed, "path": str(r.path)} for r in runs],
    })
    return runs


def _start_model(job: RunJob) -> Path:
    """The pre-trained model an onboarding run starts from (its last init_modules override)."""
    return Path(next(v for k, v in reversed(job.scenario.overrides) if k == "learning.init_modules"))


def _ideal(clients: int) -> list[Override]:
    """Every client completes every round: no radio, everyone scheduled."""
    return [("clients.ideal_connectivity", True), ("radio", None),
            ("scheduling.policy", "all_connected"), ("scheduling.per_round", clients)]


def _common(out: Path, seed: int, step: float, sync: Override) -> list[Override]:
    return [("seed", seed), ("output.mobility_period_s", step),
            ("mobility.replay", str(recording_dir(out, seed))), sync,
            ("learning.init_modules", None)]


def _pretrain_jobs(spec: ScenarioSpec, cfg: OnboardingConfig, clients: int, step: float,
                   out: Path, seeds: tuple[int, ...], threads: int, sync: Override) -> list[RunJob]:
    """The other three tasks learnt with FedAvg, once per (seed, arriving task, architecture)."""
    adapters = sorted({METHODS[m][0] for m in cfg.methods}, reverse=True)
    pretrain = []
    for seed in seeds:
        for task in cfg.arriving_tasks:
            others = [t for t in TASKS if t != task]
            for adapter in adapters:
                pretrain.append(RunJob(spec.plus(
                    *_common(out, seed, step, sync), *_ideal(clients),
                    ("learning.model.tasks", others),
                    ("learning.model.task_adapter", adapter), ("learning.balancing.method", "sum"),
                    ("learning.frozen_modules", []), ("learning.evaluation.tasks", others),
                    ("aggregation.max_rounds", cfg.pretrain_rounds),
                    ("aggregation.eval_every_rounds", cfg.pretrain_rounds)),
                    str(onboarding_pretrained_dir(out, seed, task, adapter)), threads, reuse=True))
    return pretrain


def _onboard_jobs(spec: ScenarioSpec, cfg: OnboardingConfig, clients: int, step: float,
                  out: Path, seeds: tuple[int, ...], threads: int, sync: Override
                  ) -> tuple[list[OnboardingRun], list[RunJob]]:
    """Every (seed, arriving task, method, connectivity) run from its pre-trained model."""
    runs, onboard = [], []
    for seed in seeds:
        for task in cfg.arriving_tasks:
            frozen = [f"heads.{t}" for t in TASKS if t != task]
            for method in cfg.methods:
                adapter, balancing = METHODS[method]
                start = onboarding_pretrained_dir(out, seed, task, adapter) / "global_modules.pt"
                for connectivity in cfg.connectivity:
                    run = OnboardingRun(task, method, connectivity, seed,
                                        onboarding_run_dir(out, task, method, connectivity, seed))
                    runs.append(run)
                    onboard.append(RunJob(spec.plus(
                        *_common(out, seed, step, sync),
                        *(_ideal(clients) if connectivity == "ideal" else []),
                        ("learning.init_modules", str(start)), ("learning.frozen_modules", frozen),
                        ("learning.model.task_adapter", adapter),
                        ("learning.balancing.method", balancing),
                        ("learning.evaluation.tasks", [task]),
                        ("aggregation.max_rounds", cfg.rounds), ("aggregation.eval_every_rounds", 1)),
                        str(run.path), threads, reuse=True))
    return runs, onboard


ONBOARDING_JSON = "onboarding.json"
STUDY_FIELDS = {"scenario", "overrides", "seeds", "onboarding", "status"}  # what it holds from the start
# onboarding.json's status is one of STUDY_STATES: the study runs again from its kept runs
# after any of them

ONBOARDING_COMMAND = "onboarding"
RUN_FOLDERS = (RECORDINGS, "runs", PRETRAINED)  # where an onboarding's runs live (cosim.names)


def _write_info(out: Path, info: dict[str, object]) -> None:
    with study_writes(out, ONBOARDING_COMMAND, (ONBOARDING_JSON,)):  # the folder is the study's
        (out / ONBOARDING_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def output_files(connectivity: Sequence[str]) -> tuple[str, ...]:
    """What cosim.analysis.onboarding.write_outputs writes at the study's top."""
    return ("curves.csv", *(f"fig4_{c}.png" for c in connectivity), "table.csv", "table.md")


def check_onboarding_out(out: Path) -> None:
    """``--out``: in no result folder, and new, empty or an onboarding's own folder (its
    onboarding.json: the study runs again there from its kept runs), before anything is made."""
    check_study_out(out)
    check_study_free(out, ONBOARDING_COMMAND)
    if not out.is_dir() or not any(out.iterdir()):
        return
    foreign = foreign_in_study(out, ONBOARDING_COMMAND, RUN_FOLDERS)
    try:
        earlier = read_json_file(out / ONBOARDING_JSON, ONBOARDING_JSON)
    except (OSError, InputError):
        earlier = None
    if foreign is None or not (isinstance(earlier, dict) and set(earlier) >= STUDY_FIELDS
                               and earlier["status"] in STUDY_STATES):
        raise InputError(None, "--out", f"{out} is not empty and not a cosim onboarding folder; "
                         "choose an empty or new folder")
    if foreign:
        raise InputError(None, "--out", f"{out} holds files the study did not write (or that "
                         f"were changed since): {', '.join(foreign[:5])}"
                         f"{', ...' if len(foreign) > 5 else ''}; move them away first")


def job_count(cfg: OnboardingConfig, seeds: tuple[int, ...]) -> int:
    architectures = len({METHODS[m][0] for m in cfg.methods})
    per_seed = 1 + len(cfg.arriving_tasks) * (architectures + len(cfg.methods) * len(cfg.connectivity))
    return len(seeds) * per_seed

