"""One row per run: what a paper's results table reports about a federated run.

Read from the run's traces (participation, metrics) and run.json, never from memory, so a summary
can be recomputed from any finished run folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cosim.analysis.curves import LAST_K, last_k_mean, normalised_area, time_to_reach
from cosim.errors import InputError
from cosim.names import COMPLETED, DROP_REASONS, HEADLINE, TASK_INFO, VIA_CLUSTER, VIA_RELAY
from cosim.run_folder import read_run_info
from cosim.trace_schemas import METRICS, PARTICIPATION


def read_run_json(run_dir: Path, needs: tuple[str, ...] = ("status",)) -> dict[str, Any]:
    """A run folder's run.json, shape-checked (``run_folder.read_run_info``)."""
    if not (run_dir / "run.json").is_file():
        raise InputError(run_dir, None, "not a cosim run folder (no run.json)")
    return read_run_info(run_dir, needs)


def headline_curves(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per task: (rounds, simulated times, values) of its headline metric, in time order."""
    path = run_dir / f"{METRICS}.parquet"
    if not path.is_file():
        return {}
    table = global_rows(pq.read_table(path).to_pandas())
    curves = {}
    for task, metric in HEADLINE.items():
        rows = table[(table.task == task) & (table.metric == metric)].sort_values("sim_time_s",
                                                                              kind="stable")
        if len(rows):
            curves[task] = (rows["round"].to_numpy(), rows.sim_time_s.to_numpy(),
                            rows.value.to_numpy())
    return curves


def global_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The global model's rows on the held-out segments: not the per-client rows of
    learning.personalisation (``client`` set), which runs written before it lack."""
    return metrics[metrics.client.isna()] if "client" in metrics else metrics


def summarise_run(run_dir: Path, targets: dict[str, float] | None = None) -> dict[str, Any]:
    """The run's row: per task the initial and final metric, the mean of the last evaluations, the
    normalised area under the curve, the times to the target and to the lookup baseline
    (interpolated; right-censored at the run's end, flagged); participation, drops, bytes."""
    info = read_run_json(run_dir)
    sc = info["scenario"]
    horizon = float(info.get("sim_time_s") or sc.get("duration_s") or math.nan)
    row: dict[str, Any] = {
        "policy": sc["scheduling"]["policy"], "aggregation": sc["aggregation"]["method"],
        "seed": info["seed"], **_stream_seeds(info), "status": info["status"],
        "run_dir": str(run_dir),
        "sim_time_s": info.get("sim_time_s", math.nan),
        "wall_time_s": info.get("wall_time_s", math.nan),
        "rounds": _learning_rounds(run_dir, info),
    }
    lookup = _lookup_baseline(run_dir, info)
    curves = headline_curves(run_dir)
    for task, metric in HEADLINE.items():
        _, times, values = curves.get(task, (None, np.array([]), np.array([])))
        row[f"lookup_{task}"] = float(lookup.get(task, {}).get(metric, math.nan))
        row.update(_curve_measures(task, times, values, horizon, (targets or {}).get(task),
                                   row[f"lookup_{task}"]))
    row.update(_participation(run_dir, sc["clients"]["count"]))
    row.update(personal_gains(run_dir))
    return row


def _learning_summary(info: dict[str, Any]) -> dict[str, Any]:
    learning = (info.get("summary") or {}).get("learning")
    return learning if isinstance(learning, dict) else {}


def _learning_rounds(run_dir: Path, info: dict[str, Any]) -> int:
    rounds = _learning_summary(info).get("rounds", 0)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
        raise InputError(run_dir / "run.json", "summary.learning.rounds",
                         f"{rounds!r} is not a count of rounds")
    return rounds


def _lookup_baseline(run_dir: Path, info: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each task's lookup-baseline metrics: numbers (NaN where a task had none)."""
    lookup = _learning_summary(info).get("lookup_baseline") or {}
    field = "summary.learning.lookup_baseline"
    if not isinstance(lookup, dict) or not all(
            isinstance(m, dict) and all(isinstance(v, int | float) and not isinstance(v, bool)
                                        for v in m.values()) for m in lookup.values()):
        raise InputError(run_dir / "run.json", field, "not task -> metric -> number")
    return lookup


def _stream_seeds(info: dict[str, Any]) -> dict[str, int]:
    """The data and training seeds the run used (runs written before they were recorded: the
    scenario's seed, which both followed then)."""
    seeds = info.get("seeds") or {}
    return {"data_seed": int(seeds.get("data", info["seed"])),
            "training_seed": int(seeds.get("training", info["seed"]))}


def _curve_measures(task: str, times: np.ndarray, values: np.ndarray, horizon: float,
                    target: float | None, lookup: float) -> dict[str, Any]:
    higher = TASK_INFO[task].higher_is_better
    out: dict[str, Any] = {
        f"initial_{task}": float(values[0]) if len(values) else math.nan,
        f"final_{task}": float(values[-1]) if len(values) else math.nan,
        f"last{LAST_K}_{task}": last_k_mean(values),
        f"area_{task}": normalised_area(times, values, horizon),
    }
    for name, level in (("target", target), ("lookup", lookup)):
        if level is None or not len(values) or not math.isfinite(level):
            out[f"time_to_{name}_{task}_s"], out[f"censored_{name}_{task}"] = math.nan, None
            continue
        reached = time_to_reach(times, values, level, horizon, higher)
        out[f"time_to_{name}_{task}_s"] = reached.time_s
        out[f"censored_{name}_{task}"] = reached.censored
    return out


MODELS = ("global", "finetune", "tap")  # the per-client rows' ``model``, in column order
AP_METRICS = ("mAP", "mAPH", "mAP50", "mAP_center")  # -1: no ground truth on the frames


def per_client(run_dir: Path) -> pd.DataFrame:
    """One row per (client, task): the headline metric per model, as columns."""
    path = run_dir / f"{METRICS}.parquet"
    if not path.is_file():
        return pd.DataFrame()
    table = pq.read_table(path)
    if "client" not in table.column_names:
        return pd.DataFrame()  # a run written before per-client rows existed
    df = table.to_pandas()
    df = df[df.client.notna() & (df.metric == df.task.map(HEADLINE))].copy()
    if df.empty:
        return pd.DataFrame()
    df.loc[df.metric.isin(AP_METRICS) & (df.value < 0), "value"] = np.nan
    wide = df.pivot(index=["client", "task", "metric"], columns="model", values="value")
    wide = wide.reset_index().rename_axis(columns=None)
    wide["client"] = wide["client"].astype(int)
    wide["task"] = pd.Categorical(wide["task"], categories=list(HEADLINE), ordered=True)
    wide = wide.sort_values(["client", "task"]).reset_index(drop=True)
    wide["task"] = wide["task"].astype(str)
    for model in MODELS[1:]:
        if model in wide:
            sign = wide.task.map(lambda t: 1.0 if TASK_INFO[t].higher_is_better else -1.0)
            wide[f"{model} gain"] = sign * (wide[model] - wide["global"])
    return wide[[c for c in ("client", "task", "metric", *MODELS, *(f"{m} gain" for m in MODELS[1:]))
                 if c in wide]]


PERSONAL_MODELS = MODELS[1:]  # learning.personalisation's personalised models


def personal_gains(run_dir: Path) -> dict[str, float]:
    """Per personalised model and task: its mean gain over the final global model on the clients'
    own validation frames (headline metric, signed so positive is better); NaN without per-client
    rows (learning.personalisation off, or that model not asked for)."""
    frame = per_client(run_dir)
    out = {}
    for model in PERSONAL_MODELS:
        for task in HEADLINE:
            gains = (frame.loc[frame.task == task, f"{model} gain"] if f"{model} gain" in frame
                     else pd.Series(dtype=float))
            out[f"{model}_gain_{task}"] = float(gains.mean()) if gains.notna().any() else math.nan
    return out


def _participation(run_dir: Path, clients: int) -> dict[str, Any]:
    path = run_dir / f"{PARTICIPATION}.parquet"
    out: dict[str, Any] = {"attempts": 0, "completed": 0}
    if not path.is_file():
        return out | {"completion_rate": math.nan, "participation_rate": math.nan,
                      **{f"dropped_{r}": 0 for r in DROP_REASONS}, "bytes_up": 0,
                      "bytes_down": 0, "bytes_sidelink": 0, "via_relay": 0, "via_cluster": 0,
                      "mean_staleness": math.nan}
    p = pq.read_table(path).to_pandas()
    done = p[p.outcome == COMPLETED]
    out["attempts"], out["completed"] = len(p), len(done)
    out["completion_rate"] = len(done) / len(p) if len(p) else math.nan
    out["participation_rate"] = done.client.nunique() / clients if clients else math.nan
    for reason in DROP_REASONS:
        out[f"dropped_{reason}"] = int((p.reason == reason).sum())
    out["bytes_up"], out["bytes_down"] = int(p.bytes_up.sum()), int(p.bytes_down.sum())
    # runs written before the sidelink existed have neither column
    out["bytes_sidelink"] = int(p.bytes_sidelink.fillna(0).sum()) if "bytes_sidelink" in p else 0
    for via, key in ((VIA_RELAY, "via_relay"), (VIA_CLUSTER, "via_cluster")):
        out[key] = int(((p.via == via) & (p.outcome == COMPLETED)).sum()) if "via" in p else 0
    out["mean_staleness"] = float(done.staleness.mean()) if len(done) else math.nan
    return out
