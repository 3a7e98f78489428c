"""Reader of Waymo Open Dataset v1 (``*.tfrecord`` segment files of ``Frame`` protos).

Needs only Waymo's protos, not TensorFlow: ``pip install --no-deps waymo-open-dataset-tf-2-12-0
protobuf``. (Installing that wheel with its dependencies pins TensorFlow 2.12/2.13, numpy 1.23
and pyarrow 16, which would break cosim's stack.) TFRecord framing is read directly:
``<u64 length><u32 masked crc32c of length><data><u32 masked crc32c of data>``; the length CRC is
checked, a corrupt record fails with one line naming the file. Frames come out as the same
``Frame`` the v2 reader gives, so everything downstream is shared.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from cosim.errors import InputError, MissingDependencyError
from cosim.learning.classes import IGNORE_INDEX
from cosim.learning.data import waymo_schema as W
from cosim.learning.data.lidar import range_image_points
from cosim.learning.data.waymo_v2 import Frame

_HINT = ("Waymo v1 needs the dataset protos: pip install --no-deps waymo-open-dataset-tf-2-12-0 "
         "protobuf (with its dependencies that wheel would downgrade numpy and pyarrow)")


def _protos():
    try:
        from waymo_open_dataset import dataset_pb2
    except ImportError:
        raise MissingDependencyError(_HINT) from None
    return dataset_pb2


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each record's data, checking the framing."""
    out = []
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise InputError(path, None, f"truncated TFRecord header at byte {pos}")
        length, length_crc = struct.unpack_from("<QI", data, pos)
        if masked_crc32c(data[pos: pos + 8]) != length_crc:
            raise InputError(path, None, f"corrupt TFRecord at byte {pos} (length checksum)")
        if pos + 12 + length + 4 > len(data):
            raise InputError(path, None, f"truncated TFRecord at byte {pos}")
        out.append((pos + 12, length))
        pos += 12 + length + 4
    return out


def write_tfrecord(path: Path, records: Iterator[bytes]) -> None:
    with open(path, "wb") as f:
        for rec in records:
            header = struct.pack("<Q", len(rec))
            f.write(header + struct.pack("<I", masked_crc32c(header)) + rec
                    + struct.pack("<I", masked_crc32c(rec)))


class WaymoV1Dataset:
    """The ``*.tfrecord`` segments of a folder; same interface as WaymoV2Dataset."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, None, "dataset folder not found")
        _protos()

    def segments(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.tfrecord"))

    def segment(self, name: str) -> V1SegmentReader:
        return V1SegmentReader(self.root / f"{name}.tfrecord")

    def describe(self) -> tuple[dict[str, list[int]], dict[str, str]]:
        frames, city = {}, {}
        for name in self.segments():
            reader = self.segment(name)
            frames[name] = reader.timestamps
            city[name] = reader._proto(reader.timestamps[0]).context.stats.location or "unknown"
        return frames, city


class V1SegmentReader:
    def __init__(self, path: Path):
        self.path = path
        self.name = path.stem
        self.pb = _protos()

    @cached_property
    def _index(self) -> dict[int, tuple[int, int]]:
        index = {}
        with open(self.path, "rb") as f:
            for offset, length in tfrecord_offsets(self.path):
                f.seek(offset)
                head = self.pb.Frame()
                try:
                    head.ParseFromString(f.read(length))
                except Exception as exc:  # protobuf DecodeError
                    raise InputError(self.path, None, f"not a Waymo Frame record: {exc}") from None
                index[head.timestamp_micros] = (offset, length)
        return index

    @property
    def timestamps(self) -> list[int]:
        return sorted(self._index)

    def _proto(self, timestamp: int):
        offset, length = self._index[timestamp]
        with open(self.path, "rb") as f:
            f.seek(offset)
            frame = self.pb.Frame()
            frame.ParseFromString(f.read(length))
        return frame

    def frames(self, timestamps: list[int]) -> list[Frame]:
        """Several frames of the segment (the v2 reader's interface; read one by one here)."""
        return [self.frame(ts) for ts in timestamps]

    def frame(self, timestamp: int) -> Frame:
        fr = self._proto(timestamp)
        cam = next((im for im in fr.images if im.name == W.CAMERA_FRONT), None)
        laser = next((la for la in fr.lasers if la.name == W.LASER_TOP), None)
        if cam is None or laser is None:
            raise InputError(self.path, None, f"frame {timestamp} has no FRONT image or TOP laser")
        image = np.array(Image.open(io.BytesIO(cam.image)).convert("RGB"))
        seg = cam.camera_segmentation_label
        panoptic = np.asarray(Image.open(io.BytesIO(seg.panoptic_label)), dtype=np.int64)
        waymo_sem = panoptic // seg.panoptic_label_divisor
        covered = np.asarray(Image.open(io.BytesIO(seg.num_cameras_covered)), dtype=np.float64)
        range_image = self._matrix(laser.ri_return1.range_image_compressed, self.pb.MatrixFloat, np.float32)
        labels = self._matrix(laser.ri_return1.segmentation_label_compressed, self.pb.MatrixInt32, np.int32)
        calib = next(c for c in fr.context.laser_calibrations if c.name == W.LASER_TOP)
        extrinsic = np.array(calib.extrinsic.transform).reshape(4, 4)
        rows = range_image.shape[0]
        incl = (np.array(calib.beam_inclinations)[::-1] if len(calib.beam_inclinations)
                else np.linspace(calib.beam_inclination_max, calib.beam_inclination_min, rows))
        points, pixels = range_image_points(range_image, incl, extrinsic)
        cam_labels = next((c.labels for c in fr.camera_labels if c.name == W.CAMERA_FRONT), [])
        cam = [(lb.box, W.BOX_TYPE_TO_CLASS[lb.type], lb.id) for lb in cam_labels
               if lb.type in W.BOX_TYPE_TO_CLASS]
        cam_boxes = np.array([(b.center_x - b.length / 2, b.center_y - b.width / 2,
                               b.center_x + b.length / 2, b.center_y + b.width / 2) for b, _, _ in cam],
                             float).reshape(-1, 4)
        lid = [lb for lb in fr.laser_labels if lb.type in W.BOX_TYPE_TO_CLASS]
        boxes = np.array([(lb.box.center_x, lb.box.center_y, lb.box.center_z, lb.box.length,
                           lb.box.width, lb.box.height, lb.box.heading) for lb in lid], float).reshape(-1, 7)
        stats = fr.context.stats
        return Frame(
            self.name, timestamp, image, cam_boxes, np.array([c for _, c, _ in cam], int),
            np.array([i for _, _, i in cam], dtype=object),
            np.where(waymo_sem > 0, waymo_sem - 1, IGNORE_INDEX), panoptic % seg.panoptic_label_divisor,
            np.where(covered > 0, 1.0 / np.maximum(covered, 1), 0.0), range_image, labels, points,
            pixels, boxes, np.array([W.BOX_TYPE_TO_CLASS[lb.type] for lb in lid], int),
            np.array([lb.num_lidar_points_in_box for lb in lid], int),
            np.array([lb.id for lb in lid], dtype=object), np.array(fr.pose.transform).reshape(4, 4),
            stats.location or "unknown", stats.weather or "unknown", stats.time_of_day or "unknown")

    def _matrix(self, compressed: bytes, proto_type, dtype) -> np.ndarray:
        m = proto_type()
        try:
            m.ParseFromString(zlib.decompress(compressed))
        except (zlib.error, Exception) as exc:
            raise InputError(self.path, None, f"corrupt range image: {exc}") from None
        return np.array(m.data, dtype=dtype).reshape(list(m.shape.dims))


def export_v1(frames: Iterator[Frame], calibration: tuple[np.ndarray, np.ndarray], out: Path) -> None:
    """Write frames (e.g. of a synthetic v2 segment) as a v1 segment file."""
    pb = _protos()
    extrinsic, incl = calibration

    def records() -> Iterator[bytes]:
        for f in frames:
            fr = pb.Frame()
            fr.context.name, fr.timestamp_micros = f.segment, f.timestamp
            fr.context.stats.location, fr.context.stats.weather = f.location, f.weather
            fr.context.stats.time_of_day = f.time_of_day
            lc = fr.context.laser_calibrations.add()
            lc.name = W.LASER_TOP
            lc.extrinsic.transform.extend(extrinsic.reshape(-1).tolist())
            lc.beam_inclinations.extend(np.asarray(incl)[::-1].tolist())
            fr.pose.transform.extend(f.pose.reshape(-1).tolist())
            im = fr.images.add()
            im.name = W.CAMERA_FRONT
            buf = io.BytesIO()
            Image.fromarray(f.image).save(buf, format="PNG")  # lossless, so the round trip is exact
            im.image = buf.getvalue()
            sem = np.where(f.semantic == IGNORE_INDEX, 0, f.semantic + 1)
            pan = (sem * 1000 + f.instance).astype(np.uint16)
            im.camera_segmentation_label.panoptic_label_divisor = 1000
            im.camera_segmentation_label.panoptic_label = _png(pan)
            cameras = np.where(f.pixel_weight > 0, np.rint(1 / np.maximum(f.pixel_weight, 1e-9)), 0)
            im.camera_segmentation_label.num_cameras_covered = _png(cameras.astype(np.uint8))
            la = fr.lasers.add()
            la.name = W.LASER_TOP
            la.ri_return1.range_image_compressed = _matrix_bytes(pb.MatrixFloat(), f.range_image)
            la.ri_return1.segmentation_label_compressed = _matrix_bytes(pb.MatrixInt32(), f.lidar_labels)
            cl = fr.camera_labels.add()
            cl.name = W.CAMERA_FRONT
            camera = zip(f.camera_boxes, f.camera_box_labels, f.camera_box_ids, strict=True)
            for (x1, y1, x2, y2), c, i in camera:
                lb = cl.labels.add()
                lb.box.center_x, lb.box.center_y = (x1 + x2) / 2, (y1 + y2) / 2
                lb.box.length, lb.box.width = x2 - x1, y2 - y1
                lb.type, lb.id = W.CLASS_TO_BOX_TYPE[int(c)], str(i)
            for box, c, n, i in zip(f.lidar_boxes, f.lidar_box_labels, f.lidar_box_points, f.lidar_box_ids,
                                    strict=True):
                lb = fr.laser_labels.add()
                (lb.box.center_x, lb.box.center_y, lb.box.center_z, lb.box.length, lb.box.width,
                 lb.box.height, lb.box.heading) = map(float, box)
                lb.type, lb.id, lb.num_lidar_points_in_box = W.CLASS_TO_BOX_TYPE[int(c)], str(i), int(n)
            yield fr.SerializeToString()

    write_tfrecord(out, records())


def _matrix_bytes(m, array: np.ndarray) -> bytes:
    m.shape.dims.extend(list(array.shape))
    m.data.extend(array.reshape(-1).tolist())
    return zlib.compress(m.SerializeToString())


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()
