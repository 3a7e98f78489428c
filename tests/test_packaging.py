"""A wheel (not only an editable install) holds every module: pyproject finds packages by their
``__init__.py``, so every folder of Python files under cosim/ must have one."""

from __future__ import annotations

from pathlib import Path

import tomllib
from setuptools import find_packages

REPO = Path(__file__).resolve().parent.parent


def test_every_python_folder_is_a_found_package():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(str(REPO), **cfg["packages"]["find"]))
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "cosim").rglob("*.py")}
    assert folders <= found, f"folders without __init__.py: {sorted(folders - found)}"


def test_model_configs_ship_with_the_package():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = cfg["package-data"]["cosim.learning"]
    shipped = {p.name for pattern in patterns for p in (REPO / "cosim" / "learning").glob(pattern)}
    assert {"cosim-tiny.json"} <= shipped
