"""Reader of Waymo Open Dataset perception v2 (Parquet components) from a local folder.

``learning.data.root: /path/to/waymo_v2`` points at a folder holding one sub-folder per component
(``camera_image/``, ``lidar/``, ...) with one ``<segment>.parquet`` each. Reads project onto the
columns cosim needs and are lazy per frame (row-group filters on the timestamp); small label
components are read once per segment. A missing component or an unreadable file is an
InputError naming the file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from cosim.errors import InputError
from cosim.learning.classes import IGNORE_INDEX
from cosim.learning.data import waymo_schema as W
from cosim.learning.data.lidar import range_image_points


@dataclass
class Frame:
    """Everything cosim uses from one frame (front camera, TOP LiDAR), in the vehicle frame."""

    segment: str
    timestamp: int
    image: np.ndarray  # (H, W, 3) uint8
    camera_boxes: np.ndarray  # (K, 4) x1, y1, x2, y2 pixels
    camera_box_labels: np.ndarray  # (K,) detection class
    camera_box_ids: np.ndarray  # (K,) object id strings
    semantic: np.ndarray  # (H, W) PAN2D class, IGNORE_INDEX where undefined
    instance: np.ndarray  # (H, W) instance id, 0 = none
    pixel_weight: np.ndarray  # (H, W) 1 / number of cameras that see the pixel (read; STQ is unweighted)
    range_image: np.ndarray  # (R, C, 4) range, intensity, elongation, no-label zone
    lidar_labels: np.ndarray  # (R, C, 2) instance id, SEG3D class
    points: np.ndarray  # (N, 3) valid returns in the vehicle frame
    point_pixels: np.ndarray  # (N,) flat range-image index of each point
    lidar_boxes: np.ndarray  # (M, 7) x, y, z (centre), length, width, height, heading
    lidar_box_labels: np.ndarray  # (M,) detection class
    lidar_box_points: np.ndarray  # (M,) LiDAR points inside
    lidar_box_ids: np.ndarray  # (M,) object id strings
    pose: np.ndarray  # (4, 4) world from vehicle
    location: str
    weather: str
    time_of_day: str


class WaymoV2Dataset:
    """The segments of a v2 folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, None, "dataset folder not found")
        for component in W.REQUIRED:
            if not (self.root / component).is_dir():
                raise InputError(self.root / component, None,
                                 f"missing component folder {component}/ (needs: {', '.join(W.REQUIRED)})")

    def segments(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "camera_image").glob("*.parquet"))

    def segment(self, name: str) -> SegmentReader:
        return SegmentReader(self.root, name)

    def describe(self) -> tuple[dict[str, list[int]], dict[str, str]]:
        """Frame timestamps and location of every segment (what partitions are made from)."""
        frames, city = {}, {}
        for name in self.segments():
            reader = self.segment(name)
            frames[name] = reader.timestamps
            city[name] = reader._stats(reader.timestamps[0])[0]
        return frames, city


class SegmentReader:
    def __init__(self, root: Path, name: str):
        self.root, self.name = root, name
        for component in W.REQUIRED:
            path = self._path(component)
            if not path.is_file():
                raise InputError(path, None, f"missing component {component} of segment {name}")

    def _path(self, component: str) -> Path:
        return self.root / component / f"{self.name}.parquet"

    def _read(self, component: str, timestamp: int | None = None) -> pa.Table:
        path = self._path(component)
        columns = W.SCHEMAS[component].names
        try:
            filters = [(W.FRAME, "=", timestamp)] if timestamp is not None else None
            table = pq.read_table(path, columns=columns, filters=filters)
        except FileNotFoundError:
            raise InputError(path, None, f"missing component {component}") from None
        except (pa.ArrowInvalid, pa.ArrowKeyError, OSError, ValueError) as exc:
            detail = str(exc).splitlines()[0][:120]
            raise InputError(path, None, f"not a readable {component} Parquet file: {detail}") from None
        return table

    @cached_property
    def timestamps(self) -> list[int]:
        t = self._read_keys("camera_image")
        return sorted(set(t))

    def _read_keys(self, component: str) -> list[int]:
        path = self._path(component)
        try:
            return pq.read_table(path, columns=[W.FRAME]).column(W.FRAME).to_pylist()
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise InputError(path, None, f"not a readable Parquet file: {str(exc).splitlines()[0][:120]}") \
                from None

    @cached_property
    def _labels(self) -> dict[str, pa.Table]:
        """Small per-segment components, read once."""
        out = {c: self._read(c) for c in ("camera_box", "lidar_box", "vehicle_pose",
                                           "camera_calibration", "lidar_calibration")}
        if self._path("stats").is_file():
            out["stats"] = self._read("stats")
        return out

    @cached_property
    def lidar_calibration(self) -> tuple[np.ndarray, np.ndarray | tuple[float, float]]:
        """TOP laser: extrinsic (4, 4), and beam inclinations highest first, or (min, max) when
        the beams are uniformly spaced (then the range image's row count fixes them)."""
        table = self._labels["lidar_calibration"]
        t = table.filter(pa.compute.equal(table.column(W.LASER), W.LASER_TOP))
        lc = "[LiDARCalibrationComponent]"
        extrinsic = np.array(t.column(f"{lc}.extrinsic.transform")[0].as_py()).reshape(4, 4)
        values = t.column(f"{lc}.beam_inclination.values")[0].as_py()
        if values:
            return extrinsic, np.array(values)[::-1]  # stored ascending; row 0 is the highest
        return extrinsic, (t.column(f"{lc}.beam_inclination.min")[0].as_py(),
                           t.column(f"{lc}.beam_inclination.max")[0].as_py())

    def frame(self, timestamp: int) -> Frame:
        img_t = self._front(self._read("camera_image", timestamp))
        seg_t = self._front(self._read("camera_segmentation", timestamp))
        lid_t = self._top(self._read("lidar", timestamp))
        lseg_t = self._top(self._read("lidar_segmentation", timestamp))
        if img_t.num_rows == 0 or lid_t.num_rows == 0:
            raise InputError(self._path("camera_image"), None,
                             f"frame {timestamp} has no FRONT camera image or TOP LiDAR return")
        image = np.asarray(Image.open(io.BytesIO(img_t.column("[CameraImageComponent].image")[0].as_py()))
                           .convert("RGB"))
        cs = "[CameraSegmentationLabelComponent]"
        divisor = seg_t.column(f"{cs}.panoptic_label_divisor")[0].as_py()
        panoptic = np.asarray(Image.open(io.BytesIO(seg_t.column(f"{cs}.panoptic_label")[0].as_py())),
                              dtype=np.int64)
        waymo_sem = panoptic // divisor
        semantic = np.where(waymo_sem > 0, waymo_sem - 1, IGNORE_INDEX)
        covered = np.asarray(Image.open(io.BytesIO(seg_t.column(f"{cs}.num_cameras_covered")[0].as_py())),
                             dtype=np.float64)
        range_image = _shaped(lid_t, "[LiDARComponent].range_image_return1", np.float32)
        lidar_labels = _shaped(lseg_t, "[LiDARSegmentationLabelComponent].range_image_return1", np.int32)
        extrinsic, incl = self.lidar_calibration
        if isinstance(incl, tuple):
            incl = np.linspace(incl[1], incl[0], range_image.shape[0])
        points, pixels = range_image_points(range_image, incl, extrinsic)
        cam_boxes, cam_labels, cam_ids = self._camera_boxes(timestamp)
        boxes, labels, npts, ids = self._lidar_boxes(timestamp)
        pose_t = _at(self._labels["vehicle_pose"], timestamp)
        pose = np.array(pose_t.column("[VehiclePoseComponent].world_from_vehicle.transform")[0]
                        .as_py()).reshape(4, 4)
        location, weather, time_of_day = self._stats(timestamp)
        return Frame(self.name, timestamp, image, cam_boxes, cam_labels, cam_ids, semantic,
                     panoptic % divisor, np.where(covered > 0, 1.0 / np.maximum(covered, 1), 0.0),
                     range_image, lidar_labels, points, pixels, boxes, labels, npts, ids, pose,
                     location, weather, time_of_day)

    def _stats(self, timestamp: int) -> tuple[str, str, str]:
        """Location, weather and time of day ("unknown" when the stats component is absent)."""
        if "stats" not in self._labels:
            return "unknown", "unknown", "unknown"
        t = _at(self._labels["stats"], timestamp)
        if t.num_rows == 0:
            return "unknown", "unknown", "unknown"
        get = [t.column(f"[StatsComponent].{c}")[0].as_py() for c in ("location", "weather", "time_of_day")]
        return get[0], get[1], get[2]

    def _camera_boxes(self, timestamp: int):
        t = self._front(_at(self._labels["camera_box"], timestamp))
        cb = "[CameraBoxComponent]"
        cx, cy, sx, sy = (np.array(t.column(f"{cb}.box.{k}").to_pylist(), float)
                          for k in ("center.x", "center.y", "size.x", "size.y"))
        boxes = np.stack([cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2], axis=1).reshape(-1, 4)
        types = t.column(f"{cb}.type").to_pylist()
        keep = np.array([ty in W.BOX_TYPE_TO_CLASS for ty in types], bool)
        labels = np.array([W.BOX_TYPE_TO_CLASS.get(ty, -1) for ty in types], int)
        ids = np.array(t.column("key.camera_object_id").to_pylist(), dtype=object)
        return boxes[keep], labels[keep], ids[keep]

    def _lidar_boxes(self, timestamp: int):
        t = _at(self._labels["lidar_box"], timestamp)
        lb = "[LiDARBoxComponent]"
        cols = [f"{lb}.box.center.{a}" for a in "xyz"] + [f"{lb}.box.size.{a}" for a in "xyz"] + \
            [f"{lb}.box.heading"]
        boxes = np.stack([np.array(t.column(c).to_pylist(), float) for c in cols], axis=1).reshape(-1, 7)
        types = t.column(f"{lb}.type").to_pylist()
        keep = np.array([ty in W.BOX_TYPE_TO_CLASS for ty in types], bool)
        labels = np.array([W.BOX_TYPE_TO_CLASS.get(ty, -1) for ty in types], int)
        npts = np.array(t.column(f"{lb}.num_lidar_points_in_box").to_pylist(), int)
        ids = np.array(t.column("key.laser_object_id").to_pylist(), dtype=object)
        return boxes[keep], labels[keep], npts[keep], ids[keep]

    @staticmethod
    def _front(t: pa.Table) -> pa.Table:
        return t.filter(pa.compute.equal(t.column(W.CAMERA), W.CAMERA_FRONT))

    @staticmethod
    def _top(t: pa.Table) -> pa.Table:
        return t.filter(pa.compute.equal(t.column(W.LASER), W.LASER_TOP))


def _at(table: pa.Table, timestamp: int) -> pa.Table:
    return table.filter(pa.compute.equal(table.column(W.FRAME), timestamp))


def _shaped(table: pa.Table, prefix: str, dtype) -> np.ndarray:
    values = table.column(f"{prefix}.values")[0].values.to_numpy(zero_copy_only=False)
    shape = table.column(f"{prefix}.shape")[0].as_py()
    return np.asarray(values, dtype=dtype).reshape(shape)


def check(root: Path) -> tuple[int, int]:
    """Read every frame of every segment; raise InputError at the first bad file or key.
    Returns (segments, frames) checked."""
    ds = WaymoV2Dataset(root)
    segments = ds.segments()
    if not segments:
        raise InputError(Path(root) / "camera_image", None, "no <segment>.parquet files")
    frames = 0
    for name in segments:
        reader = ds.segment(name)
        for component in W.REQUIRED:
            keys = set(reader._read(component).column(W.SEGMENT).to_pylist())
            if keys and keys != {name}:
                raise InputError(reader._path(component), None,
                                 f"key.segment_context_name {sorted(keys)[0]!r} does not match the file name")
        expected = set(reader.timestamps)
        for component in ("camera_segmentation", "lidar", "lidar_segmentation", "vehicle_pose"):
            if set(reader._read_keys(component)) != expected:
                raise InputError(reader._path(component), None,
                                 "frame timestamps differ from camera_image's")
        for ts in reader.timestamps:
            reader.frame(ts)
            frames += 1
    return len(segments), frames
