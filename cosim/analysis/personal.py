"""The report's personalisation section: per client and task, the headline metric of the final
global model against the personalised ones (learning.personalisation), and the mean gain.

Read from the per-client rows of metrics.parquet (``client`` set), never from the learning layer.
Every value is on that client's own validation frames; TAP chose its modules on those same frames,
so its column is an optimistic estimate (the caption says so).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cosim.analysis.figure_style import set_caption  # noqa: E402
from cosim.analysis.runs import ReportSource  # noqa: E402
from cosim.analysis.skip import Skip, figure  # noqa: E402
from cosim.analysis.summary import MODELS, per_client  # noqa: E402
from cosim.names import HEADLINE  # noqa: E402

NO_ROWS = "no per-client rows in metrics.parquet (learning.personalisation is off)"


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
