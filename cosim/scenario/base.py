"""What every scenario section shares: strict models and input paths resolved against the YAML
file's folder."""

from __future__ import annotations

import shlex
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from cosim.bounded_read import virtual_file
from cosim.registry import USER_REFERENCE, did_you_mean, is_user_reference


class UserCode:
    """Marks a scenario field that may name the user's own code, ``package.module:Name``: the
    one place that says which fields those are (see ``extension_fields``)."""


USER_CODE = UserCode()


def extension_fields(model: type[BaseModel], prefix: str = "") -> tuple[str, ...]:
    """The dotted names of every field of ``model`` (and of the sections inside it) marked
    ``USER_CODE``: where a scenario may name a module to import."""
    found: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        if any(isinstance(m, UserCode) for m in field.metadata) or _marked(field.annotation):
            found.append(path)
        for section in _models_in(field.annotation):
            found.extend(extension_fields(section, f"{path}."))
    return tuple(dict.fromkeys(found))


def _marked(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Annotated and any(isinstance(m, UserCode) for m in args[1:]):
        return True
    return any(_marked(a) for a in args)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]


def named_paths(value: Any, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """``(dotted field, path)`` for every path a validated scenario (or a part of it) names,
    anywhere in it: its inputs, and ``output.root``."""
    if isinstance(value, Path):
        yield prefix, value
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            key = field.alias or name
            yield from named_paths(getattr(value, name), f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from named_paths(item, f"{prefix}.{i}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from named_paths(item, f"{prefix}.{key}")


def user_references(mapping: Any, fields: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(field, value)`` for each value of ``fields`` in a scenario mapping (not yet validated)
    that names a module: read as plain data, nothing imported."""
    found = []
    for path in fields:
        value = mapping
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and ":" in item:
                found.append((path, item))
    return found


def extension_name(kind: str, known: tuple[str, ...]) -> Any:
    """A field naming an implementation of an extension point: one of ``known``, or
    ``package.module:Name`` in the user's own code (imported only once the whole scenario is
    valid, by the layer that uses it)."""

    def check(value: str) -> str:
        if value in known or is_user_reference(value):
            return value
        if ":" in value:
            raise ValueError(f"{value!r}: give a module and a name, as module:Name")
        raise ValueError(f"unknown {kind} {value!r}{did_you_mean(value, known)} "
                         f"(known: {', '.join(known)}; or module:Name)")

    schema = {"anyOf": [{"enum": list(known)},
                        {"type": "string", "pattern": USER_REFERENCE.pattern}]}
    return Annotated[str, AfterValidator(check), WithJsonSchema(schema), USER_CODE]


def whole_multiple(value: float, step: float) -> bool:
    ratio = value / step
    return ratio > 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-9


class FieldError(ValueError):
    """A check across fields that knows which field is wrong (dotted, from the model that
    raises it); the loader names that field instead of the model."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class StrictModel(BaseModel):
    """Base for every scenario section: unknown keys are errors, defaults are validated, and no
    float is NaN or infinite (YAML's ``.nan`` / ``.inf`` would otherwise pass every bound check
    and surface as NaN deep inside a run)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_truth_values_as_numbers(cls, data: Any) -> Any:
        """``true`` where a number belongs is a mistake, not 1 (pydantic's lax mode would take
        it): ``seed: true`` or ``duration_s: yes`` is refused naming the field."""
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                key = field.alias or name
                if key in data and _truth_value_for_number(field.annotation, data[key]):
                    raise FieldError(name, "a number is needed where true or false was given")
        return data


def _truth_value_for_number(annotation: Any, value: Any) -> bool:
    """Whether ``value`` holds a bool where ``annotation`` takes only numbers (also inside lists
    and tuples of numbers)."""
    if isinstance(value, bool):
        return _numbers_only(annotation)
    if isinstance(value, list | tuple):
        items = _sequence_items(annotation)
        return items is not None and any(_truth_value_for_number(items, v) for v in value)
    return False


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return tuple(m for a in typing.get_args(annotation) for m in _members(a))
    return (annotation,)


def _numbers_only(annotation: Any) -> bool:
    members = _members(annotation)
    takes_bool = any(m is bool or m is Any or (typing.get_origin(m) is Literal and any(
        isinstance(v, bool) for v in typing.get_args(m))) for m in members)
    return not takes_bool and any(m in (int, float) for m in members)


def _sequence_items(annotation: Any) -> Any | None:
    """The item annotation of a list or tuple field (the first of a fixed tuple's), or None."""
    for member in _members(annotation):
        if typing.get_origin(member) in (list, tuple) and typing.get_args(member):
            return typing.get_args(member)[0]
    return None


def _one_or_many(value: Any) -> Any:
    """A single item where a list is expected is a list of one (``routes: my.rou.xml``)."""
    return [value] if isinstance(value, str | Path) else value


def _split_options(value: Any) -> Any:
    """Command-line options given as one string are split as a shell would (``"--a 1 --b"``)."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:  # an unclosed quote
            raise ValueError(f"cannot split {value[:60]!r} into options: {exc}") from None
    return value


OptionList = Annotated[list[str], BeforeValidator(_split_options)]
"""Command-line options of a SUMO tool: a list, or one string split like a shell."""

NameList = Annotated[list[str], BeforeValidator(_one_or_many)]
"""Names (types, ids): a list, or one name."""

Coordinate = Annotated[float, Field(ge=-1e7, le=1e7)]
"""A position in the network's frame (metres): beyond 10,000 km is a typo, not a place."""

SEED_MAX = 2**31 - 1  # SUMO's --seed is a 32-bit int


def _resolved(value: Path, info: ValidationInfo) -> Path:
    """``value`` against the scenario's folder, links followed; a link loop or an over-long path
    is an input error, not a crash."""
    base = Path((info.context or {}).get("base_dir", "."))
    path = value if value.is_absolute() else base / value
    try:
        resolved = path.resolve()
        resolved.exists()  # raises where the path cannot even be looked up (too long)
    except RuntimeError:  # Python 3.11 on a link loop
        raise ValueError(f"{_short(path)}: a loop of symbolic links") from None
    except OSError as exc:
        raise ValueError(f"{_short(path)}: {exc.strerror or exc}") from None
    return resolved


def _short(path: Path) -> str:
    """A path for an error line: its start and end when it is longer than a line."""
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-50:]}"


def resolve_input_file(value: Path, info: ValidationInfo) -> Path:
    return readable_input(_resolved(value, info))


def _not_a_file(path: Path) -> str:
    """Why ``path`` cannot be read as a file: missing, or a folder, FIFO or device (which would
    block or never end)."""
    if not path.exists():
        return f"file not found: {path}"
    return f"not a regular file: {path}" + (" (a folder)" if path.is_dir() else "")


MAX_INPUT_BYTES = 8 * 2**30  # a city's network or a ViT-L checkpoint is far less


def readable_input(path: Path) -> Path:
    """A regular file of a sane size outside the kernel's virtual file systems."""
    if not path.is_file():
        raise ValueError(_not_a_file(path))
    if virtual_file(path):
        raise ValueError(f"not a regular file: {path} (a virtual file of the kernel)")
    size = path.stat().st_size
    if size > MAX_INPUT_BYTES:
        raise ValueError(f"{path}: {size:,} bytes, more than any input cosim reads "
                         f"(at most {MAX_INPUT_BYTES:,})")
    return path


InputFile = Annotated[Path, AfterValidator(resolve_input_file)]
"""A file the scenario reads; relative to the YAML file's folder; must exist."""

InputFiles = Annotated[list[InputFile], BeforeValidator(_one_or_many)]
"""Files the scenario reads: a list, or one file."""


def _resolve_trace(value: Path, info: ValidationInfo) -> Path:
    path = _resolved(value, info)
    if path.is_dir():
        path = path / "mobility.parquet"
    readable_input(path)
    return path


TraceFile = Annotated[Path, AfterValidator(_resolve_trace)]


def _resolve_input_dir(value: Path, info: ValidationInfo) -> Path:
    path = _resolved(value, info)
    if not path.is_dir():
        raise ValueError(f"folder not found: {path}")
    return path


InputDir = Annotated[Path, AfterValidator(_resolve_input_dir)]
