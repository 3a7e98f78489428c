"""Waymo v2 segments as Waymo ships them: without LiDAR components (the PVPS segments), with
LiDAR missing for some frames, or with panoptic labels for only some frames. Such frames load as
camera-only or unlabelled samples, `cosim data check` passes them, and their clients train the
tasks they can: a camera-only client completes rounds of the camera tasks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.learning.classes import IGNORE_INDEX
from cosim.learning.data import waymo_schema as W
from cosim.learning.data.synth import SynthConfig, generate, segment_name
from cosim.learning.data.waymo_v2 import WaymoV2Dataset
from cosim.names import CAMERA_TASKS, COMPLETED

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

SEGMENTS = 5
CFG = SynthConfig(segments=SEGMENTS, frames=4, seed=7)
GRID = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
NO_LIDAR, SOME_LIDAR, NO_PANOPTIC, SOME_PANOPTIC = (segment_name(7, i) for i in range(4))


def _drop_rows(path: Path, keep_frames: int) -> None:
    """Keep the rows of the segment's first ``keep_frames`` frames only."""
    table = pq.read_table(path)
    frames = sorted(set(table.column(W.FRAME).to_pylist()))[:keep_frames]
    pq.write_table(table.filter(pc.is_in(table.column(W.FRAME), pa.array(frames, pa.int64()))), path)


@pytest.fixture(scope="module")
def partial(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("v2partial")
    generate(root, CFG, workers=1)
    for component in W.LIDAR:
        (root / component / f"{NO_LIDAR}.parquet").unlink()
    for component in ("lidar", "lidar_segmentation"):
        _drop_rows(root / component / f"{SOME_LIDAR}.parquet", 2)
    (root / "camera_segmentation" / f"{NO_PANOPTIC}.parquet").unlink()
    _drop_rows(root / "camera_segmentation" / f"{SOME_PANOPTIC}.parquet", 1)
    return root


def test_segments_without_lidar_or_labels_load_as_what_they_hold(partial):
    ds = WaymoV2Dataset(partial)
    assert ds.camera_only() == {NO_LIDAR, SOME_LIDAR}
    assert ds.without_panoptic() == {NO_PANOPTIC, SOME_PANOPTIC}
    for name in (NO_LIDAR, SOME_LIDAR):
        reader = ds.segment(name)
        last = reader.frame(reader.timestamps[-1])
        assert last.points.shape == (0, 3)
        if name == NO_LIDAR:
            assert len(last.lidar_boxes) == 0
        assert (last.semantic != IGNORE_INDEX).any()  # the camera labels are still there
    first = ds.segment(SOME_LIDAR).frame(ds.segment(SOME_LIDAR).timestamps[0])
    assert first.points.shape[0] > 0
    for name in (NO_PANOPTIC, SOME_PANOPTIC):
        reader = ds.segment(name)
        last = reader.frame(reader.timestamps[-1])
        assert (last.semantic == IGNORE_INDEX).all() and (last.instance == 0).all()
        assert last.points.shape[0] > 0 and len(last.camera_boxes)  # the other labels remain
    result = CliRunner().invoke(app, ["data", "check", str(partial)])
    assert result.exit_code == 0, result.output


def _check(root: Path) -> str:
    result = CliRunner().invoke(app, ["data", "check", str(root)])
    assert result.exit_code == 2, result.output
    return result.output


def test_lidar_comes_with_its_labels_and_calibration(partial, tmp_path):
    full = segment_name(7, 4)
    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(partial, unlabelled)
    _drop_rows(unlabelled / "lidar_segmentation" / f"{full}.parquet", 1)
    assert "lidar_segmentation" in _check(unlabelled)
    uncalibrated = tmp_path / "uncalibrated"
    shutil.copytree(partial, uncalibrated)
    (uncalibrated / "lidar_calibration" / f"{full}.parquet").unlink()
    assert "lidar_calibration" in _check(uncalibrated)


def test_a_camera_only_client_completes_rounds_of_the_camera_tasks(partial, tmp_path):
    import pandas as pd

    from cosim.learning.data.partition import partition
    from cosim.scenario_loader import load_scenario

    sets = ["learning.enabled=true", f"learning.data.root={partial}", "learning.data.clients=4",
            "learning.data.heldout_segments=1", "clients.count=4", "clients.ideal_connectivity=true",
            "radio=null", "scheduling.policy=all_connected", "duration_s=60",
            "learning.local.batch_size=2"]
    scenario = load_scenario(GRID, sets)
    ds = WaymoV2Dataset(partial)
    frames, city = ds.describe()
    parts = partition(frames, city, scenario.learning.data, scenario.seeds()["data"],
                      ds.camera_only(), ds.without_panoptic())
    camera_only = [s for s in parts.clients if s.frames[0][0] in ds.camera_only()]
    assert camera_only and all(s.modalities == ("image", "text") for s in camera_only)
    assert all(tuple(s.tasks) == tuple(CAMERA_TASKS) for s in camera_only)
    out = tmp_path / "r"
    result = CliRunner().invoke(app, ["run", str(GRID), "--out", str(out), "-q",
                                      *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out / "participation.parquet")
    done = rows[rows.outcome == COMPLETED]
    assert set(done.client) >= {s.client for s in camera_only}, rows[["round", "client", "outcome"]]
