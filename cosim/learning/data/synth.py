"""``cosim data synth``: synthetic segments written in the Waymo perception v2 layout.

Each segment is a procedural street scene (see scene.py) rendered by a front camera (JPEG,
2D boxes, panoptic PNG with instance ids stable over frames) and a TOP LiDAR (range image,
per-point labels, 3D boxes with their point counts), plus calibrations, vehicle poses and the
segment's stats (city, weather, time of day). The same reader reads these files and real Waymo
v2 data. Segments are independent and seeded, so generation is deterministic whatever the
number of worker processes.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from cosim.child_env import dies_with_parent, stop_pool
from cosim.learning.data import waymo_schema as W
from cosim.learning.data.lidar import LIDAR_HEIGHT_M, beam_inclinations, render_lidar
from cosim.learning.data.render import CAMERA_HEIGHT_M, render_camera
from cosim.learning.data.scene import KIND_NAMES, KINDS, make_segment
from cosim.progress import warmup_step

PANOPTIC_DIVISOR = 1000
T0_MICROS = 1_557_000_000_000_000  # an arbitrary epoch for frame timestamps
HFOV_DEG = 70.0


@dataclass(frozen=True)
class SynthConfig:
    segments: int = 20
    frames: int = 40
    seed: int = 0
    hz: float = 2.0  # frames per second: 40 frames span a Waymo segment's 20 s
    camera_size: tuple[int, int] = (128, 96)  # width, height
    lidar_size: tuple[int, int] = (64, 512)  # beams, columns
    jpeg_quality: int = 95


def segment_name(seed: int, index: int) -> str:
    return f"synth{seed:04d}_{index:05d}_000_000"


def generate(root: Path, cfg: SynthConfig, workers: int | None = None) -> list[str]:
    """Write ``cfg.segments`` segments under ``root``; return their names."""
    root.mkdir(parents=True, exist_ok=True)
    for component in W.COMPONENTS:
        (root / component).mkdir(exist_ok=True)
    names = [segment_name(cfg.seed, i) for i in range(cfg.segments)]
    workers = workers or min(len(names), os.cpu_count() or 1)
    warmup_step(f"synthetic data: 0 of {cfg.segments} segments")
    if workers <= 1:
        for i in range(cfg.segments):
            write_segment(root, cfg, i)
            warmup_step(f"synthetic data: {i + 1} of {cfg.segments} segments")
    else:
        pool = ProcessPoolExecutor(workers, initializer=dies_with_parent)
        try:
            done = pool.map(write_segment, [root] * cfg.segments, [cfg] * cfg.segments,
                            range(cfg.segments))
            for i, _ in enumerate(done):
                warmup_step(f"synthetic data: {i + 1} of {cfg.segments} segments")
        except BaseException:  # an error, Ctrl-C, SIGTERM: no worker goes on alone
            stop_pool(pool)
            raise
        pool.shutdown(wait=True)
    return names


def write_segment(root: Path, cfg: SynthConfig, index: int) -> str:
    name = segment_name(cfg.seed, index)
    seg = make_segment(name, seed=cfg.seed * 1_000_003 + index, frames=cfg.frames, hz=cfg.hz)
    rng = np.random.default_rng([cfg.seed, index, 7])
    width, height = cfg.camera_size
    rows, cols = cfg.lidar_size
    tables: dict[str, list[dict]] = {c: [] for c in W.COMPONENTS}
    for k in range(cfg.frames):
        ts = T0_MICROS + round(k * 1e6 / cfg.hz)
        cam = render_camera(seg, k, width, height, rng)
        lid = render_lidar(seg, k, rows, cols, rng)
        boxes, kinds, ids = seg.frame(k)
        _camera_rows(tables, name, ts, cam, cfg.jpeg_quality, seg.ego_speed * k / seg.hz)
        _lidar_rows(tables, name, ts, lid, boxes, kinds, ids)
        tables["stats"].append({W.SEGMENT: name, W.FRAME: ts,
                                "[StatsComponent].time_of_day": seg.style.time_of_day,
                                "[StatsComponent].location": seg.style.city,
                                "[StatsComponent].weather": seg.style.weather})
    f = (width / 2) / np.tan(np.radians(HFOV_DEG) / 2)
    cc = "[CameraCalibrationComponent]"
    tables["camera_calibration"].append({
        W.SEGMENT: name, W.CAMERA: W.CAMERA_FRONT, f"{cc}.intrinsic.f_u": f, f"{cc}.intrinsic.f_v": f,
        f"{cc}.intrinsic.c_u": width / 2, f"{cc}.intrinsic.c_v": height / 2,
        **{f"{cc}.intrinsic.{k}": 0.0 for k in ("k1", "k2", "p1", "p2", "k3")},
        f"{cc}.extrinsic.transform": _translation(0, 0, CAMERA_HEIGHT_M),
        f"{cc}.width": width, f"{cc}.height": height, f"{cc}.rolling_shutter_direction": 5,
    })
    lc = "[LiDARCalibrationComponent]"
    incl = beam_inclinations(rows)
    tables["lidar_calibration"].append({
        W.SEGMENT: name, W.LASER: W.LASER_TOP,
        f"{lc}.extrinsic.transform": _translation(0, 0, LIDAR_HEIGHT_M),
        f"{lc}.beam_inclination.min": float(incl.min()), f"{lc}.beam_inclination.max": float(incl.max()),
        f"{lc}.beam_inclination.values": incl[::-1].tolist(),  # ascending, as Waymo stores them
    })
    for component, rows_ in tables.items():
        schema = W.SCHEMAS[component]
        table = pa.Table.from_pylist(rows_, schema=schema)
        # one row group per frame for the heavy components: a frame is read without the others
        per_group = 1 if component in ("camera_image", "camera_segmentation", "lidar",
                                       "lidar_segmentation") else max(1, len(rows_))
        pq.write_table(table, root / component / f"{name}.parquet", row_group_size=per_group,
                       compression="zstd")
    return name


def _camera_rows(tables, name, ts, cam, quality, ego_x) -> None:
    key = {W.SEGMENT: name, W.FRAME: ts, W.CAMERA: W.CAMERA_FRONT}
    buf = io.BytesIO()
    Image.fromarray(cam.image).save(buf, format="JPEG", quality=quality)
    tables["camera_image"].append({**key, "[CameraImageComponent].image": buf.getvalue(),
                                   "[CameraImageComponent].pose.transform": _translation(ego_x, 0, 0)})
    cb = "[CameraBoxComponent]"
    for (x1, y1, x2, y2), label, obj in zip(cam.boxes, cam.box_labels, cam.box_ids, strict=True):
        tables["camera_box"].append({
            **key, "key.camera_object_id": str(obj), f"{cb}.box.center.x": (x1 + x2) / 2,
            f"{cb}.box.center.y": (y1 + y2) / 2, f"{cb}.box.size.x": x2 - x1,
            f"{cb}.box.size.y": y2 - y1, f"{cb}.type": W.CLASS_TO_BOX_TYPE[int(label)]})
    # Waymo camera semantic ids: 0 = undefined, then cosim's PAN2D order shifted by one.
    panoptic = ((cam.semantic + 1) * PANOPTIC_DIVISOR + cam.instance).astype(np.uint16)
    cs = "[CameraSegmentationLabelComponent]"
    tables["camera_segmentation"].append({
        **key, f"{cs}.panoptic_label_divisor": PANOPTIC_DIVISOR, f"{cs}.panoptic_label": _png(panoptic),
        f"{cs}.sequence_id": name, f"{cs}.num_cameras_covered": _png(np.ones_like(panoptic, np.uint8))})
    pose = _translation(ego_x, 0, 0)
    tables["vehicle_pose"].append({W.SEGMENT: name, W.FRAME: ts,
                                   "[VehiclePoseComponent].world_from_vehicle.transform": pose})


def _lidar_rows(tables, name, ts, lid, boxes, kinds, ids) -> None:
    key = {W.SEGMENT: name, W.FRAME: ts, W.LASER: W.LASER_TOP}
    shape4, shape2 = list(lid.range_image.shape), list(lid.labels.shape)
    tables["lidar"].append({**key, "[LiDARComponent].range_image_return1.values": lid.range_image.reshape(-1),
                            "[LiDARComponent].range_image_return1.shape": shape4})
    ls = "[LiDARSegmentationLabelComponent]"
    tables["lidar_segmentation"].append({**key, f"{ls}.range_image_return1.values": lid.labels.reshape(-1),
                                         f"{ls}.range_image_return1.shape": shape2})
    lb = "[LiDARBoxComponent]"
    for box, kind, obj in zip(boxes, kinds, ids, strict=True):
        cls = KINDS[KIND_NAMES[kind]][2]
        if cls < 0 or np.hypot(box[0], box[1]) > 80.0:
            continue
        points = lid.points_in_box.get(int(obj), 0)
        tables["lidar_box"].append({
            W.SEGMENT: name, W.FRAME: ts, "key.laser_object_id": str(obj),
            f"{lb}.box.center.x": box[0], f"{lb}.box.center.y": box[1],
            f"{lb}.box.center.z": box[2] + box[5] / 2, f"{lb}.box.size.x": box[3],
            f"{lb}.box.size.y": box[4], f"{lb}.box.size.z": box[5], f"{lb}.box.heading": box[6],
            f"{lb}.type": W.CLASS_TO_BOX_TYPE[cls], f"{lb}.num_lidar_points_in_box": points,
            f"{lb}.num_top_lidar_points_in_box": points})


def _translation(x: float, y: float, z: float) -> list[float]:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m.reshape(-1).tolist()


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()
