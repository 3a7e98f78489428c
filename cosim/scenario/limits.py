"""Resource estimates a scenario must stay under: a typo such as ``radio.step_s: 1e-12`` or
``duration_s: 1e300`` is refused up front with the estimate, instead of a run that never ends
or a cache that fills the disk.

The limits lie far beyond any real experiment (a year of SUMO steps, 10 million trips); when an
estimate is over, the field blamed is the one furthest from its usual value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cosim.scenario.aggregation import AggregationConfig
from cosim.scenario.base import FieldError
from cosim.scenario.learning import LearningConfig
from cosim.scenario.mobility import MobilityConfig
from cosim.scenario.radio import RadioConfig


@dataclass(frozen=True)
class Workload:
    """The sections of a scenario that decide how much work a run is."""

    duration_s: float
    mobility: MobilityConfig
    radio: RadioConfig | None
    learning: LearningConfig | None
    aggregation: AggregationConfig

MAX_SUMO_STEPS = 1e8  # 3 years at 1 s steps, 116 days at 0.1 s
MAX_RADIO_STEPS = 1e8  # 116 days at the default 0.1 s radio step
MAX_RADIO_STEPS_PER_SUMO_STEP = 1e6
MAX_TRIPS = 1e7  # randomTrips writes and duarouter routes every one
MAX_SYNTHETIC_FRAMES = 1e6  # rendered once into the cache (images and LiDAR per frame)
MAX_GENERATED_JUNCTIONS = 1e6  # a 1000 x 1000 grid; netgenerate builds it before any check
MAX_GENERATED_LANES = 16  # per road: the widest real motorways have about 12
MAX_ROUNDS = 1e7
MAX_EVALUATIONS = 1e6

# Usual values, to tell which of the fields of an estimate is the odd one.
_USUAL = {"duration_s": 3600.0, "mobility.warmup_s": 600.0, "mobility.step_length_s": 1.0,
          "radio.step_s": 0.1, "mobility.demand.period_s": 1.0, "mobility.demand.end_s": 3600.0,
          "learning.data.synthetic.segments": 24, "learning.data.synthetic.frames": 40}


def _oddest(spans: dict[str, float], steps: dict[str, float]) -> str:
    """The field furthest from its usual value: a span too long, or a step too short."""
    score = {k: v / _USUAL[k] for k, v in spans.items()}
    score |= {k: _USUAL[k] / v for k, v in steps.items()}
    return max(score, key=score.__getitem__)


def check_limits(sc: Workload) -> None:
    """Raise FieldError when the scenario's estimated work is beyond the limits above."""
    _sumo_steps(sc)
    _radio_steps(sc)
    _trips(sc)
    _generated_junctions(sc)
    _synthetic_frames(sc)
    _rounds(sc)


def _sumo_steps(sc: Workload) -> None:
    step, warmup = sc.mobility.step_length_s, sc.mobility.warmup_s
    n = (sc.duration_s + warmup) / step
    if n <= MAX_SUMO_STEPS:
        return
    spans = {"duration_s": sc.duration_s, "mobility.warmup_s": warmup}
    field = _oddest(spans, {"mobility.step_length_s": step})
    raise FieldError(field, _steps_message(field, spans, "mobility.step_length_s", step, n, "SUMO",
                                           MAX_SUMO_STEPS))


def _radio_steps(sc: Workload) -> None:
    if sc.radio is None:
        return
    step = sc.radio.step_s
    n = sc.duration_s / step
    if n > MAX_RADIO_STEPS:
        spans = {"duration_s": sc.duration_s}
        field = _oddest(spans, {"radio.step_s": step})
        raise FieldError(field, _steps_message(field, spans, "radio.step_s", step, n, "radio",
                                               MAX_RADIO_STEPS))
    per_sumo = sc.mobility.step_length_s / step
    if per_sumo > MAX_RADIO_STEPS_PER_SUMO_STEP:
        raise FieldError("radio.step_s", f"{step:.3g} s is {per_sumo:.3g} radio steps per SUMO step "
                         f"of {sc.mobility.step_length_s:g} s; at most "
                         f"{MAX_RADIO_STEPS_PER_SUMO_STEP:.0e}")


def _steps_message(field: str, spans: dict[str, float], step_name: str, step: float, n: float,
                   kind: str, limit: float) -> str:
    """``1e-12 s over 3600 s (duration_s) is 3.6e+15 radio steps; at most 1e+08``."""
    span = sum(spans.values())
    names = " + ".join(k for k, v in spans.items() if v or k == "duration_s")
    if field == step_name:
        head = f"{step:.3g} s over {span:.3g} s ({names})"
    else:
        head = f"{spans[field]:.3g} s at {step:.3g} s steps ({step_name})"
        if len(spans) > 1 and span != spans[field]:
            head = f"{spans[field]:.3g} s ({names}: {span:.3g} s) at {step:.3g} s steps"
    return f"{head} is {n:.3g} {kind} steps; at most {limit:.0e}"


def _trips(sc: Workload) -> None:
    demand = sc.mobility.demand
    if demand is None or sc.mobility.replay is not None:
        return
    end = demand.end_s if demand.end_s is not None else sc.mobility.warmup_s + sc.duration_s
    periods = demand.period_s if isinstance(demand.period_s, list) else [demand.period_s]
    n = expected_trips(demand.begin_s, end, periods)
    if n <= MAX_TRIPS:
        return
    shortest = min(periods)
    spans = {"mobility.demand.end_s": end} if demand.end_s is not None else {}
    field = _oddest(spans, {"mobility.demand.period_s": shortest})
    raise FieldError(field, f"departures every {shortest:g} s from {demand.begin_s:g} s to "
                     f"{end:g} s are {n:.3g} trips; at most {MAX_TRIPS:.0e}")


def expected_trips(begin_s: float, end_s: float, periods: list[float]) -> float:
    """randomTrips' departures from ``begin_s`` to ``end_s``, its span split evenly among the
    periods given."""
    span = max(end_s - begin_s, 0.0)
    return sum(span / len(periods) / p for p in periods)


# randomTrips options that multiply its work beyond the trips (its --help): flows written,
# way points per trip, Bernoulli draws per second of the span, tries per trip
MAX_RANDOM_TRIPS_WORK = 1e9


def check_random_trips_size(begin_s: float, end_s: float, periods: list[float],
                            given: Mapping[str, str]) -> None:
    """FieldError when randomTrips' options ``given`` (long names, its values) would make it
    write or draw beyond the limits: ``--flows`` and ``--intermediate`` add elements to write,
    ``--binomial`` draws N times per second, ``--maxtries`` tries per trip."""
    def number(name: str, default: float) -> float:
        try:
            return float(given.get(name, default))
        except ValueError:
            return default  # randomTrips refuses what is no number, in validate

    trips = expected_trips(begin_s, end_s, periods)
    span = max(end_s - begin_s, 0.0)
    flows, intermediate = number("flows", 0), number("intermediate", 0)
    binomial, tries = number("binomial", 0), number("maxtries", 100)
    written = max(flows, 1) * max(binomial, 1) if flows > 0 else trips * (1 + max(intermediate, 0))
    for what, n, limit in (
            ("elements to write", written, MAX_TRIPS),
            ("Bernoulli draws (--binomial per second)", max(binomial, 0) * span, MAX_RANDOM_TRIPS_WORK),
            ("tries to find trips (--maxtries per trip)", max(tries, 1) * trips, MAX_RANDOM_TRIPS_WORK)):
        if n > limit:
            raise FieldError("mobility.demand.random_trips_options", f"about {n:.3g} {what} for "
                             f"randomTrips; at most {limit:.0e}")


# netgenerate's own defaults for the sizes of what it generates (its --help)
NETGENERATE_SIZES = {"grid.number": 5, "spider.arm-number": 13, "spider.circle-number": 20,
                     "rand.iterations": 100}


def _generated_junctions(sc: Workload) -> None:
    """A generated network's junctions, from netgenerate's size options as written (the build
    checks them again as netgenerate reads them, synonyms included: ``generated_junctions``)."""
    options = list(sc.mobility.netgenerate or [])
    settings: dict[str, str] = {}
    for i, item in enumerate(options):
        name, sep, value = item.lstrip("-").partition("=")
        if name in ("g", "s", "r"):  # netgenerate's short names of the three kinds
            name = {"g": "grid", "s": "spider", "r": "rand"}[name]
        if name in ("grid", "spider", "rand"):
            settings[name] = "true"
            continue
        settings[name] = value if sep else (options[i + 1] if i + 1 < len(options) else "")
    check_generated_junctions(settings)


def generated_junctions(settings: Mapping[str, str]) -> tuple[str, float] | None:
    """The kind of network netgenerate's ``settings`` (long names, no dashes) make and its
    junctions: a grid's x by y, a spider's arms by circles plus its centre, a random net's
    iterations; None when they name no kind."""
    size: dict[str, float] = dict(NETGENERATE_SIZES)
    for name, value in settings.items():
        try:
            size[name] = float(value)
        except ValueError:
            continue  # netgenerate refuses what is no number, in validate
    kinds = {"grid": size.get("grid.x-number", size["grid.number"])
             * size.get("grid.y-number", size["grid.number"]),
             "spider": size["spider.arm-number"] * size["spider.circle-number"] + 1,
             "rand": size["rand.iterations"]}
    return next(((kind, n) for kind, n in kinds.items()
                 if settings.get(kind, "false").lower() in ("true", "1", "on", "yes", "x")), None)


def check_generated_junctions(settings: Mapping[str, str]) -> None:
    """FieldError when ``settings`` make a network beyond MAX_GENERATED_JUNCTIONS, or with more
    lanes per road than MAX_GENERATED_LANES (netgenerate spends minutes on 1000 of them)."""
    try:
        lanes = float(settings.get("default.lanenumber", "1"))
    except ValueError:
        lanes = 1.0  # netgenerate refuses it itself
    if not lanes <= MAX_GENERATED_LANES:
        raise FieldError("mobility.netgenerate", f"{settings['default.lanenumber']} lanes per road "
                         f"(--default.lanenumber); at most {MAX_GENERATED_LANES}")
    found = generated_junctions(settings)
    if found is not None and found[1] > MAX_GENERATED_JUNCTIONS:
        raise FieldError("mobility.netgenerate", f"a {found[0]} network of about {found[1]:.3g} "
                         f"junctions; at most {MAX_GENERATED_JUNCTIONS:.0e}")


def _synthetic_frames(sc: Workload) -> None:
    if sc.learning is None or sc.learning.data.root is not None:
        return
    synth = sc.learning.data.synthetic
    n = synth.segments * synth.frames
    if n <= MAX_SYNTHETIC_FRAMES:
        return
    field = _oddest({"learning.data.synthetic.segments": synth.segments,
                     "learning.data.synthetic.frames": synth.frames}, {})
    raise FieldError(field, f"{synth.segments:.3g} segments x {synth.frames:.3g} frames are "
                     f"{n:.3g} synthetic frames to generate; at most {MAX_SYNTHETIC_FRAMES:.0e}")


def _rounds(sc: Workload) -> None:
    if sc.learning is None:
        return
    agg = sc.aggregation
    period = getattr(agg, "edge_period_s", None) or getattr(agg, "round_deadline_s", None)
    if period is not None:
        name = "edge_period_s" if hasattr(agg, "edge_period_s") else "round_deadline_s"
        period += getattr(agg, "min_round_gap_s", 0.0)
        n = sc.duration_s / period
        if n > MAX_ROUNDS:
            raise FieldError(f"aggregation.{name}", f"{period:g} s rounds over {sc.duration_s:g} s "
                             f"are up to {n:.3g} rounds; at most {MAX_ROUNDS:.0e}")
    if agg.eval_every_s is not None and sc.duration_s / agg.eval_every_s > MAX_EVALUATIONS:
        n = sc.duration_s / agg.eval_every_s
        raise FieldError("aggregation.eval_every_s", f"evaluating every {agg.eval_every_s:g} s "
                         f"over {sc.duration_s:g} s is {n:.3g} evaluations; at most "
                         f"{MAX_EVALUATIONS:.0e}")
