"""Read a scenario YAML, apply ``--set`` overrides, validate, and turn every problem into one line.

The error line names the file and the dotted field, e.g.
``error: scenarios/x.yaml: mobilty: unknown key (did you mean 'mobility'?)``.
"""

from __future__ import annotations

import copy
import reprlib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Tag, ValidationError

from cosim.bounded_read import read_bounded_text
from cosim.errors import InputError
from cosim.registry import did_you_mean
from cosim.safe_yaml import RefusedYamlError, load_yaml
from cosim.scenario import Scenario
from cosim.scenario.base import FieldError

MAX_FILE_BYTES = 4 * 2**20  # a scenario is kilobytes (a thousand cells: ~150 kB); more is not one
DICT_SOURCE = Path("<scenario dict>")  # the "file" an InputError names for an in-memory scenario

Override = tuple[str, Any]  # a dotted key and the value it gets


def _short_repr() -> reprlib.Repr:
    """repr of user input cut to a few items: a huge (or alias-shared) value is never walked."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 2, 4, 4, 40, 40
    return short


_SHORT = _short_repr()


def load_scenario(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), seed: int | None = None
) -> Scenario:
    """Load and validate a scenario; raise InputError (one clear line) on any bad input."""
    path = Path(path)
    return scenario_from_mapping(read_yaml_mapping(path), path, overrides, seed)


def scenario_from_mapping(
    raw: dict[str, Any], path: Path, overrides: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
) -> Scenario:
    """Validate a scenario already read from ``path`` (``raw`` is changed by the overrides)."""
    raw.setdefault("name", path.stem)
    for item in overrides:
        apply_override(raw, item, path)
    if seed is not None:
        raw["seed"] = seed
    return validate_mapping(raw, path, path.resolve().parent)


def validate_mapping(raw: dict[str, Any], path: Path, base_dir: Path) -> Scenario:
    """The scenario a mapping describes; errors name ``path``, relative paths start at ``base_dir``."""
    _refuse_huge_integers(raw, path, "")
    try:
        scenario = Scenario.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise as_input_error(exc, path) from None
    except RecursionError:
        raise InputError(path, None, "values nested too deeply to validate") from None
    check_machine_supports(scenario, path)
    return scenario


@dataclass(frozen=True, eq=False)
class ScenarioSpec:
    """A scenario as data: its mapping (as read from its file, or given to the Python API), the
    file it came from (None: built in memory) and overrides as values, applied in order.

    What a compare or onboarding job is built from and a worker process rebuilds its run's
    scenario with: picklable, and the same whichever process loads it."""

    base: Mapping[str, Any]
    source: Path | None = None
    overrides: tuple[Override, ...] = ()

    @classmethod
    def read(cls, path: Path, items: Sequence[str] = ()) -> ScenarioSpec:
        """A scenario file with ``--set`` overrides (``dotted.key=value``, values as YAML)."""
        path = Path(path)
        return cls(read_yaml_mapping(path), path, tuple(parse_override(i, path) for i in items))

    @property
    def named(self) -> Path:
        """The file its errors name."""
        return self.source or DICT_SOURCE

    def plus(self, *overrides: Override) -> ScenarioSpec:
        return replace(self, overrides=(*self.overrides, *overrides))

    def mapping(self) -> dict[str, Any]:
        """The base with the overrides applied (a copy: the spec is never changed)."""
        raw = copy.deepcopy(dict(self.base))
        for key, value in self.overrides:
            set_override(raw, key, copy.deepcopy(value), self.named)
        return raw

    def load(self) -> Scenario:
        if self.source is None:  # relative paths of an in-memory scenario: from the working folder
            return validate_mapping(self.mapping(), DICT_SOURCE, Path.cwd())
        return scenario_from_mapping(self.mapping(), self.source)


def check_machine_supports(scenario: Scenario, path: Path | None) -> None:
    """An explicit bf16 on a device that would emulate it is refused (``auto`` falls back): a
    check of this machine, not of the file, so it runs once the file is valid."""
    learning = scenario.learning
    if learning is None or learning.precision != "bf16":
        return
    from cosim.learning.precision import native_bf16, pick_device  # torch: only when asked for

    native, why = native_bf16(pick_device(learning.local.device))
    if not native:
        raise InputError(path, "learning.precision", f"bf16 asked for, but {why}: use fp32 or auto")


def _refuse_huge_integers(value: Any, path: Path, where: str) -> None:
    """No scenario value is an integer beyond 64 bits: YAML reads a hex number of any length,
    which Python then cannot even print in decimal (its 4,300-digit limit)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        raise InputError(path, where or None, f"an integer of {value.bit_length()} bits: not a "
                         "usable value (at most 64 bits)")
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, child in items:
        _refuse_huge_integers(child, path, f"{where}.{key}" if where else str(key))


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Parse a YAML file that must hold a mapping at the top."""
    try:
        text = read_bounded_text(path, "scenario", MAX_FILE_BYTES)
    except FileNotFoundError:
        raise InputError(path, None, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, None, "is a folder, not a scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"cannot read: {exc}") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(path, None, f"not valid YAML: {where}{problem}") from None
    except RecursionError:
        raise InputError(path, None, "not valid YAML: nested too deeply") from None
    except ValueError as exc:  # an integer of thousands of digits (Python's conversion limit)
        raise InputError(path, None, f"not a usable value: {str(exc)[:100]}") from None
    if not isinstance(data, dict):
        raise InputError(path, None, "a scenario must be a YAML mapping of sections")
    return data


def apply_override(raw: dict[str, Any], item: str, path: Path) -> None:
    """Apply one ``dotted.key=value`` override; the value is parsed as YAML (1, true, [a, b])."""
    set_override(raw, *parse_override(item, path), path)


def parse_override(item: str, path: Path) -> Override:
    """``dotted.key=value`` as (key, value); the value is parsed as YAML (1, true, [a, b]), and
    text that is not YAML is kept as it is (a name, a path)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise InputError(path, "--set", f"expected dotted.key=value, got {item!r}")
    try:
        value = load_yaml(text) if text.strip() else None
    except RefusedYamlError as exc:
        raise InputError(path, key.strip(), f"not a valid value: {exc.problem}") from None
    except yaml.YAMLError:
        value = text  # not YAML: the text itself (a name, a path)
    except RecursionError:
        raise InputError(path, key.strip(), "value nested too deeply") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise InputError(path, key.strip(), f"not a usable value: {str(exc)[:100]}") from None
    return key.strip(), value


def set_override(raw: dict[str, Any], key: str, value: Any, path: Path) -> None:
    """Set ``raw``'s dotted ``key`` (list items by index) to ``value``, making missing sections."""
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        child = _get_child(node, part)
        if child is None:
            child = {}
            _set_child(node, part, child, path, ".".join(parts[: depth + 1]))
        elif not isinstance(child, dict | list):
            where = ".".join(parts[: depth + 1])
            raise InputError(path, where, f"is a value, cannot set {key} inside it")
        node = child
    _set_child(node, parts[-1], value, path, key)


def _get_child(node: Any, part: str) -> Any:
    if isinstance(node, list):
        idx = int(part) if part.lstrip("-").isdigit() else None
        return node[idx] if idx is not None and -len(node) <= idx < len(node) else None
    return node.get(part)


def _set_child(node: Any, part: str, value: Any, path: Path, where: str) -> None:
    if isinstance(node, list):
        if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
            raise InputError(path, where, f"no list item {part}")
        node[int(part)] = value
    else:
        node[part] = value


def as_input_error(exc: ValidationError, path: Path) -> InputError:
    """A pydantic validation error as cosim's one-line InputError naming the field (the API uses
    it for scenarios given as mappings)."""
    errors = exc.errors()
    # An unknown key (often a typo) explains the "missing" errors that come with it: report it.
    # Otherwise the deepest location is the most specific (a union reports every member).
    err = next((e for e in errors if e["type"] == "extra_forbidden"),
               max(errors, key=lambda e: len(_field_path(e["loc"]))))
    loc = _field_path(err["loc"])
    field = ".".join(str(p) for p in loc) or None
    problem = (err.get("ctx") or {}).get("error")
    if isinstance(problem, FieldError):  # a check across fields that names the culprit
        return InputError(path, ".".join(filter(None, (field, problem.field))), problem.message)
    if err["type"] == "union_tag_invalid":  # a discriminated union: the tag names the variant
        tag, known = err["ctx"]["tag"], err["ctx"]["expected_tags"]
        return InputError(path, f"{field}.method",
                          f"unknown method {tag!r} (known: {known.replace(chr(39), '')})")
    if err["type"] == "extra_forbidden":
        owner, allowed, variants = _fields_at(Scenario, list(err["loc"][:-1]))
        key = str(loc[-1])
        elsewhere = [tag for tag, fields in variants.items() if key in fields]
        if owner is not None and elsewhere:
            return InputError(path, field, f"not a setting of {owner!r} (it belongs to "
                              f"{', '.join(elsewhere)}); give that method, or leave the key out")
        message = "unknown key" + did_you_mean(key, allowed)
        if message == "unknown key" and allowed:
            message += f" (allowed: {', '.join(allowed)})"
        return InputError(path, field, message)
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if err["type"] not in ("value_error", "missing") and "input" in err:
        message += f" (got {_SHORT.repr(err['input'])})"
    return InputError(path, field, message)


def _field_path(loc: tuple) -> list:
    """The location as the user wrote it: without pydantic's union-member and validator tags
    (``list[CellConfig]``, ``function-after[...]``) and without a discriminated union's tag."""
    out: list = []
    current: Any = Scenario
    for part in loc:
        variants = _variants(current)
        if variants and part in variants:  # the tag pydantic puts after a discriminated field
            current = variants[part]
            continue
        if isinstance(part, str) and (part.startswith(("function-", "constrained-")) or "["
                                      in part or part[:1].isupper()):
            continue
        if isinstance(part, str) and current is not None and _model_in(current) is None:
            continue  # a union member's tag below a plain field ("float", "int")
        out.append(part)
        cls = _model_in(current)
        current = cls.model_fields[part].annotation if cls is not None and isinstance(part, str) \
            and part in cls.model_fields else current if isinstance(part, int) else None
    return out


def _fields_at(model: type[BaseModel], loc: list[Any]) -> tuple[str | None, list[str], dict[str, list[str]]]:
    """At ``loc`` inside ``model``: the discriminated variant's tag (or None), the field names
    there (for did-you-mean), and every variant's field names (a key may belong to another)."""
    current: Any = model
    tag: str | None = None
    variants: dict[str, Any] = {}
    for part in loc:
        options = _variants(current)
        if options and part in options:
            tag, variants, current = part, options, options[part]
            continue
        if isinstance(part, int):
            continue
        cls = _model_in(current)
        if cls is None or part not in cls.model_fields:
            return None, [], {}
        current, tag, variants = cls.model_fields[part].annotation, None, {}
    cls = _model_in(current)
    return (tag, list(cls.model_fields) if cls else [],
            {t: list(c.model_fields) for t, c in variants.items() if t != tag})


def _variants(annotation: Any) -> dict[str, type[BaseModel]]:
    """Tag -> model of a discriminated union (members ``Annotated[Model, Tag(...)]``), else {}."""
    out = {}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            if typing.get_origin(member) is typing.Annotated:
                model, *meta = typing.get_args(member)
                out.update({m.tag: model for m in meta if isinstance(m, Tag)})
    return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation such as ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
