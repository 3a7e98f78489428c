"""The compare as terminal tables: paired differences with verdicts, then mean ± sample std over
seeds per policy and aggregation."""

from __future__ import annotations

import math

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from cosim.analysis.summary import PERSONAL_MODELS
from cosim.compare import mean_std_table
from cosim.names import HEADLINE


def _pm(pair: tuple[float, float], scale: float = 1.0, digits: int = 3) -> str:
    mean, std = pair
    if not math.isfinite(mean):
        return "-"
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if math.isfinite(std) and std > 0 else "")


def print_summary(summary: pa.Table, console: Console | None = None) -> None:
    rows = mean_std_table(summary)
    n_seeds = len(set(summary.column("seed").to_pylist()))
    table = Table(title=f"cosim compare (mean ± sample std over {n_seeds} seed{'s' * (n_seeds > 1)})")
    for name in ("policy", "aggregation", *(f"{t}\n{m}" for t, m in HEADLINE.items()),
                 "completed", "clients\ntaking part", "drops", "MB up", "stale-\nness", "wall s"):
        table.add_column(name, justify="left" if name in ("policy", "aggregation") else "right",
                         no_wrap=True)
    for r in rows:
        drops = sum(r[c][0] for c in r if c.startswith("dropped_"))
        table.add_row(
            r["policy"], r["aggregation"], *(_pm(r[f"final_{t}"]) for t in HEADLINE),
            _pm(r["completion_rate"], 100, 0) + " %", _pm(r["participation_rate"], 100, 0) + " %",
            f"{drops:.0f}", _pm(r["bytes_up"], 1e-6, 1), _pm(r["mean_staleness"], 1, 2),
            _pm(r["wall_time_s"], 1, 0))
    if console is None:  # a pipe gets 80 columns by default: too narrow for the table
        console = Console()
        console = Console(width=max(console.width, 200))
    console.print(table)
    personal = _personal_table(rows, n_seeds)
    if personal is not None:
        console.print(personal)


def _personal_table(rows: list[dict], n_seeds: int) -> Table | None:
    """Mean personalisation gain per model and task (learning.personalisation), when any run has
    per-client rows."""
    columns = [(m, t) for m in PERSONAL_MODELS for t in HEADLINE
               if any(math.isfinite(r.get(f"{m}_gain_{t}", (math.nan, 0))[0]) for r in rows)]
    if not columns:
        return None
    table = Table(title="personalisation: mean gain over the global model on each client's own "
                        f"validation frames (headline metric, positive is better; {n_seeds} "
                        f"seed{'s' * (n_seeds > 1)})")
    for name in ("policy", "aggregation", *(f"{m}\n{t}" for m, t in columns)):
        table.add_column(name, justify="left" if name in ("policy", "aggregation") else "right",
                         no_wrap=True)
    for r in rows:
        table.add_row(r["policy"], r["aggregation"], *(_pm(r[f"{m}_gain_{t}"]) for m, t in columns))
    return table


def _number(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.{digits}f}"


def print_pairs(pairs: pa.Table, console: Console | None = None) -> None:
    """The paired differences A - B with their interval, Holm-corrected p and verdict."""
    rows = pairs.to_pylist()
    if not rows:
        return
    n = max(r["seeds"] for r in rows)
    level = rows[0]["ci_level"]
    table = Table(title=f"cosim compare: paired differences A - B over {n} seed{'s' * (n > 1)} "
                        f"({level:.1%} t interval; p Holm-corrected across the pairs of a measure)")
    for name in ("measure", "A", "B", "A - B", "interval", "p (Holm)", "verdict"):
        table.add_column(name, justify="right" if name in ("A - B", "interval", "p (Holm)")
                         else "left", no_wrap=True)
    for r in rows:
        if not r["seeds"]:
            continue  # not measured in these runs (a task without a target, say)
        censored = ""
        if r["censored_a"] == r["censored_b"] == r["seeds"]:
            censored = " (neither reaches it in any seed)"
        elif r["censored_a"] or r["censored_b"]:
            censored = (f" (never reached: A {r['censored_a']:.0f}, B {r['censored_b']:.0f} of "
                        f"{r['seeds']})")
        interval = (f"[{_number(r['ci_low'])}, {_number(r['ci_high'])}]"
                    if r["ci_low"] is not None and math.isfinite(r["ci_low"]) else "-")
        table.add_row(r["label"], r["a"], r["b"], _number(r["mean_a_minus_b"]), interval,
                      _number(r["p_holm"]), r["verdict"] + censored)
    if console is None:
        console = Console()
        console = Console(width=max(console.width, 200))
    console.print(table)


SPREAD_MEASURES = ("completion_rate", "final_", "area_", "time_to_target_")


def print_spread(spread: pa.Table, console: Console | None = None) -> None:
    """Each varied stream's spread beside the largest difference between policies (streams the
    grid holds fixed are left out)."""
    rows = [r for r in spread.to_pylist() if r["measure"].startswith(SPREAD_MEASURES)]
    streams = [s for s in ("connectivity", "data", "training")
               if any(r[f"{s}_sd"] is not None and math.isfinite(r[f"{s}_sd"]) for r in rows)]
    if not rows or not streams:
        return
    table = Table(title="randomness streams: sample std of a measure over each stream's seeds "
                        "alone (pooled), beside the largest |A - B| between policies")
    table.add_column("measure", no_wrap=True)
    for s in streams:
        table.add_column(f"{s}\n({rows[0][f'{s}_seeds']} seeds)", justify="right", no_wrap=True)
    table.add_column("largest\n|A - B|", justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r["label"], *(_number(r[f"{s}_sd"]) for s in streams),
                      _number(r.get("largest_policy_difference", math.nan)))
    if console is None:
        console = Console()
        console = Console(width=max(console.width, 200))
    console.print(table)
