"""`cosim report`: one self-contained HTML file (PNG figures embedded) plus every figure as PNG,
SVG and PDF in `figures/` for papers.

The HTML has no external references, so it opens offline and can be mailed or archived with the
paper's artefacts. A figure that would mean nothing for these runs (no table, an empty one, the
staleness of synchronous rounds) is not drawn: the report says why in its place.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from cosim.analysis.figure_files import DPI, remove_figure, save_figure
from cosim.analysis.figure_style import caption
from cosim.analysis.forest import drawn_measures, forest_figure
from cosim.analysis.forgetting import forgetting_table
from cosim.analysis.personal import personal_figure, personal_frame, table_html
from cosim.analysis.plots import FIGURES
from cosim.analysis.radio_plots import RADIO_FIGURES, radio_table
from cosim.analysis.runs import ReportSource, open_source
from cosim.analysis.skip import render
from cosim.analysis.summary import summarise_run
from cosim.names import HEADLINE, REPORT_HEAD

__all__ = ["ALL_FIGURES", "DPI", "write_report"]
# the learning figures, then the radio ones (after the radio statistics table)
ALL_FIGURES = {**FIGURES, **RADIO_FIGURES}
PERSONAL_KEY = "personalisation"  # drawn (after the summary) only for runs with per-client rows


def write_report(path: Path, out: Path | None = None) -> Path:
    """Render every figure that means something for the runs; return the HTML file. Figures are
    drawn in Matplotlib's own default style, whatever a ``matplotlibrc`` (in the working folder,
    ``MATPLOTLIBRC`` or the user's config) says, so they come out the same everywhere."""
    with plt.style.context("default"):
        return _write_report(path, out)


def _write_report(path: Path, out: Path | None) -> Path:
    src = open_source(path)
    out = out or path / "report"
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for key, (title, make) in ALL_FIGURES.items():
        if key == next(iter(RADIO_FIGURES)):
            sections.append(_radio_section(src))
        fig = render(make, src)
        heading = f"<h2>{html.escape(title)}</h2>"
        if isinstance(fig, str):
            remove_figure(figures_dir, key)
            sections.append(f"{heading}<p class='none skipped' data-figure='{html.escape(key)}'>"
                            f"Skipped: {html.escape(fig)}.</p>")
            continue
        sections.append(heading + _figure_html(fig, key, title, figures_dir))
    page = _page(src, _summary_table(src) + _support_section(src) + _drift_section(src)
                 + _personal_section(src, figures_dir),
                 sections, _pairs_section(src, figures_dir))
    target = out / "report.html"
    target.write_text(page, encoding="utf-8")
    return target


def _figure_html(fig, key: str, title: str, figures_dir: Path) -> str:
    """The figure embedded as PNG, with its caption and links to its PNG, SVG and PDF files."""
    files = save_figure(fig, figures_dir, key, dpi=DPI)
    note = caption(fig)
    plt.close(fig)
    data = base64.b64encode(files["png"].read_bytes()).decode("ascii")
    links = " ".join(f"<a href='figures/{p.name}'>{fmt.upper()}</a>" for fmt, p in files.items())
    return (f"<figure id='fig-{html.escape(key)}'><img alt='{html.escape(title)}' "
            f"data-figure='{html.escape(key)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(note)} <span class='files'>{links}</span>"
            "</figcaption></figure>")


def _drift_section(src: ReportSource) -> str:
    """Forgetting per task under learning.drift, one table per run that has a drift schedule."""
    parts = []
    for run in src.runs:
        table = forgetting_table(run.path)
        if table.empty:
            continue
        drift = run.info["summary"]["learning"]["drift"]
        events = "; ".join(f"{e['at_s']:.0f} s {html.escape(e.get('label') or '')}: "
                           f"{', '.join(e.get('active_tasks') or []) or 'no task'}" for e in drift["events"])
        continual = drift["continual"] + (f" (weight {drift['l2_weight']})" if "l2_weight" in drift else "")
        parts.append(f"<h3>{html.escape(run.label)} (seed {run.seed}), continual: "
                     f"{html.escape(continual)}</h3><p>Trained tasks after each event: {events}.</p>"
                     + table.to_html(index=False, border=0, classes="summary", na_rep="-",
                                     float_format=lambda v: f"{v:.3f}"))
    if not parts:
        return ""
    return ("<h2>Drift and forgetting</h2><p>Per task (learning.drift): when some client trained "
            "it, its best headline score on the held-out frames while trained, its final score, "
            "and forgetting = best while trained - final for a task no client trains at the end.</p>"
            + "".join(parts))


def _personal_section(src: ReportSource, figures_dir: Path) -> str:
    """Per-client global vs personalised metrics, only for runs that have them."""
    frame = personal_frame(src)
    if frame.empty:
        remove_figure(figures_dir, PERSONAL_KEY)
        return ""
    title = "Personalisation per client"
    fig = render(personal_figure, src)
    drawn = "" if isinstance(fig, str) else _figure_html(fig, PERSONAL_KEY, title, figures_dir)
    return (f"<h2>{title}</h2><p>Headline metric per client and task on the client's own "
            "validation frames (learning.personalisation): the final global model, its local "
            "fine-tune (finetune) and TAP's selective replacement between them (tap; chosen on "
            "these frames, so optimistic). '-': no ground truth on the frames.</p>"
            + table_html(frame) + drawn)


def _summary_table(src: ReportSource) -> str:
    rows = [summarise_run(run.path) | {"label": run.label} for run in src.runs]
    df = pd.DataFrame(rows)
    columns = {"label": "policy / aggregation", "seed": "seed", "rounds": "rounds",
               **{f"final_{t}": f"{t} {m}" for t, m in HEADLINE.items()},
               **{f"lookup_{t}": f"{t} lookup baseline" for t in HEADLINE},
               "completion_rate": "completed", "participation_rate": "clients taking part",
               "bytes_up": "MB up", "bytes_sidelink": "MB sidelink", "via_relay": "relayed",
               "via_cluster": "via a cluster or tree", "mean_staleness": "staleness",
               "wall_time_s": "wall s"}
    d2d = ("bytes_sidelink", "via_relay", "via_cluster")  # shown only where the sidelink carried some
    df = df[[c for c in columns if c in df and (c not in d2d or (df[c] > 0).any())]]
    df = df.rename(columns=columns)
    for mb in ("MB up", "MB sidelink"):
        if mb in df:
            df[mb] = df[mb] / 1e6
    return df.to_html(index=False, float_format=lambda v: "-" if math.isnan(v) else f"{v:.3f}",
                      border=0, classes="summary")


def _radio_section(src: ReportSource) -> str:
    """run.json's summary.radio (per seed for a compare); older runs hold fewer keys or none."""
    stats = radio_table(src)
    return "<h2>Radio statistics</h2>" + (stats or "<p class='none'>No radio statistics in run.json.</p>")


def _cost_line(info: dict) -> str:
    """Which model the round costs are those of, and which model learned (run.json)."""
    cost = ((info.get("summary") or {}).get("learning") or {}).get("cost")
    if not cost:
        return ""
    flops = ", ".join(f"{v / 1e9:.1f} GFLOPs ({html.escape(k.split('|')[1])})"
                      for k, v in cost["flops_per_sample"].items())
    costed = (f"the deployed <b>{html.escape(cost['costed_model'])}</b> (learning: "
              f"{html.escape(cost['trained_model'])})" if cost["deployed"]
              else f"the trained <b>{html.escape(cost['costed_model'])}</b>")
    return (f"<br>round costs: {costed}; per training sample {flops or '-'}; all modules "
            f"{cost['all_module_bytes'] / 1e6:.1f} MB; uplink compression "
            f"{html.escape(cost['compression'])}")


def _precision_line(infos: list[dict]) -> str:
    """What the runs' learning computed in (run.json; runs before the setting were fp32), each
    distinct precision once: a compare across machines may mix them."""
    seen: dict[tuple[str, str], None] = {}  # distinct (precision, reason), in order
    for info in infos:
        learning = (info.get("summary") or {}).get("learning")
        if learning is None:
            continue
        p = learning.get("precision") or {"precision": "fp32", "reason": "before learning.precision existed"}
        seen.setdefault((p["precision"], p["reason"]), None)
    if not seen:
        return ""
    return "<br>learning precision: " + "; ".join(
        f"<b>{html.escape(name)}</b> ({html.escape(reason)})" for name, reason in seen)


def _support_section(src: ReportSource) -> str:
    """What each headline metric rests on, per distinct held-out set of the runs (run.json)."""
    rows, seen = [], set()
    for run in src.runs:
        support = ((run.info.get("summary") or {}).get("learning") or {}).get("heldout_support")
        if not support:
            continue
        key = json.dumps(support, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        data_seed = (run.info.get("seeds") or {}).get("data", run.info.get("seed"))
        for task, s in support.items():
            minimum = s.get("minimum_per_class") or s.get("minimum_total")
            rows.append({"data seed": data_seed, "task": task, "counted": s["unit"],
                         "total": s["total"], "smallest class": f"{s['smallest_class']} "
                         f"({s['smallest_count']})", "minimum": minimum if minimum else "-",
                         "meets it": {True: "yes", False: "no"}.get(s.get("meets_minimum"), "-")})
    if not rows:
        return ""
    return ("<h3>What each headline metric rests on (held-out set)</h3>"
            + pd.DataFrame(rows).to_html(index=False, border=0, classes="summary", na_rep="-"))


def _pairs_section(src: ReportSource, figures_dir: Path) -> str:
    """A compare's paired verdicts, first: the forest plot and the verdict of every drawn pair."""
    if src.kind != "compare":
        return ""
    path = src.root / "pairs.parquet"
    heading = "<h2>Paired comparison</h2>"
    if not path.is_file():
        return (heading + "<p class='none skipped' data-figure='pairs'>Skipped: this compare has "
                "no pairs.parquet (an older cosim wrote it; cosim compare --resume adds it).</p>")
    pairs = pd.read_parquet(path)
    if not len(pairs) or not drawn_measures(pairs):
        return heading + "<p class='none skipped' data-figure='pairs'>Skipped: one cell only.</p>"
    title = "Paired differences between policies"
    figure_html = _figure_html(forest_figure(pairs), "pairs", title, figures_dir)
    shown = pairs[pairs.measure.isin(drawn_measures(pairs))]
    table = shown[["label", "a", "b", "seeds", "mean_a_minus_b", "ci_low", "ci_high", "p_holm",
                   "verdict"]].rename(columns={"label": "measure", "mean_a_minus_b": "A - B",
                                               "ci_low": "low", "ci_high": "high",
                                               "p_holm": "p (Holm)"})
    return (heading + figure_html
            + table.to_html(index=False, border=0, classes="summary", na_rep="-",
                            float_format=lambda v: f"{v:.4g}"))


def _page(src: ReportSource, summary: str, sections: list[str], lead: str = "") -> str:
    first = src.runs[0].info
    scenario = first["scenario"]
    what = ("compare of " + ", ".join(dict.fromkeys(r.label for r in src.runs))
            if src.kind == "compare" else f"run {src.root.name}")
    facts = (f"scenario <b>{html.escape(scenario['name'])}</b>, {scenario['duration_s']:g} s "
             f"simulated; seeds {sorted({r.seed for r in src.runs})}; cosim "
             f"{html.escape(first['versions'].get('cosim', '?'))}, SUMO "
             f"{html.escape(str(first['versions'].get('sumo', '?')))}")
    facts += _cost_line(first) + _precision_line([r.info for r in src.runs])
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "img{max-width:100%;border:1px solid #ddd}table.summary{border-collapse:collapse;"
             "font-size:13px}table.summary td,table.summary th{padding:3px 8px;"
             "border-bottom:1px solid #eee;text-align:right}table.radio th.stat{text-align:left;"
             "font-weight:normal}p.none{color:#888}figure{margin:0 0 1.5em}"
             "figcaption{font-size:13px;color:#444}span.files{color:#888}")
    return (f"{REPORT_HEAD}{html.escape(what)}</title><style>{style}</style></head><body>"
            f"<h1>cosim report</h1><p>{html.escape(what)}</p><p>{facts}</p>"
            f"{lead}<h2>Summary</h2>{summary}{''.join(sections)}</body></html>\n")
