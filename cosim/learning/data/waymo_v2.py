"""Reader of Waymo Open Dataset perception v2 (Parquet components) from a local folder.

``learning.data.root: /path/to/waymo_v2`` points at a folder holding one sub-folder per component
(``camera_image/``, ``lidar/``, ...) with one ``<segment>.parquet`` each. Reads project onto the
columns cosim needs and are lazy per frame (row-group filters on the timestamp); small label
components are read once per segment. A missing component, an unreadable file, a column of the
wrong type, a null, NaN or undecodable value is an InputError naming the file and the column
(``cosim.input_checks``), so a run and ``cosim data check`` refuse the same files.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from cosim.bounded_read import virtual_file
from cosim.errors import InputError, printable
from cosim.input_checks import Where, check_columns, check_values, read_schema, read_table
from cosim.learning.classes import IGNORE_INDEX, PAN2D, SEG3D
from cosim.learning.data import waymo_schema as W
from cosim.learning.data.decode import DecodeError, decode_image, label_outside
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


MIN_IMAGE_SIDE = 16  # pixels: smaller, the model's patches and the panoptic metric see nothing
MAX_RANGE_M = 1000.0  # a LiDAR return (Waymo's reach is 75 m); -1 is no return
MAX_BOX_SIZE_M = 100.0
MAX_BOX_CENTRE_M = 1000.0  # from the vehicle
MAX_SENSOR_OFFSET_M = 20.0  # a sensor's mounting point from the vehicle's origin
MAX_POSE_M = 1e7  # a vehicle's position in the world frame (the Earth's radius is 6.4e6 m)
MAX_ELONGATION = 100.0  # a return's pulse elongation (Waymo's: below a few); -1 is no return
MAX_INTENSITY = 1e6  # a return's intensity (the model clips it to [0, 1])
ROTATION_TOLERANCE = 1e-3  # |R R^T - I| of a stored rotation (float32 round-off is 1e-7)


def transform_problem(m: np.ndarray, reach_m: float) -> str | None:
    """Why a 4 x 4 row-major transform is not a rigid motion within ``reach_m`` of the origin
    (a scaled or sheared rotation, or a translation of 1e307 m, turns every point into garbage
    or infinity); None when it is one."""
    if m.shape != (4, 4) or not np.isfinite(m).all():
        return "is not 16 finite numbers (a 4 x 4 transform)"
    rotation = m[:3, :3]
    if (float(np.abs(rotation).max()) > 1 + ROTATION_TOLERANCE
            or float(np.abs(rotation @ rotation.T - np.eye(3)).max()) > ROTATION_TOLERANCE
            or float(np.linalg.det(rotation)) < 0):
        return "has a rotation part that is not a rotation (orthonormal, determinant 1)"
    if float(np.abs(m[3] - (0, 0, 0, 1)).max()) > ROTATION_TOLERANCE:
        return f"has a last row of {m[3].tolist()} (a rigid transform's is 0 0 0 1)"
    if float(np.abs(m[:3, 3]).max()) > reach_m:
        return f"has a translation of {m[:3, 3].tolist()} m (at most {reach_m:g} m each)"
    return None


def inclination_problem(inclinations: np.ndarray) -> str | None:
    """Why beam inclinations (radians) cannot be a spinning LiDAR's; None when they can."""
    incl = np.asarray(inclinations, dtype=np.float64)
    if not np.isfinite(incl).all() or (incl.size and float(np.abs(incl).max()) > np.pi / 2):
        return "a beam inclination that is not an angle within -pi/2 to pi/2 radians"
    return None


def frame_problem(frame: Frame) -> tuple[str, str] | None:
    """(component, why) when a decoded frame's values cannot be a real scene's: finite but
    absurd numbers (a negative box size, a box a light-year away, a range of -1e30, a 1 x 1
    image) would train on garbage or give NaN metrics without a word; None when plausible."""
    h, w = frame.image.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        return "camera_image", f"a {w} x {h} image (at least {MIN_IMAGE_SIDE} pixels a side)"
    cam = frame.camera_boxes
    if len(cam) and not ((cam[:, 2] > cam[:, 0]).all() and (cam[:, 3] > cam[:, 1]).all()):
        return "camera_box", "a camera box without a positive width and height"
    if len(cam) and float(np.abs(cam).max()) > 10 * max(h, w):
        return "camera_box", f"a camera box far outside its {w} x {h} image"
    boxes = frame.lidar_boxes
    if len(boxes):
        sizes = boxes[:, 3:6]
        if not ((sizes > 0).all() and (sizes <= MAX_BOX_SIZE_M).all()):
            bad = sizes[(sizes <= 0) | (sizes > MAX_BOX_SIZE_M)][0]
            return "lidar_box", f"a box size of {bad:g} m (each in 0-{MAX_BOX_SIZE_M:g} m)"
        if len(frame.lidar_box_points) and int(frame.lidar_box_points.min()) < 0:
            return "lidar_box", (f"a box with {int(frame.lidar_box_points.min())} LiDAR points "
                                 "in it (a count: 0 or more)")
        if float(np.abs(boxes[:, :3]).max()) > MAX_BOX_CENTRE_M:
            return "lidar_box", (f"a box centre more than {MAX_BOX_CENTRE_M:g} m from the "
                                 "vehicle")
    if frame.range_image.size:
        for channel, what, low, high in ((0, "a range", -1.0, MAX_RANGE_M),
                                         (1, "an intensity", -1.0, MAX_INTENSITY),
                                         (2, "an elongation", -1.0, MAX_ELONGATION),
                                         (3, "a no-label-zone flag", -1.0, 1.0)):
            values = frame.range_image[..., channel]
            if float(values.min()) < low or float(values.max()) > high:
                bad = float(values.min()) if float(values.min()) < low else float(values.max())
                return "lidar", f"{what} of {bad:g} (-1 for no return, else up to {high:g})"
    if frame.points.size and not np.isfinite(frame.points).all():
        return "lidar", "a LiDAR point that is not finite in the vehicle frame"
    return None


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
        self._readers: dict[str, SegmentReader] = {}

    @cached_property
    def _segments(self) -> list[str]:
        names = {p.stem for p in (self.root / "camera_image").glob("*.parquet")}
        for component in W.COMPONENTS:  # a segment's file without its camera images: a partial
            for path in sorted((self.root / component).glob("*.parquet")):  # download, not data
                if path.stem not in names:
                    raise InputError(path, None, f"segment {path.stem} has no camera_image file "
                                     "(every segment needs one; remove the segment's files or "
                                     "add its camera images)")
        return sorted(names)

    def segments(self) -> list[str]:
        return list(self._segments)

    def segment(self, name: str) -> SegmentReader:
        """One reader per segment, kept: its frame keys serve describe(), camera_only() and
        without_panoptic() alike."""
        if name not in self._readers:
            self._readers[name] = SegmentReader(self.root, name)
        return self._readers[name]

    def camera_only(self) -> set[str]:
        """Segments with a frame that has no TOP LiDAR return (Waymo's PVPS segments have no
        LiDAR component): their clients train the camera tasks on the image and text only."""
        return {name for name in self.segments() if self.segment(name).camera_only}

    def without_panoptic(self) -> set[str]:
        """Segments with a frame that has no panoptic label (most of Waymo's perception frames):
        their clients train every task but pan2d."""
        return {name for name in self.segments() if self.segment(name).without_panoptic}

    def describe(self) -> tuple[dict[str, list[int]], dict[str, str]]:
        """Frame timestamps and location of every segment (what partitions are made from)."""
        frames, city = {}, {}
        for name in self.segments():
            reader = self.segment(name)
            if not reader.timestamps:
                raise InputError(reader._path("camera_image"), W.FRAME, "no frames (0 rows)")
            frames[name] = reader.timestamps
            city[name] = reader._stats(reader.timestamps[0])[0]
        return frames, city


class SegmentReader:
    def __init__(self, root: Path, name: str):
        self.root, self.name = root, name
        self._schema_ok: set[str] = set()
        self.has_lidar = self.present("lidar")
        for component in (*W.REQUIRED, *(W.LIDAR if self.has_lidar else ())):
            path = self._path(component)
            if not self.present(component):
                why = " (its lidar component is there: the LiDAR comes with all four)" \
                    if component in W.LIDAR else ""
                raise InputError(path, None, f"missing component {component} of segment {name}{why}")
        self.has_panoptic = self.present("camera_segmentation")

    def _path(self, component: str) -> Path:
        return self.root / component / f"{self.name}.parquet"

    def present(self, component: str) -> bool:
        """Whether the segment has the component: False when nothing is at its path. Anything
        but a regular file there (a FIFO, a device, a folder, a link to nothing) is refused:
        taken for absent, an optional component (LiDAR, panoptic labels) would drop silently."""
        path = self._path(component)
        if not os.path.lexists(path):
            return False
        try:
            regular = stat.S_ISREG(path.stat().st_mode) and not virtual_file(path)
        except OSError:  # a link to nothing, a loop of links
            regular = False
        if not regular:
            raise InputError(path, None, f"not a regular file (component {component} of segment "
                             f"{self.name} is read from a Parquet file)")
        return True

    def _where(self, component: str) -> Where:
        return Where(self._path(component))

    def _checked(self, component: str) -> Where:
        """The component's file, its columns checked for presence and type (once)."""
        where = self._where(component)
        if component not in self._schema_ok:
            if not self.present(component):
                raise InputError(where.path, None, f"missing component {component}")
            schema = read_schema(where, f"{component} Parquet file")
            check_columns(where, schema, W.SCHEMAS[component], f"Waymo v2 {component} file")
            self._schema_ok.add(component)
        return where

    def _read(self, component: str, timestamps: Sequence[int] | None = None) -> pa.Table:
        """The component's columns (these frames' rows, or all), their values checked."""
        where = self._checked(component)
        filters = [(W.FRAME, "in", list(timestamps))] if timestamps is not None else None
        table = read_table(where, W.SCHEMAS[component].names, f"{component} Parquet file", filters)
        check_values(where, table, W.NULLABLE.get(component, ()))
        if (why := repeated_key(table)) is not None:
            raise where.error(why[0], why[1])
        return table

    @cached_property
    def timestamps(self) -> list[int]:
        t = self._read_keys("camera_image")
        return sorted(set(t))

    def _read_keys(self, component: str) -> list[int]:
        where = self._checked(component)
        table = read_table(where, [W.FRAME], f"{component} Parquet file")
        check_values(where, table)
        return table.column(W.FRAME).to_pylist()

    def per_frame_components(self) -> tuple[str, ...]:
        """The components with rows per frame that this segment has."""
        return ("camera_image", *(("camera_segmentation",) if self.has_panoptic else ()),
                *(("lidar", "lidar_segmentation") if self.has_lidar else ()))

    @cached_property
    def _top_frames(self) -> set[int]:
        """Frames with a TOP LiDAR return."""
        return self._frames_with("lidar", W.LASER, W.LASER_TOP) if self.has_lidar else set()

    @cached_property
    def _panoptic_frames(self) -> set[int]:
        """Frames with a FRONT camera panoptic label."""
        return (self._frames_with("camera_segmentation", W.CAMERA, W.CAMERA_FRONT)
                if self.has_panoptic else set())

    def _frames_with(self, component: str, sensor_column: str, sensor: int) -> set[int]:
        """The frames whose rows of ``component`` include ``sensor`` (only the key columns read)."""
        where = self._checked(component)
        table = read_table(where, [W.FRAME, sensor_column], f"{component} Parquet file")
        check_values(where, table)
        rows = table.filter(pa.compute.equal(table.column(sensor_column), sensor))
        return set(rows.column(W.FRAME).to_pylist())

    @property
    def camera_only(self) -> bool:
        """Some frame of the segment has no TOP LiDAR return: the segment serves camera tasks."""
        return not set(self.timestamps) <= self._top_frames

    @property
    def without_panoptic(self) -> bool:
        """Some frame of the segment has no panoptic label: the segment serves the other tasks."""
        return not set(self.timestamps) <= self._panoptic_frames

    @cached_property
    def _labels(self) -> dict[str, pa.Table]:
        """Small per-segment components, read once."""
        small = ("camera_box", "vehicle_pose", "camera_calibration",
                 *(("lidar_box", "lidar_calibration") if self.has_lidar else ()))
        out = {c: self._read(c) for c in small}
        if self.present("stats"):
            out["stats"] = self._read("stats")
        return out

    @cached_property
    def lidar_calibration(self) -> tuple[np.ndarray, np.ndarray | tuple[float, float]]:
        """TOP laser: extrinsic (4, 4), and beam inclinations highest first, or (min, max) when
        the beams are uniformly spaced (then the range image's row count fixes them)."""
        table = self._labels["lidar_calibration"]
        t = self._top(table)
        where, lc = self._where("lidar_calibration"), "[LiDARCalibrationComponent]"
        if t.num_rows == 0:
            raise where.error(W.LASER, "no TOP laser calibration")
        extrinsic = _matrix(where, f"{lc}.extrinsic.transform",
                            t.column(f"{lc}.extrinsic.transform")[0], MAX_SENSOR_OFFSET_M)
        values = t.column(f"{lc}.beam_inclination.values")[0].as_py()
        if values:
            if (why := inclination_problem(np.array(values, dtype=np.float64))) is not None:
                raise where.error(f"{lc}.beam_inclination.values", why)
            return extrinsic, np.array(values)[::-1]  # stored ascending; row 0 is the highest
        low, high = (t.column(f"{lc}.beam_inclination.{k}")[0].as_py() for k in ("min", "max"))
        if low is None or high is None:
            raise where.error(f"{lc}.beam_inclination.values", "no beam inclinations (values or min/max)")
        if (why := inclination_problem(np.array([low, high], dtype=np.float64))) is not None:
            raise where.error(f"{lc}.beam_inclination.min", why)
        return extrinsic, (low, high)

    def frame(self, timestamp: int) -> Frame:
        return self.frames([timestamp])[0]

    def frames(self, timestamps: Sequence[int]) -> list[Frame]:
        """Several frames of the segment: each per-frame component is read once for all of them
        (one Parquet read per frame costs more than decoding it)."""
        tables = {c: self._read(c, timestamps) for c in self.per_frame_components()}
        return [self._frame(ts, {c: _at(t, ts) if len(timestamps) > 1 else t for c, t in tables.items()})
                for ts in timestamps]

    def _frame(self, timestamp: int, tables: dict[str, pa.Table]) -> Frame:
        img_t = self._front(tables["camera_image"])
        if img_t.num_rows == 0:
            raise InputError(self._path("camera_image"), None, f"frame {timestamp} has no FRONT camera image")
        ci = "[CameraImageComponent]"
        image = np.asarray(
            _image(self._where("camera_image"), f"{ci}.image", img_t, timestamp).convert("RGB"))
        semantic, instance, weight = self._panoptic(timestamp, tables, image.shape)
        range_image, lidar_labels, points, pixels = self._lidar(timestamp, tables)
        cam_boxes, cam_labels, cam_ids = self._camera_boxes(timestamp)
        boxes, labels, npts, ids = self._lidar_boxes(timestamp)
        pose_t = _at(self._labels["vehicle_pose"], timestamp)
        column = "[VehiclePoseComponent].world_from_vehicle.transform"
        if pose_t.num_rows == 0:
            raise self._where("vehicle_pose").error(column, f"no pose for frame {timestamp}")
        pose = _matrix(self._where("vehicle_pose"), column, pose_t.column(column)[0], MAX_POSE_M)
        location, weather, time_of_day = self._stats(timestamp)
        frame = Frame(self.name, timestamp, image, cam_boxes, cam_labels, cam_ids, semantic,
                      instance, weight, range_image, lidar_labels, points, pixels, boxes, labels,
                      npts, ids, pose, location, weather, time_of_day)
        if (problem := frame_problem(frame)) is not None:
            component, why = problem
            raise InputError(self._path(component), None, f"frame {timestamp}: {why}")
        return frame

    def _panoptic(self, timestamp: int, tables: dict[str, pa.Table], shape: tuple[int, ...]):
        """PAN2D class, instance id and pixel weight; a frame without a label is all void."""
        seg_t = self._front(tables["camera_segmentation"]) if self.has_panoptic else None
        if seg_t is None or seg_t.num_rows == 0:
            return no_panoptic(shape[:2])
        cs = "[CameraSegmentationLabelComponent]"
        where = self._where("camera_segmentation")
        divisor = seg_t.column(f"{cs}.panoptic_label_divisor")[0].as_py()
        if divisor <= 0:
            raise where.error(f"{cs}.panoptic_label_divisor", f"frame {timestamp}: {divisor} (must be > 0)")
        panoptic = _label_image(where, f"{cs}.panoptic_label", seg_t, timestamp, shape)
        waymo_sem = panoptic // divisor
        if (why := label_outside(waymo_sem, len(PAN2D) + 1)) is not None:  # 0: undefined
            raise where.error(f"{cs}.panoptic_label", f"frame {timestamp}: {why} of Waymo's "
                              "camera segmentation")
        covered = _label_image(where, f"{cs}.num_cameras_covered", seg_t, timestamp,
                               shape).astype(np.float64)
        return (np.where(waymo_sem > 0, waymo_sem - 1, IGNORE_INDEX), panoptic % divisor,
                np.where(covered > 0, 1.0 / np.maximum(covered, 1), 0.0))

    def _lidar(self, timestamp: int, tables: dict[str, pa.Table]):
        """The TOP laser's range image, labels, points and their pixels; none without a return."""
        lid_t = self._top(tables["lidar"]) if self.has_lidar else None
        if lid_t is None or lid_t.num_rows == 0:
            return no_lidar()
        lseg_t = self._top(tables["lidar_segmentation"])
        if lseg_t.num_rows == 0:
            raise InputError(self._path("lidar_segmentation"), None,
                             f"frame {timestamp} has a TOP LiDAR return but no TOP LiDAR segmentation")
        range_image = _shaped(self._where("lidar"), lid_t, "[LiDARComponent].range_image_return1",
                              np.float32, timestamp, 4)
        lidar_labels = _shaped(self._where("lidar_segmentation"), lseg_t,
                               "[LiDARSegmentationLabelComponent].range_image_return1", np.int32,
                               timestamp, 2, range_image.shape[:2])
        if (why := label_outside(lidar_labels[..., 1], len(SEG3D))) is not None:
            raise self._where("lidar_segmentation").error(
                "[LiDARSegmentationLabelComponent].range_image_return1",
                f"frame {timestamp}: {why} of Waymo's LiDAR segmentation")
        extrinsic, incl = self.lidar_calibration
        if isinstance(incl, tuple):
            incl = np.linspace(incl[1], incl[0], range_image.shape[0])
        elif len(incl) != range_image.shape[0]:
            raise self._where("lidar_calibration").error(
                "[LiDARCalibrationComponent].beam_inclination.values",
                f"{len(incl)} beams; the range image of frame {timestamp} has {range_image.shape[0]} rows")
        points, pixels = range_image_points(range_image, incl, extrinsic)
        return range_image, lidar_labels, points, pixels

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
        if not self.has_lidar:
            return np.zeros((0, 7)), np.zeros(0, int), np.zeros(0, int), np.zeros(0, dtype=object)
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


def no_lidar() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A camera-only frame's LiDAR: a one-pixel range image with no return, no points."""
    return (np.array([[[-1.0, 0.0, 0.0, 0.0]]], np.float32), np.zeros((1, 1, 2), np.int32),
            np.zeros((0, 3)), np.zeros(0, np.int64))


def no_panoptic(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frame without a panoptic label: every pixel void (pan2d is not trained on it)."""
    return (np.full(shape, IGNORE_INDEX, np.int64), np.zeros(shape, np.int64),
            np.ones(shape, np.float64))


def repeated_key(table: pa.Table) -> tuple[str, str] | None:
    """A component's ``key.*`` columns name one row each (Waymo's v2 keys): a repeated key would
    be read as its first row (a pose, an image) or twice (a box counted double), so it is refused
    with the first repeated key."""
    keys = [c for c in table.column_names if c.startswith("key.")]
    counts = table.select(keys).group_by(keys).aggregate([([], "count_all")])
    repeated = counts.filter(pa.compute.greater(counts.column("count_all"), 1))
    if repeated.num_rows == 0:
        return None
    first = {k: repeated.column(k)[0].as_py() for k in keys}
    said = ", ".join(f"{k.removeprefix('key.')} {printable(str(v))}" for k, v in first.items())
    return keys[-1], f"{repeated.column('count_all')[0].as_py()} rows share one key ({said})"


def _at(table: pa.Table, timestamp: int) -> pa.Table:
    return table.filter(pa.compute.equal(table.column(W.FRAME), timestamp))


def _image(where: Where, column: str, table: pa.Table, timestamp: int) -> Image.Image:
    """The first row's encoded image, decoded (any failure of the decoder is a corrupt file)."""
    data = table.column(column)[0].as_py()
    try:
        return decode_image(data)
    except DecodeError as exc:
        raise where.error(column, f"frame {timestamp}: {exc}") from None


def _label_image(where: Where, column: str, table: pa.Table, timestamp: int,
                 image_shape: tuple[int, ...]) -> np.ndarray:
    """A single-channel label PNG of the camera image's size, as int64."""
    label = np.asarray(_image(where, column, table, timestamp))
    if label.shape != tuple(image_shape[:2]):
        raise where.error(column, f"frame {timestamp}: shape {label.shape}; the camera image is "
                          f"{tuple(image_shape[:2])}")
    return label.astype(np.int64)


def _matrix(where: Where, column: str, value: pa.Scalar, reach_m: float) -> np.ndarray:
    """A rigid 4 x 4 transform stored row-major as 16 numbers, within ``reach_m``."""
    values = np.asarray(value.as_py(), dtype=np.float64)
    if values.shape != (16,):
        raise where.error(column, f"{values.size} values; a 4 x 4 transform has 16")
    if (why := transform_problem(values.reshape(4, 4), reach_m)) is not None:
        raise where.error(column, why)
    return values.reshape(4, 4)


def _shaped(where: Where, table: pa.Table, prefix: str, dtype, timestamp: int, channels: int,
            rows_cols: tuple[int, ...] | None = None) -> np.ndarray:
    """A range image stored flat with its (rows, columns, channels) shape, checked."""
    values = table.column(f"{prefix}.values")[0].values.to_numpy(zero_copy_only=False)
    shape = table.column(f"{prefix}.shape")[0].as_py()
    # a Python int product: numpy's int64 would wrap around for huge declared shapes
    if (len(shape) != 3 or min(shape) <= 0 or shape[2] < channels
            or math.prod(int(n) for n in shape) != len(values)):
        raise where.error(f"{prefix}.shape", f"frame {timestamp}: shape {shape} does not fit "
                          f"{len(values)} values with at least {channels} channels")
    if rows_cols is not None and tuple(shape[:2]) != tuple(rows_cols):
        raise where.error(f"{prefix}.shape", f"frame {timestamp}: {shape[:2]} rows x columns; the "
                          f"LiDAR range image has {list(rows_cols)}")
    return np.asarray(values, dtype=dtype).reshape(shape)
