"""One run of a compare grid as a worker gets it, and the worker that runs it: the piece the local
process pool and the Ray backend share."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosim.errors import InputError
from cosim.names import PRETRAINED, RECORDINGS
from cosim.run_folder import check_traces_unchanged, first_difference, read_run_info
from cosim.scenario_loader import ScenarioSpec


@dataclass(frozen=True, eq=False)
class RunJob:
    """One run of the grid: its scenario as data (the worker validates it), and where it goes."""

    scenario: ScenarioSpec
    out: str
    threads: int
    reuse: bool = False  # keep an earlier complete run in ``out`` instead of running again
    overwrite: bool = False  # replace an earlier run in ``out`` (once the new one completes)


# A run's progress for the caller: (run folder, simulated now, duration)
OnProgress = Callable[[str, float, float], None]


PROGRESS_EVERY_S = 1.0


def run_one(job: RunJob, progress: OnProgress | Any | None = None) -> str:
    """A worker: one quiet run of the scenario with the job's overrides. ``progress``: a callback,
    or a queue (from another process) that gets (out, now, duration) about once a second."""
    try:
        import torch

        torch.set_num_threads(job.threads)
    except ImportError:  # learning disabled and torch absent: nothing to limit
        pass
    from cosim.runner import run_scenario

    scenario = job.scenario.load()
    if job.reuse and is_complete(Path(job.out)):
        check_kept_run(Path(job.out), scenario.model_dump(mode="json"))
        return job.out
    send: Callable[[tuple[str, float, float]], None] | None = None
    if progress is not None and hasattr(progress, "put"):
        send = progress.put
    elif progress is not None:
        send = lambda item: progress(*item)  # noqa: E731
    last = [-math.inf]

    def on_tick(now: float, duration: float) -> None:
        if send is not None and (time.monotonic() - last[0] >= PROGRESS_EVERY_S or now >= duration):
            last[0] = time.monotonic()
            send((job.out, now, duration))

    result = run_scenario(scenario, source=job.scenario.source, out=Path(job.out), quiet=True,
                          overwrite=job.reuse or job.overwrite, on_tick=on_tick,
                          in_study=True)
    if result.status != "complete":
        raise RuntimeError(f"run {job.out} ended {result.status}")
    return job.out


def check_kept_run(run_dir: Path, expected: dict[str, Any]) -> None:
    """A complete run kept by ``--resume`` ran this job's scenario, value for value: a run of
    another scenario version in the compare's folder would stand in for this one's results."""
    info = read_run_info(run_dir, ("status", "scenario"))
    differs = first_difference(_inside_folder(info["scenario"]), _inside_folder(expected))
    if differs is not None:
        raise InputError(run_dir / "run.json", "scenario", f"a complete run of another scenario "
                         f"({differs or 'the whole scenario'} differs from what this study asks for); "
                         "remove the run to compute it again")
    check_kept_traces(run_dir, info)


def check_kept_traces(run_dir: Path, info: dict[str, Any]) -> None:
    """A kept run's traces are the ones it wrote (a recording edited afterwards would be
    replayed, and then differ from the runs that replayed it before)."""
    check_traces_unchanged(run_dir, info, f"remove {run_dir} to compute it again")


# Where a compare's or an onboarding's run reads a file of its own folder (the recording, the
# pre-trained modules): compared from that sub-folder on, so a folder moved or copied elsewhere
# resumes (its kept runs name the old place).
OWN_FILES = (("mobility", "replay", RECORDINGS), ("scheduling", "oracle_windows", RECORDINGS),
             ("learning", "init_modules", PRETRAINED))


def _inside_folder(scenario: Any) -> Any:
    if not isinstance(scenario, dict):
        return scenario
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in scenario.items()}
    for section, key, folder in OWN_FILES:
        value = out.get(section, {}).get(key) if isinstance(out.get(section), dict) else None
        if isinstance(value, str) and f"/{folder}/" in value:
            out[section][key] = value[value.rindex(f"/{folder}/") + 1:]
    return out


def is_complete(run_dir: Path) -> bool:
    try:
        return read_run_info(run_dir)["status"] == "complete"
    except InputError:
        return False
