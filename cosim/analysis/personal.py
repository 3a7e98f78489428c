"""The report's personalisation section: per client and task, the headline metric of the final
global model against the personalised ones (learning.personalisation), and the mean gain.

Read from the per-client rows of metrics.parquet (``client`` set), never from the learning layer.
Every value is on that client's own validation frames; TAP chose its modules on those same frames,
so its column is an optimistic estimate (the caption says so).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cosim.analysis.figure_style import set_caption  # noqa: E402
from cosim.analysis.runs import ReportSource  # noqa: E402
from cosim.analysis.skip import Skip, figure  # noqa: E402
from cosim.names import HEADLINE, TASK_INFO  # noqa: E402
from cosim.trace_schemas import METRICS  # noqa: E402

MODELS = ("global", "finetune", "tap")  # the per-client rows' ``model``, in column order
AP_METRICS = ("mAP", "mAPH", "mAP50", "mAP_center")  # -1: no ground truth on the frames
NO_ROWS = "no per-client rows in metrics.parquet (learning.personalisation is off)"


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


def personal_frame(src: ReportSource) -> pd.DataFrame:
    """Every run's per-client rows; a compare's carry its policy / aggregation and seed."""
    parts = []
    for run in src.runs:
        rows = per_client(run.path)
        if not rows.empty:
            if src.kind == "compare":
                rows.insert(0, "seed", run.seed)
                rows.insert(0, "policy / aggregation", run.label)
            parts.append(rows)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def mean_gains(frame: pd.DataFrame) -> pd.DataFrame:
    """Per task: the mean of each model's metric and of each gain over clients (and runs)."""
    values = [c for c in frame.columns if c in MODELS or c.endswith(" gain")]
    out = frame.groupby(["task", "metric"], sort=False)[values].mean().reset_index()
    # clients with a value (a task without ground truth on its frames has none)
    out.insert(0, "clients", frame.groupby(["task", "metric"], sort=False)["global"].count().to_numpy())
    return out


def table_html(frame: pd.DataFrame) -> str:
    """The per-client table and, under it, the mean per task."""
    fmt = {"float_format": lambda v: f"{v:.3f}", "na_rep": "-", "index": False,
           "border": 0, "classes": "summary personal"}
    return (frame.to_html(**fmt) + "<p>Mean over clients per task (gain: personalised minus "
            "global, so positive is better):</p>" + mean_gains(frame).to_html(**fmt))


@figure
def personal_figure(src: ReportSource) -> Figure:
    """Per task, one group of bars per client: global, fine-tuned and TAP's headline metric."""
    frame = personal_frame(src)
    if frame.empty:
        raise Skip(NO_ROWS)
    tasks = [t for t in HEADLINE if t in set(frame.task)]
    models = [m for m in MODELS if m in frame]
    cols = min(2, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    width = 0.8 / len(models)
    colours = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(MODELS)}
    hatches = {"global": "", "finetune": "//", "tap": ".."}
    for ax, task in zip(axes.flat, tasks, strict=False):
        data = frame[frame.task == task].groupby("client")[models].mean()
        x = np.arange(len(data))
        for i, model in enumerate(models):
            ax.bar(x + (i - (len(models) - 1) / 2) * width, data[model].to_numpy(), width,
                   label=model, color=colours[model], hatch=hatches[model], edgecolor="0.25",
                   linewidth=0.5)
        ax.set_xticks(x, [str(c) for c in data.index])
        ax.set_xlabel("client")
        ax.set_title(f"{task}: {HEADLINE[task]}")
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(models), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    several = src.kind == "compare" and len(src.runs) > 1
    return set_caption(fig, "Headline metric per client on its own validation frames (the last "
                       "frames of its drive): the final global model, its local fine-tune and "
                       "TAP's selective replacement between the two. TAP chose on these frames, "
                       "so its bars are optimistic. A missing bar: no ground truth on the frames."
                       + (" Bars: mean over the runs of the compare." if several else ""))
