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


@pytest.fixture(scope="session")
def private_mounts(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip unless this system lets a test mount in a private namespace (``unshare -m``, as
    root): the bind-mount and full-disk cases need it; a container without the right may not."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount in a private namespace")
    probe = tmp_path_factory.mktemp("mount-probe")
    done = subprocess.run(["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o size=64k tmpfs "{probe}"'],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount in a private namespace here: {done.stderr.strip()[:80]}")
