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

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop


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


# --- hostile v1 files: each is one line and exit 2, from `cosim data check` and before a run ---

def _v1_segment(folder):
    """A real-layout v1 segment (two frames) written from a synthetic v2 one; its records."""
    from cosim.learning.data.waymo_v1 import tfrecord_records

    v2 = folder / "v2"
    generate(v2, SynthConfig(segments=1, frames=2, seed=3, camera_size=(48, 32), lidar_size=(8, 64)),
             workers=1)
    ds2 = WaymoV2Dataset(v2)
    reader2 = ds2.segment(ds2.segments()[0])
    v1 = folder / "v1"
    v1.mkdir()
    path = v1 / f"{reader2.name}.tfrecord"
    export_v1(iter([reader2.frame(ts) for ts in reader2.timestamps]), reader2.lidar_calibration, path)
    return path, [data for _, data in tfrecord_records(path)]


@pytest.fixture(scope="module")
def v1_segment(tmp_path_factory):
    return _v1_segment(tmp_path_factory.mktemp("v1seg"))


def _rewrite(path, records):
    from cosim.learning.data.waymo_v1 import write_tfrecord

    write_tfrecord(path, iter(records))


def _edit_frame(records, edit):
    from waymo_open_dataset import dataset_pb2

    frame = dataset_pb2.Frame()
    frame.ParseFromString(records[-1])
    edit(frame)
    return [*records[:-1], frame.SerializeToString()]


def _png_declaring(width: int, height: int) -> bytes:
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    png[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def _zlib_bomb() -> bytes:
    import zlib

    return zlib.compress(bytes(200 * 2**20), 9)


def _front(frame):
    return next(im for im in frame.images if im.name == 1)


HOSTILE = {
    "data_checksum": (lambda p, r: p.write_bytes(p.read_bytes()[:-20] + b"\x00" + p.read_bytes()[-19:]),
                      "data checksum"),
    "huge_length": (None, "declares"),
    "empty_file": (lambda p, r: p.write_bytes(b""), "no frames"),
    "truncated": (lambda p, r: p.write_bytes(p.read_bytes()[:-100]), "truncated"),
    "not_a_frame": (lambda p, r: _rewrite(p, [*r[:-1], b"\xff" * 64]), "not a Waymo Frame"),
    "same_timestamp_twice": (lambda p, r: _rewrite(p, [r[0], r[0]]), "appears twice"),
    "divisor_zero": (lambda p, r: _rewrite(p, _edit_frame(r, lambda f: setattr(
        _front(f).camera_segmentation_label, "panoptic_label_divisor", 0))), "panoptic_label_divisor"),
    "divisor_one": (lambda p, r: _rewrite(p, _edit_frame(r, lambda f: setattr(
        _front(f).camera_segmentation_label, "panoptic_label_divisor", 1))),
        "classes (0-28) of Waymo's camera segmentation"),
    "image_bomb_header": (lambda p, r: _rewrite(p, _edit_frame(r, lambda f: setattr(
        _front(f), "image", _png_declaring(30000, 30000)))), "pixels"),
    "image_over_the_cap": (lambda p, r: _rewrite(p, _edit_frame(r, lambda f: setattr(
        _front(f), "image", _png_declaring(8000, 8000)))), "8000 x 8000"),
    "undecodable_image": (lambda p, r: _rewrite(p, _edit_frame(r, lambda f: setattr(
        _front(f), "image", b"\x89PNG not really"))), "not a decodable image"),
    "range_image_zlib_bomb": (lambda p, r: _rewrite(p, _edit_frame(r, lambda f: setattr(
        f.lasers[0].ri_return1, "range_image_compressed", _zlib_bomb()))), "zlib bomb"),
    "no_calibration": (lambda p, r: _rewrite(p, _edit_frame(
        r, lambda f: f.context.ClearField("laser_calibrations"))), "calibration"),
    "nan_pose": (lambda p, r: _rewrite(p, _edit_frame(
        r, lambda f: f.pose.transform.__setitem__(3, float("nan")))), "pose"),
    # finite, but every point at infinity (and numpy's overflow warnings on the way)
    "pose_translation_1e307": (lambda p, r: _rewrite(p, _edit_frame(
        r, lambda f: f.pose.transform.__setitem__(3, 1e307))), "pose has a translation"),
    "extrinsic_translation_1e307": (lambda p, r: _rewrite(p, _edit_frame(
        r, lambda f: _top_calibration(f).extrinsic.transform.__setitem__(3, 1e307))),
        "TOP laser extrinsic has a translation"),
    "extrinsic_scaled_rotation": (lambda p, r: _rewrite(p, _edit_frame(
        r, lambda f: _top_calibration(f).extrinsic.transform.__setitem__(0, 1e15))),
        "not a rotation"),
    "beam_inclinations_1e15": (lambda p, r: _rewrite(p, _edit_frame(r, lambda f: _set_inclinations(
        _top_calibration(f), 1e15))), "beam inclination"),
}


def _top_calibration(frame):
    return next(c for c in frame.context.laser_calibrations if c.name == 1)


def _set_inclinations(calibration, value: float) -> None:
    count = len(calibration.beam_inclinations)
    del calibration.beam_inclinations[:]
    calibration.beam_inclinations.extend([value] * count)


def _huge_length(path):
    import struct

    from cosim.learning.data.waymo_v1 import masked_crc32c

    header = struct.pack("<Q", 2**40)
    path.write_bytes(header + struct.pack("<I", masked_crc32c(header)) + b"\x00" * 64)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_v1_file_is_one_line_from_data_check(v1_segment, tmp_path, case):
    from typer.testing import CliRunner

    from cosim.cli import app

    source, records = v1_segment
    folder = tmp_path / "v1"
    folder.mkdir()
    path = folder / source.name
    path.write_bytes(source.read_bytes())
    edit, says = HOSTILE[case]
    _huge_length(path) if edit is None else edit(path, records)
    result = CliRunner().invoke(app, ["data", "check", str(folder)])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and says in lines[0], result.output


def test_a_valid_v1_folder_passes_data_check(v1_segment):
    from typer.testing import CliRunner

    from cosim.cli import app

    result = CliRunner().invoke(app, ["data", "check", str(v1_segment[0].parent)])
    assert result.exit_code == 0 and "Waymo v1, 1 segments, 2 frames" in result.output


@pytest.mark.parametrize("case", ["divisor_zero", "data_checksum"])
def test_a_hostile_v1_file_is_refused_before_the_run_folder(v1_segment, tmp_path, case):
    from pathlib import Path

    from typer.testing import CliRunner

    from cosim.cli import app

    source, records = v1_segment
    folder = tmp_path / "v1"
    folder.mkdir()
    for copy in range(3):  # a partition needs a held-out segment and clients' ones
        (folder / f"{source.stem}{copy}.tfrecord").write_bytes(source.read_bytes())
    path = folder / f"{source.stem}0.tfrecord"
    HOSTILE[case][0](path, records)
    grid = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    out = tmp_path / "r"
    sets = ["learning.enabled=true", f"learning.data.root={folder}", "learning.data.format=v1",
            "learning.data.clients=2", "learning.data.heldout_segments=1", "duration_s=10"]
    result = CliRunner().invoke(app, ["run", str(grid), "--out", str(out), "-q",
                                      *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and HOSTILE[case][1] in result.output
    assert not out.exists() and not (tmp_path / "r.partial").exists()


# --- camera-only frames (Waymo's PVPS frames have cameras and panoptic labels, no LiDAR) --------

def _without_lidar(records):
    from waymo_open_dataset import dataset_pb2

    out = []
    for data in records:
        frame = dataset_pb2.Frame()
        frame.ParseFromString(data)
        frame.ClearField("lasers")
        frame.context.ClearField("laser_calibrations")
        out.append(frame.SerializeToString())
    return out


def test_a_frame_without_lidar_loads_as_a_camera_only_sample(v1_segment, tmp_path):
    source, records = v1_segment
    folder = tmp_path / "v1"
    folder.mkdir()
    path = folder / source.name
    _rewrite(path, _without_lidar(records))
    ds = WaymoV1Dataset(folder)
    reader = ds.segment(source.stem)
    assert reader.camera_only and ds.camera_only() == {source.stem}
    frame = reader.frame(reader.timestamps[0])
    assert frame.points.shape == (0, 3) and frame.image.ndim == 3
    assert frame.semantic.shape == frame.image.shape[:2]


def _four_segments(v1_segment, tmp_path, edited: int, edit) -> tuple:
    """A v1 folder of four copies of the segment, copy ``edited`` rewritten by ``edit``; the
    folder, the edited segment's name, and grid_small's settings to learn on it."""
    source, records = v1_segment
    folder = tmp_path / "v1"
    folder.mkdir()
    for copy in range(4):
        (folder / f"{source.stem}{copy}.tfrecord").write_bytes(source.read_bytes())
    _rewrite(folder / f"{source.stem}{edited}.tfrecord", edit(records))
    sets = ["learning.enabled=true", f"learning.data.root={folder}", "learning.data.format=v1",
            "learning.data.clients=3", "learning.data.heldout_segments=1", "clients.count=3",
            "duration_s=40", "learning.local.batch_size=2"]
    return folder, f"{source.stem}{edited}", sets


def _runs(tmp_path, sets) -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from cosim.cli import app

    grid = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    result = CliRunner().invoke(app, ["run", str(grid), "--out", str(tmp_path / "r"), "-q",
                                      *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output


def _data_config(sets):
    from pathlib import Path

    from cosim.scenario_loader import load_scenario

    grid = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    return load_scenario(grid, sets).learning.data


def test_camera_only_segments_become_camera_only_clients_and_a_run_completes(v1_segment, tmp_path):
    from cosim.learning.data.partition import partition
    from cosim.names import CAMERA_TASKS

    folder, edited, sets = _four_segments(v1_segment, tmp_path, 1, _without_lidar)
    ds = WaymoV1Dataset(folder)
    frames, city = ds.describe()
    parts = partition(frames, city, _data_config(sets), 0, ds.camera_only())
    shards = {s.frames[0][0]: s for s in parts.clients}
    if edited in shards:  # not drawn as the held-out segment
        assert shards[edited].modalities == ("image", "text")
        assert tuple(shards[edited].tasks) == tuple(CAMERA_TASKS)
    assert all(s.modalities == ("image", "lidar", "text") for n, s in shards.items() if n != edited)
    _runs(tmp_path, sets)


def _without_panoptic(records):
    from waymo_open_dataset import dataset_pb2

    out = []
    for data in records:
        frame = dataset_pb2.Frame()
        frame.ParseFromString(data)
        _front(frame).ClearField("camera_segmentation_label")
        out.append(frame.SerializeToString())
    return out


def test_frames_without_panoptic_labels_serve_the_other_tasks(v1_segment, tmp_path):
    from cosim.learning.classes import IGNORE_INDEX
    from cosim.learning.data.partition import partition

    folder, edited, sets = _four_segments(v1_segment, tmp_path, 2, _without_panoptic)
    ds = WaymoV1Dataset(folder)
    reader = ds.segment(edited)
    frame = reader.frame(reader.timestamps[0])
    assert (frame.semantic == IGNORE_INDEX).all() and frame.points.shape[0] > 0
    assert ds.without_panoptic() == {edited} and not ds.camera_only()
    frames, city = ds.describe()
    parts = partition(frames, city, _data_config(sets), 0, set(), ds.without_panoptic())
    shard = next(s for s in parts.clients if s.frames[0][0] == edited)
    assert "pan2d" not in shard.tasks and "seg3d" in shard.tasks
    _runs(tmp_path, sets)
