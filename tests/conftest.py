"""Shared fixtures: an isolated build cache and paths to the bundled scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "scenarios"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Build networks and demand into a fresh cache so tests never depend on earlier runs."""
    mp = pytest.MonkeyPatch()
    mp.setenv("COSIM_CACHE_DIR", str(tmp_path_factory.mktemp("cosim-cache")))
    yield
    mp.undo()


@pytest.fixture
def grid_small() -> Path:
    return SCENARIOS / "grid_small.yaml"


@pytest.fixture
def sf_downtown() -> Path:
    return SCENARIOS / "sf_downtown.yaml"
