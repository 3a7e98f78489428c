"""The scenario's JSON Schema, generated from the pydantic models of this package.

Editors use it for completion and checking (``cosim schema > scenario.schema.json``; the embedded
scenarios name it in a ``# yaml-language-server: $schema=...`` first line), and the scenario key
reference is generated from it. A field's description is its ``Field(description=...)`` or else
the comment that documents it in the model's source: the comment at the end of its line, or the
comment lines right above it.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from functools import cache
from typing import Any

from pydantic import BaseModel

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _comment_lines(source: str) -> dict[int, str]:
    """Line number -> the text of the comment on it (without ``#``)."""
    found: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            parts = (part.strip() for part in token.string.split("#"))
            kept = (part for part in parts if not part.startswith(("type:", "noqa")))
            text = " ".join(part for part in kept if part)
            if text:
                found[token.start[0]] = text
    return found


def _code_lines(source: str) -> set[int]:
    """Lines that hold code (a comment-only line is not one)."""
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                              tokenize.DEDENT, tokenize.ENDMARKER):
            lines.add(token.start[0])
    return lines


def _for_users(comment: str) -> str:
    """A comment without its notes to the type checker (``mypy: ...`` to the end)."""
    return re.split(r"\bmypy:", comment)[0].strip()


@cache
def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """The comments that document the fields ``model``'s own class body defines."""
    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):  # no source (a frozen build): no comments
        return {}
    source = inspect.cleandoc("\n" + source) if source.startswith((" ", "\t")) else source
    comments, code = _comment_lines(source), _code_lines(source)
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    found: dict[str, str] = {}
    for statement in body.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        last = statement.end_lineno or statement.lineno
        trailing = [comments[n] for n in range(statement.lineno, last + 1) if n in comments]
        above: list[str] = []
        line = statement.lineno - 1
        while line in comments and line not in code:
            above.insert(0, comments[line])
            line -= 1
        text = " ".join(_for_users(" ".join(part)) for part in (above, trailing) if part).strip()
        if text:
            found[statement.target.id] = text
    return found


def describe(model: type[BaseModel], field: str) -> str:
    """A field's description: ``Field(description=...)``, else the nearest class's comment."""
    info = model.model_fields.get(field)
    if info is not None and info.description:
        return info.description
    from cosim.scenario.descriptions import DESCRIPTIONS

    for cls in model.__mro__:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        if field in field_comments(cls):
            return field_comments(cls)[field]
        if f"{cls.__name__}.{field}" in DESCRIPTIONS:
            return DESCRIPTIONS[f"{cls.__name__}.{field}"]
    return ""


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from ``root`` by its fields' annotations, by class name."""
    found: dict[str, type[BaseModel]] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ not in found:
                found[annotation.__name__] = annotation
                for info in annotation.model_fields.values():
                    visit(info.annotation)
            return
        for arg in getattr(annotation, "__args__", ()) or ():
            visit(arg)
        origin = getattr(annotation, "__origin__", None)
        if origin is not None and origin is not annotation:
            visit(origin)
        metadata = getattr(annotation, "__metadata__", None)
        if metadata is not None:  # Annotated[X, ...]
            visit(annotation.__origin__)

    visit(root)
    return found


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file, with every field described."""
    from cosim.scenario.experiment import Scenario

    schema = Scenario.model_json_schema(mode="validation")
    models = _models(Scenario)
    definitions = schema.get("$defs", {})
    for name, definition in [("Scenario", schema), *definitions.items()]:
        model = models.get(name)
        if model is None:
            continue
        for field, prop in definition.get("properties", {}).items():
            text = describe(model, field)
            if text and "description" not in prop:
                prop["description"] = text
    return {"$schema": SCHEMA_DIALECT, **schema}
