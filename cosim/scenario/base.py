"""What every scenario section shares: strict models and input paths resolved against the YAML
file's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationInfo,
)


def whole_multiple(value: float, step: float) -> bool:
    ratio = value / step
    return ratio > 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-9


class StrictModel(BaseModel):
    """Base for every scenario section: unknown keys are errors, defaults are validated."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def resolve_input_file(value: Path, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir", "."))
    path = value if value.is_absolute() else base / value
    path = path.resolve()
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


InputFile = Annotated[Path, AfterValidator(resolve_input_file)]
"""A file the scenario reads; relative to the YAML file's folder; must exist."""


def _resolve_trace(value: Path, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir", "."))
    path = (value if value.is_absolute() else base / value).resolve()
    if path.is_dir():
        path = path / "mobility.parquet"
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


TraceFile = Annotated[Path, AfterValidator(_resolve_trace)]
def _resolve_input_dir(value: Path, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir", "."))
    path = (value if value.is_absolute() else base / value).resolve()
    if not path.is_dir():
        raise ValueError(f"folder not found: {path}")
    return path


InputDir = Annotated[Path, AfterValidator(_resolve_input_dir)]
