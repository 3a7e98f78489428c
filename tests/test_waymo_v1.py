"""Waymo v1 TFRecords: framing, the Frame protos, and the same frames as the v2 reader."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("waymo_open_dataset", reason="the [waymo] protos are installed by .ci/run")

from cosim.errors import InputError  # noqa: E402
from cosim.learning.data.synth import SynthConfig, generate  # noqa: E402
from cosim.learning.data.waymo_v1 import (  # noqa: E402
    WaymoV1Dataset,
    export_v1,
    masked_crc32c,
)
from cosim.learning.data.waymo_v2 import WaymoV2Dataset  # noqa: E402


def test_masked_crc32c_known_value():
    # CRC-32C of "123456789" is 0xE3069283 (RFC 3720); TFRecord masks it
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_v1_reader_gives_the_v2_frames(tmp_path):
    v2 = tmp_path / "v2"
    generate(v2, SynthConfig(segments=1, frames=2, seed=5, camera_size=(48, 32), lidar_size=(8, 64)),
             workers=1)
    reader2 = WaymoV2Dataset(v2).segment(WaymoV2Dataset(v2).segments()[0])
    v1 = tmp_path / "v1"
    v1.mkdir()
    frames2 = [reader2.frame(ts) for ts in reader2.timestamps]
    export_v1(iter(frames2), reader2.lidar_calibration, v1 / f"{reader2.name}.tfrecord")
    ds1 = WaymoV1Dataset(v1)
    reader1 = ds1.segment(reader2.name)
    assert reader1.timestamps == reader2.timestamps
    for f2 in frames2:
        f1 = reader1.frame(f2.timestamp)
        for field in ("image", "camera_boxes", "camera_box_labels", "semantic", "instance",
                      "pixel_weight", "range_image", "lidar_labels", "points", "point_pixels",
                      "lidar_boxes", "lidar_box_labels", "lidar_box_points", "pose"):
            assert np.allclose(getattr(f1, field), getattr(f2, field)), field
        assert (f1.location, f1.weather, f1.time_of_day) == (f2.location, f2.weather, f2.time_of_day)
    assert ds1.describe()[0] == WaymoV2Dataset(v2).describe()[0]


def test_corrupt_tfrecord_is_one_clear_error(tmp_path):
    path = tmp_path / "seg.tfrecord"
    path.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00garbage-garbage")
    with pytest.raises(InputError, match="corrupt TFRecord") as err:
        WaymoV1Dataset(tmp_path).segment("seg").timestamps  # noqa: B018
    assert str(path) in err.value.line()
