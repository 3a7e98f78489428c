"""Fuzzing the scenario schema: malformed values anywhere in grid_small.yaml are refused.

Every field of the pydantic schema (walked from ``Scenario``, including sections and methods
grid_small does not use) gets wrong types, non-finite numbers, values beyond its bounds, and
every section gets unknown keys, through ``--set`` as a user would write them. The property:
``cosim validate`` and ``cosim run --out DIR`` exit 2 with ONE line on stderr that names the
field, and no run folder appears. Most cases run the CLI in-process (CliRunner); a few run the
installed console script in a subprocess.

``COSIM_FUZZ_EXAMPLES`` sets the number of generated cases per test (default 200).
"""

from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types as at
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from cosim import scenario_loader
from cosim.cli import app
from cosim.errors import InputError
from cosim.scenario import Scenario
from cosim.scenario_loader import _variants, read_yaml_mapping, scenario_from_mapping

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

GRID = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
EXAMPLES = int(os.environ.get("COSIM_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NOT_A_WORD = "bcdgkpqz"  # letters that spell no YAML bool or null, no number, no option name


@dataclass(frozen=True)
class Leaf:
    """One field: its dotted path, the overrides that make its section exist, and its type."""

    path: str
    setup: tuple[str, ...]
    kind: str  # float | int | bool | str | literal | list | tuple | path
    bounds: tuple[at.BaseMetadata, ...] = ()
    literals: tuple[Any, ...] = ()
    takes_str: bool = False  # a list that also accepts one string
    takes_list: bool = False  # a number that may also be a list of numbers


@dataclass(frozen=True)
class Section:
    path: str
    setup: tuple[str, ...]
    fields: frozenset[str]


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The annotation without Optional and Annotated layers, and the metadata on the way."""
    meta: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *more = typing.get_args(annotation)
            meta.extend(more)
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, meta
            annotation = args[0]
        else:
            return annotation, meta


def _model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _leaf(path: str, setup: tuple[str, ...], annotation: Any, meta: list[Any]) -> Leaf | None:
    base, more = _unwrap(annotation)
    meta = [*meta, *more]
    takes_str = any(getattr(m, "func", None).__name__ in ("_one_or_many", "_split_options")
                    for m in meta if hasattr(m, "func"))
    bounds = tuple(m for m in meta if isinstance(m, at.Ge | at.Gt | at.Le | at.Lt))
    origin = typing.get_origin(base)
    if origin in (typing.Union, types.UnionType):  # e.g. PositiveFloat | list[PositiveFloat]
        arms = [_unwrap(a) for a in typing.get_args(base)]
        if any(a is float for a, _ in arms):
            arm_meta = next(m for a, m in arms if a is float)
            return Leaf(path, setup, "float",
                        tuple(m for m in arm_meta if isinstance(m, at.Ge | at.Gt | at.Le | at.Lt)),
                        takes_list=any(typing.get_origin(a) is list for a, _ in arms))
        return None
    if origin is typing.Literal:
        return Leaf(path, setup, "literal", literals=typing.get_args(base))
    if origin is list:
        return Leaf(path, setup, "list", takes_str=takes_str)
    if origin is tuple:
        return Leaf(path, setup, "tuple")
    kind = {float: "float", int: "int", bool: "bool", str: "str", Path: "path"}.get(base)
    return Leaf(path, setup, kind, bounds) if kind else None


# A list item with required fields starts from a valid one, so an error names the field tested.
ITEMS = {"aggregation.tiers": "{modules: [heads.*], tier: cloud}",
         "learning.drift.events": "{at_s: 0, tasks: [seg3d]}"}


def walk(model: type[BaseModel], path: str, setup: tuple[str, ...], raw: Any,
         leaves: list[Leaf], sections: list[Section]) -> None:
    """Collect the leaves and sections of ``model`` at ``path`` (``raw``: grid_small there). A
    section that takes other keys (a user's strategy: its own config checks them, once its module
    is imported) is no unknown-key case."""
    if model.model_config.get("extra") != "allow":
        sections.append(Section(path, setup, frozenset(model.model_fields)))
    for name, info in model.model_fields.items():
        sub = f"{path}.{name}" if path else name
        here = raw.get(name) if isinstance(raw, dict) else None
        variants = _variants(info.annotation)
        if variants:  # a discriminated union: each method with its own fields
            for tag, cls in variants.items():
                walk(cls, sub, (*setup, f"{sub}={{method: {tag}}}"), {}, leaves, sections)
            continue
        base, _ = _unwrap(info.annotation)
        if sub == "radio.cells":  # a list of cells, or generators
            cell_list, generators = typing.get_args(base)
            walk(typing.get_args(cell_list)[0], f"{sub}.0", setup, here[0], leaves, sections)
            gen_setup = (*setup, f"{sub}={{hex: {{rings: 0}}, extra: [{{id: e, x: 1, y: 1}}]}}")
            walk(generators, sub, gen_setup, {"hex": {"rings": 0}, "extra": [{}]}, leaves,
                 sections)
            continue
        if sub == "radio.cells.extra":
            walk(typing.get_args(base)[0], f"{sub}.0", setup, {}, leaves, sections)
            continue
        cls = _model(base)
        if cls is None and typing.get_origin(base) is list:
            item = _model(_unwrap(typing.get_args(base)[0])[0])
            if item is not None:  # one item, valid but for the field under test
                first = ITEMS.get(sub, "{}")
                walk(item, f"{sub}.0", (*setup, f"{sub}=[{first}]"), {}, leaves, sections)
                continue
        if cls is not None:
            required = [n for n, f in cls.model_fields.items() if f.is_required()]
            if here is None and required:
                continue  # creating the section would miss its required fields
            walk(cls, sub, setup, here or {}, leaves, sections)
            continue
        leaf = _leaf(sub, setup, info.annotation, list(info.metadata))
        if leaf is not None:
            leaves.append(leaf)


LEAVES: list[Leaf] = []
SECTIONS: list[Section] = []
walk(Scenario, "", (), read_yaml_mapping(GRID), LEAVES, SECTIONS)
SECTIONS = [s for s in SECTIONS if s.path]  # a top-level unknown key: tested in test_scenario
BOUNDED = [leaf for leaf in LEAVES if leaf.bounds and leaf.kind in ("float", "int")]
FLOATS = [leaf for leaf in LEAVES if leaf.kind == "float"]

words = st.text(alphabet=NOT_A_WORD, min_size=1, max_size=12)
int_lists = st.lists(st.integers(-5, 5), min_size=1, max_size=3)
mappings = st.dictionaries(words, st.integers(0, 9), min_size=1, max_size=2)


def beyond(leaf: Leaf) -> st.SearchStrategy[float | int]:
    """A finite value outside one of the leaf's bounds."""
    options = []
    for b in leaf.bounds:
        if leaf.kind == "int":
            if isinstance(b, at.Ge | at.Gt):
                edge = b.ge if isinstance(b, at.Ge) else b.gt + 1
                options.append(st.integers(edge - 10**12, edge - 1))
            else:
                edge = b.le if isinstance(b, at.Le) else b.lt - 1
                options.append(st.integers(edge + 1, edge + 10**12))
        elif isinstance(b, at.Ge | at.Gt):
            edge = b.ge if isinstance(b, at.Ge) else b.gt
            options.append(st.floats(-1e12, edge, exclude_max=isinstance(b, at.Ge)))
        else:
            edge = b.le if isinstance(b, at.Le) else b.lt
            options.append(st.floats(edge, 1e300, exclude_min=isinstance(b, at.Le)))
    return st.one_of(options)


def wrong_type(leaf: Leaf) -> st.SearchStrategy[Any]:
    """A value of a type the leaf never accepts."""
    if leaf.kind in ("float", "int"):
        extra = [st.floats(0.1, 0.9).map(lambda f: 3 + f)] if leaf.kind == "int" else []
        lists = [st.lists(words, min_size=1, max_size=2)] if leaf.takes_list else [int_lists]
        return st.one_of(words, mappings, *lists, *extra)
    if leaf.kind == "bool":
        return st.one_of(st.integers(2, 10**6), words, int_lists, mappings)
    if leaf.kind in ("str", "path"):
        return st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         int_lists, mappings)
    if leaf.kind == "literal":
        if all(isinstance(v, str) for v in leaf.literals):
            return st.one_of(words, int_lists, mappings)
        return st.integers(-100, 100).filter(lambda v: v not in leaf.literals)
    if leaf.kind == "list":
        return st.one_of(st.integers(), mappings) if leaf.takes_str else st.one_of(
            st.integers(), mappings, words)
    return st.one_of(words, st.integers(), mappings)  # tuple


@st.composite
def malformed(draw) -> tuple[list[str], str]:
    """``--set`` overrides that break one field or section, and the field the error must name."""
    kind = draw(st.sampled_from(["non_finite", "out_of_range", "wrong_type", "unknown_key"]))
    if kind == "unknown_key":
        section = draw(st.sampled_from(SECTIONS))
        key = "zz" + draw(words)
        return [*section.setup, f"{section.path}.{key}={draw(st.integers(0, 9))}"], \
            f"{section.path}.{key}"
    if kind == "non_finite":
        leaf = draw(st.sampled_from(FLOATS))
        value: Any = draw(st.sampled_from([math.nan, math.inf, -math.inf, "nan", "-inf",
                                           "Infinity"]))
    elif kind == "out_of_range":
        leaf = draw(st.sampled_from(BOUNDED))
        value = draw(beyond(leaf))
    else:
        leaf = draw(st.sampled_from(LEAVES))
        value = draw(wrong_type(leaf))
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    text = text.removesuffix("...").strip()  # a plain scalar ends its document with "..."
    return [*leaf.setup, f"{leaf.path}={text}"], leaf.path


runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def parsed_once():
    """The in-process cases read grid_small's YAML once (PyYAML's pure-Python scanner is most of
    a case's time; the YAML layer has its own tests): the CLI, overrides, validation and the
    error line still run per case. The console-script cases read the file themselves."""
    raw = read_yaml_mapping(GRID)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scenario_loader, "read_yaml_mapping", lambda path: copy.deepcopy(raw))
        yield


def _refused(result, field: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    # the field itself, or an item inside it (``period_s.0`` of a list given for a number)
    assert re.match(rf"error: {re.escape(str(GRID))}: {re.escape(field)}(\.\w+)*: ", lines[0]), \
        (field, lines[0])
    assert "Traceback" not in result.output


def _sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def test_the_schema_walk_reaches_every_section():
    """The fuzzer covers the schema, not just grid_small's keys (a walk that found nothing
    would make the properties below vacuous)."""
    paths = {leaf.path for leaf in LEAVES}
    for expected in ("duration_s", "radio.cells.0.x", "radio.cells.hex.isd_m",
                     "radio.cells.intersections.count", "radio.cells.extra.0.tx_power_dbm",
                     "radio.handoff.qout_db", "radio.background.holding_s",
                     "learning.model.peft.scale", "aggregation.buffer_size",
                     "aggregation.edge_period_s", "clients.profiles.0.flops",
                     "mobility.demand.parking.duration_s", "onboarding.rounds"):
        assert expected in paths, expected
    assert len(LEAVES) > 150 and len(BOUNDED) > 80 and len(FLOATS) > 60


def _sweep() -> list[tuple[list[str], str]]:
    """One fixed case per field and mutation kind: no field left to chance."""
    cases: list[tuple[list[str], str]] = []
    for leaf in LEAVES:
        wrong = {"bool": [7], "str": [[1]], "path": [[1]], "list": [{"bq": 1}, 5],
                 "literal": ["bqz" if isinstance(leaf.literals[0], str) else -99] if leaf.literals
                 else [], "tuple": ["bq"]}.get(leaf.kind, ["bq", ["bq"] if leaf.takes_list else [1]])
        values: list[Any] = [*wrong]
        if leaf.kind == "float":
            values += [math.nan, -math.inf]
        if leaf.kind in ("float", "int"):
            values.append(True)  # YAML's true is no number (pydantic's lax mode would take 1)
        for b in leaf.bounds if leaf.kind in ("float", "int") else ():
            if isinstance(b, at.Ge | at.Gt):
                edge = b.ge if isinstance(b, at.Ge) else b.gt
                values.append(edge - (1 if leaf.kind == "int" or isinstance(b, at.Ge) else 0))
            else:
                edge = b.le if isinstance(b, at.Le) else b.lt
                values.append(edge + (1 if leaf.kind == "int" or isinstance(b, at.Le) else 0) * max(
                    1, abs(edge)))
        for value in values:
            text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...")
            cases.append(([*leaf.setup, f"{leaf.path}={text.strip()}"], leaf.path))
    for section in SECTIONS:
        cases.append(([*section.setup, f"{section.path}.zzq=1"], f"{section.path}.zzq"))
    return cases


def test_every_field_refuses_each_kind_of_malformed_value():
    """The loader in-process, every field: wrong type, NaN/inf, each bound crossed; every
    section: an unknown key. The error names exactly that field."""
    failures = []
    raw = read_yaml_mapping(GRID)  # parsed once: the YAML scanner is the slow part
    for overrides, field in _sweep():
        try:
            scenario_from_mapping(copy.deepcopy(raw), GRID, overrides)
        except InputError as exc:
            if exc.field != field and not (exc.field or "").startswith(f"{field}."):
                failures.append((overrides, field, exc.line()))
        else:
            failures.append((overrides, field, "accepted"))
    assert not failures, failures[:10]
    assert len(_sweep()) > 500


@FUZZ
@given(case=malformed())
def test_validate_refuses_malformed_scenarios(case):
    overrides, field = case
    _refused(runner.invoke(app, ["validate", str(GRID), *_sets(overrides)]), field)


@settings(FUZZ, max_examples=max(EXAMPLES // 4, 20))
@given(case=malformed())
def test_run_refuses_malformed_scenarios_before_any_run_folder(case, tmp_path_factory):
    overrides, field = case
    out = tmp_path_factory.mktemp("fuzz") / "run"
    _refused(runner.invoke(app, ["run", str(GRID), "--out", str(out), *_sets(overrides)]), field)
    assert not out.exists()


@settings(FUZZ, max_examples=3)
@given(case=malformed())
def test_console_script_refuses_generated_cases(case, tmp_path_factory):
    """The installed entry point (a fresh process) keeps the same promise."""
    overrides, field = case
    out = tmp_path_factory.mktemp("fuzz") / "run"
    proc = subprocess.run([sys.executable, "-m", "cosim.cli", "run", str(GRID), "--out", str(out),
                           *_sets(overrides)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert re.match(rf"error: {re.escape(str(GRID))}: {re.escape(field)}(\.\w+)*: ", proc.stderr), \
        proc.stderr
    assert not out.exists()
