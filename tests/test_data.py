"""Synthetic Waymo-layout data: generator -> reader round trip, bad files, determinism."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.learning.classes import IGNORE_INDEX
from cosim.learning.data.lidar import render_lidar
from cosim.learning.data.render import render_camera
from cosim.learning.data.scene import KIND_NAMES, KINDS, make_segment
from cosim.learning.data.synth import SynthConfig, generate, segment_name
from cosim.learning.data.waymo_v2 import WaymoV2Dataset

CFG = SynthConfig(segments=2, frames=3, seed=4, camera_size=(64, 48), lidar_size=(16, 128))


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate(root, CFG, workers=1)
    return root


def test_round_trip_returns_the_generated_ground_truth(synth):
    ds = WaymoV2Dataset(synth)
    assert ds.segments() == [segment_name(4, 0), segment_name(4, 1)]
    reader = ds.segment(segment_name(4, 1))
    assert len(reader.timestamps) == 3
    # regenerate the same frame in memory, with the generator's own random stream
    seg = make_segment(segment_name(4, 1), seed=4 * 1_000_003 + 1, frames=3)
    rng = np.random.default_rng([4, 1, 7])
    for k, ts in enumerate(reader.timestamps):
        cam = render_camera(seg, k, 64, 48, rng)
        lid = render_lidar(seg, k, 16, 128, rng)
        frame = reader.frame(ts)
        assert np.array_equal(frame.semantic, cam.semantic)
        assert np.array_equal(frame.instance, cam.instance)
        assert np.array_equal(frame.camera_boxes, cam.boxes)
        assert np.array_equal(frame.camera_box_labels, cam.box_labels)
        mse = ((frame.image.astype(float) - cam.image.astype(float)) ** 2).mean()
        assert 10 * np.log10(255**2 / mse) > 30  # JPEG at quality 95: lossy, but close
        assert np.array_equal(frame.range_image, lid.range_image)
        assert np.array_equal(frame.lidar_labels, lid.labels)
        boxes, kinds, ids = seg.frame(k)
        things = np.array([KINDS[KIND_NAMES[kd]][2] >= 0 for kd in kinds])
        near = np.hypot(boxes[:, 0], boxes[:, 1]) <= 80.0
        keep = things & near
        expected = boxes[keep].copy()
        expected[:, 2] += expected[:, 5] / 2  # the v2 box centre is mid-height
        assert np.allclose(frame.lidar_boxes, expected)
        assert frame.lidar_box_points.tolist() == [lid.points_in_box.get(int(i), 0) for i in ids[keep]]
        # every valid return becomes a point, at its measured range from the sensor
        valid = (lid.range_image[..., 0] > 0).sum()
        assert len(frame.points) == valid
        sensor = np.array([0.0, 0.0, 1.8])
        ranges = np.linalg.norm(frame.points - sensor, axis=1)
        assert np.allclose(ranges, lid.range_image[..., 0].reshape(-1)[frame.point_pixels], atol=1e-4)
        assert frame.location == seg.style.city and frame.weather == seg.style.weather
    assert (frame.semantic != IGNORE_INDEX).all() and (frame.pixel_weight == 1).all()


def test_generation_is_deterministic(synth, tmp_path):
    again = tmp_path / "again"
    generate(again, CFG, workers=2)
    for path in sorted(synth.rglob("*.parquet")):
        assert path.read_bytes() == (again / path.relative_to(synth)).read_bytes(), path


def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and "Traceback" not in result.output
    return line


def test_check_accepts_good_data(synth):
    result = CliRunner().invoke(app, ["data", "check", str(synth)])
    assert result.exit_code == 0 and "2 segments, 6 frames" in result.stdout


def test_corrupt_parquet_is_one_line_naming_the_file(synth, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(synth, bad)
    target = bad / "lidar" / f"{segment_name(4, 0)}.parquet"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3])
    line = _one_line(CliRunner().invoke(app, ["data", "check", str(bad)]))
    assert str(target) in line


def test_missing_component_is_one_line_naming_it(synth, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(synth, bad)
    (bad / "lidar_box" / f"{segment_name(4, 1)}.parquet").unlink()
    line = _one_line(CliRunner().invoke(app, ["data", "check", str(bad)]))
    assert "lidar_box" in line and segment_name(4, 1) in line
    shutil.rmtree(bad / "vehicle_pose")
    line = _one_line(CliRunner().invoke(app, ["data", "check", str(bad)]))
    assert "vehicle_pose" in line


def test_synth_command(tmp_path):
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "d"), "--segments", "1",
                                      "--frames", "2"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "d" / "lidar").glob("*.parquet"))) == 1
