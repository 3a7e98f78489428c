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
import math
import struct
import zlib
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cosim.errors import InputError, MissingDependencyError
from cosim.learning.classes import IGNORE_INDEX, PAN2D, SEG3D
from cosim.learning.data import waymo_schema as W
from cosim.learning.data.decode import DecodeError, decode_image, inflate, label_outside
from cosim.learning.data.lidar import range_image_points
from cosim.learning.data.waymo_v2 import (
    MAX_POSE_M,
    MAX_SENSOR_OFFSET_M,
    Frame,
    frame_problem,
    inclination_problem,
    no_lidar,
    no_panoptic,
    transform_problem,
)

_HINT = ("Waymo v1 needs the dataset protos: pip install --no-deps waymo-open-dataset-tf-2-12-0 "
         "protobuf (with its dependencies that wheel would downgrade numpy and pyarrow)")


def _protos():
    try:
        from waymo_open_dataset import dataset_pb2
    except ImportError:
        raise MissingDependencyError(_HINT) from None
    return dataset_pb2


MAX_RECORD_BYTES = 512 * 2**20  # a v1 Frame with every camera and laser is tens of MB


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C (Castagnoli), rotated and offset ("masked")."""
    try:
        import google_crc32c
    except ImportError:
        raise MissingDependencyError("Waymo v1 records are checked with CRC-32C: pip install -e "
                                     "'.[waymo]' (google-crc32c)") from None
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_records(path: Path) -> Iterator[tuple[int, bytes]]:
    """(offset, data) of each record, one in memory at a time; the framing, the declared length
    and both checksums (length and data) are checked, so a damaged file fails naming the byte."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos = 0
        while header := f.read(12):
            if len(header) < 12:
                raise InputError(path, None, f"truncated TFRecord header at byte {pos}")
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != length_crc:
                raise InputError(path, None, f"corrupt TFRecord at byte {pos} (length checksum)")
            if length > MAX_RECORD_BYTES:
                raise InputError(path, None, f"the TFRecord at byte {pos} declares {length:,} bytes "
                                 f"(at most {MAX_RECORD_BYTES:,}): not a Waymo frame")
            if pos + 12 + length + 4 > size:
                raise InputError(path, None, f"truncated TFRecord at byte {pos}")
            data = f.read(length)
            (data_crc,) = struct.unpack("<I", f.read(4))
            if masked_crc32c(data) != data_crc:
                raise InputError(path, None, f"corrupt TFRecord at byte {pos} (data checksum)")
            yield pos + 12, data
            pos += 12 + length + 4


def tfrecord_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each record's data, every record checked (``tfrecord_records``)."""
    return [(offset, len(data)) for offset, data in tfrecord_records(path)]


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
        self._readers: dict[str, V1SegmentReader] = {}

    def segments(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.tfrecord"))

    def segment(self, name: str) -> V1SegmentReader:
        """One reader per segment, kept: its index (a pass over every record, checksums and all)
        serves describe(), camera_only() and without_panoptic() alike."""
        if name not in self._readers:
            self._readers[name] = V1SegmentReader(self.root / f"{name}.tfrecord")
        return self._readers[name]

    def describe(self) -> tuple[dict[str, list[int]], dict[str, str]]:
        frames, city = {}, {}
        for name in self.segments():
            reader = self.segment(name)
            frames[name] = reader.timestamps
            city[name] = reader._proto(reader.timestamps[0]).context.stats.location or "unknown"
        return frames, city

    def camera_only(self) -> set[str]:
        """Segments with a frame that has no TOP LiDAR return (e.g. Waymo's PVPS frames): their
        clients train the camera tasks on the image and text only."""
        return {name for name in self.segments() if self.segment(name).camera_only}

    def without_panoptic(self) -> set[str]:
        """Segments with a frame that has no panoptic label (most of Waymo's perception frames):
        their clients train every task but pan2d."""
        return {name for name in self.segments() if self.segment(name).without_panoptic}


class V1SegmentReader:
    def __init__(self, path: Path):
        self.path = path
        self.name = path.stem
        self.pb = _protos()
        self._without_lidar: set[int] = set()
        self._without_panoptic: set[int] = set()

    @property
    def camera_only(self) -> bool:
        """Some frame of the segment has no TOP LiDAR return: the segment serves camera tasks."""
        return bool(self._index) and bool(self._without_lidar)

    @property
    def without_panoptic(self) -> bool:
        """Some frame of the segment has no panoptic label: the segment serves the other tasks."""
        return bool(self._index) and bool(self._without_panoptic)

    @cached_property
    def _index(self) -> dict[int, tuple[int, int]]:
        if self.path.is_symlink() or not self.path.is_file():
            raise InputError(self.path, None, "not a regular file")
        index: dict[int, tuple[int, int]] = {}
        for offset, data in tfrecord_records(self.path):
            head = self.pb.Frame()
            try:
                head.ParseFromString(data)
            except Exception as exc:  # protobuf DecodeError
                raise InputError(self.path, None, f"the record at byte {offset - 12} is not a "
                                 f"Waymo Frame: {exc}") from None
            if head.timestamp_micros in index:
                raise InputError(self.path, None, f"frame {head.timestamp_micros} appears twice")
            index[head.timestamp_micros] = (offset, len(data))
            if _top_laser(head) is None:
                self._without_lidar.add(head.timestamp_micros)
            if not _panoptic(head):
                self._without_panoptic.add(head.timestamp_micros)
        if not index:
            raise InputError(self.path, None, "no frames (an empty TFRecord file)")
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

    def _bad(self, timestamp: int, why: str) -> InputError:
        return InputError(self.path, None, f"frame {timestamp}: {why}")

    def _image(self, data: bytes, timestamp: int, what: str) -> Image.Image:
        try:
            return decode_image(data)
        except DecodeError as exc:
            raise self._bad(timestamp, f"{what}: {exc}") from None

    def _transform(self, values, timestamp: int, what: str, reach_m: float) -> np.ndarray:
        m = np.asarray(list(values), dtype=np.float64)
        if m.shape != (16,):
            raise self._bad(timestamp, f"{what} is not 16 finite numbers (a 4 x 4 transform)")
        if (why := transform_problem(m.reshape(4, 4), reach_m)) is not None:
            raise self._bad(timestamp, f"{what} {why}")
        return m.reshape(4, 4)

    def frame(self, timestamp: int) -> Frame:
        fr = self._proto(timestamp)
        cam = next((im for im in fr.images if im.name == W.CAMERA_FRONT), None)
        if cam is None:
            raise InputError(self.path, None, f"frame {timestamp} has no FRONT camera image")
        laser = _top_laser(fr)
        image = np.array(self._image(cam.image, timestamp, "FRONT image").convert("RGB"))
        semantic, instance, weight = self._panoptic(cam.camera_segmentation_label, timestamp,
                                                    image.shape[:2])
        # a camera-only frame: no LiDAR input, no 3D targets
        range_image, labels, points, pixels = no_lidar() if laser is None else \
            self._lidar(fr, laser, timestamp)
        # a protobuf repeated field (the protos are untyped), or none
        cam_labels: Any = next((c.labels for c in fr.camera_labels if c.name == W.CAMERA_FRONT), [])
        cam = [(lb.box, W.BOX_TYPE_TO_CLASS[lb.type], lb.id) for lb in cam_labels
               if lb.type in W.BOX_TYPE_TO_CLASS]
        cam_boxes = np.array([(b.center_x - b.length / 2, b.center_y - b.width / 2,
                               b.center_x + b.length / 2, b.center_y + b.width / 2) for b, _, _ in cam],
                             float).reshape(-1, 4)
        lid = [lb for lb in fr.laser_labels if lb.type in W.BOX_TYPE_TO_CLASS]
        boxes = np.array([(lb.box.center_x, lb.box.center_y, lb.box.center_z, lb.box.length,
                           lb.box.width, lb.box.height, lb.box.heading) for lb in lid], float).reshape(-1, 7)
        if not (np.isfinite(cam_boxes).all() and np.isfinite(boxes).all()):
            raise self._bad(timestamp, "a labelled box has a coordinate that is not a number")
        pose = self._transform(fr.pose.transform, timestamp, "pose", MAX_POSE_M)
        stats = fr.context.stats
        frame = Frame(
            self.name, timestamp, image, cam_boxes, np.array([c for _, c, _ in cam], int),
            np.array([i for _, _, i in cam], dtype=object), semantic, instance, weight,
            range_image, labels, points,
            pixels, boxes, np.array([W.BOX_TYPE_TO_CLASS[lb.type] for lb in lid], int),
            np.array([lb.num_lidar_points_in_box for lb in lid], int),
            np.array([lb.id for lb in lid], dtype=object), pose,
            stats.location or "unknown", stats.weather or "unknown", stats.time_of_day or "unknown")
        if (problem := frame_problem(frame)) is not None:
            raise self._bad(timestamp, problem[1])
        return frame

    def _panoptic(self, seg, timestamp: int, shape: tuple[int, int]):
        """PAN2D class, instance id and pixel weight; a frame without a label is all void."""
        if not seg.panoptic_label:
            return no_panoptic(shape)
        divisor = seg.panoptic_label_divisor
        if divisor <= 0:
            raise self._bad(timestamp, f"panoptic_label_divisor is {divisor}: the panoptic "
                            "label cannot be split into class and instance")
        panoptic = np.asarray(self._image(seg.panoptic_label, timestamp, "panoptic label"),
                              dtype=np.int64)
        covered = np.asarray(self._image(seg.num_cameras_covered, timestamp, "cameras covered"),
                             dtype=np.float64)
        for what, label in (("panoptic label", panoptic), ("cameras covered", covered)):
            if label.shape != shape:
                raise self._bad(timestamp, f"{what} is {label.shape}; the image {shape}")
        waymo_sem = panoptic // divisor
        if (why := label_outside(waymo_sem, len(PAN2D) + 1)) is not None:  # 0: undefined
            raise self._bad(timestamp, f"panoptic label: {why} of Waymo's camera segmentation")
        return (np.where(waymo_sem > 0, waymo_sem - 1, IGNORE_INDEX), panoptic % divisor,
                np.where(covered > 0, 1.0 / np.maximum(covered, 1), 0.0))

    def _lidar(self, fr, laser, timestamp: int):
        """The TOP laser's first return: range image, labels, points and their pixels."""
        range_image = self._matrix(laser.ri_return1.range_image_compressed, self.pb.MatrixFloat,
                                   np.float32, timestamp, "range image", 4)
        labels = self._matrix(laser.ri_return1.segmentation_label_compressed, self.pb.MatrixInt32,
                              np.int32, timestamp, "segmentation label", 2)
        if labels.shape[:2] != range_image.shape[:2]:
            raise self._bad(timestamp, f"segmentation label is {labels.shape[:2]}; the range image "
                            f"{range_image.shape[:2]}")
        if (why := label_outside(labels[..., 1], len(SEG3D))) is not None:
            raise self._bad(timestamp, f"segmentation label: {why} of Waymo's LiDAR segmentation")
        calib = next((c for c in fr.context.laser_calibrations if c.name == W.LASER_TOP), None)
        if calib is None:
            raise self._bad(timestamp, "no TOP laser calibration in the frame's context")
        extrinsic = self._transform(calib.extrinsic.transform, timestamp, "TOP laser extrinsic",
                                    MAX_SENSOR_OFFSET_M)
        rows = range_image.shape[0]
        incl = (np.array(calib.beam_inclinations)[::-1] if len(calib.beam_inclinations)
                else np.linspace(calib.beam_inclination_max, calib.beam_inclination_min, rows))
        if len(incl) != rows:
            raise self._bad(timestamp, f"{len(incl)} beam inclinations for {rows} range-image rows")
        if (why := inclination_problem(incl)) is not None:
            raise self._bad(timestamp, f"TOP laser calibration: {why}")
        points, pixels = range_image_points(range_image, incl, extrinsic)
        return range_image, labels, points, pixels

    def _matrix(self, compressed: bytes, proto_type, dtype, timestamp: int, what: str,
                channels: int) -> np.ndarray:
        """A zlib-compressed Matrix proto (bounded inflation), its shape checked against its data."""
        m = proto_type()
        try:
            m.ParseFromString(inflate(compressed))
        except DecodeError as exc:
            raise self._bad(timestamp, f"{what}: {exc}") from None
        except Exception as exc:  # protobuf DecodeError
            raise self._bad(timestamp, f"{what}: not a Matrix proto: {exc}") from None
        dims = [int(d) for d in m.shape.dims]
        if (len(dims) != 3 or min(dims) <= 0 or dims[2] < channels
                or math.prod(dims) != len(m.data)):
            raise self._bad(timestamp, f"{what}: shape {dims} does not fit {len(m.data)} values "
                            f"with at least {channels} channels")
        values = np.array(m.data, dtype=dtype).reshape(dims)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise self._bad(timestamp, f"{what} holds values that are not numbers")
        return values


def _panoptic(frame) -> bool:
    """The FRONT image carries a panoptic label."""
    front = next((im for im in frame.images if im.name == W.CAMERA_FRONT), None)
    return front is not None and bool(front.camera_segmentation_label.panoptic_label)


def _top_laser(frame):
    """The TOP laser with a first-return range image, or None (a camera-only frame)."""
    laser = next((la for la in frame.lasers if la.name == W.LASER_TOP), None)
    if laser is None or not laser.ri_return1.range_image_compressed:
        return None
    return laser


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
