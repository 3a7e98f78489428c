"""The Waymo Open Dataset perception v2 layout: one folder per component, one
``<segment>.parquet`` per segment, columns named ``key.*`` and ``[ComponentName].field``.

Only the columns cosim reads or writes are listed (names and Arrow types as in Waymo's v2
component definitions); a real dataset has more, and the reader projects onto these.
"""

from __future__ import annotations

import pyarrow as pa

SEGMENT = "key.segment_context_name"
FRAME = "key.frame_timestamp_micros"
CAMERA = "key.camera_name"
LASER = "key.laser_name"

CAMERA_FRONT = 1  # CameraName.FRONT
LASER_TOP = 1  # LaserName.TOP
# BoxType: 1 vehicle, 2 pedestrian, 3 sign, 4 cyclist -> cosim detection index
BOX_TYPE_TO_CLASS = {1: 0, 2: 1, 4: 2, 3: 3}
CLASS_TO_BOX_TYPE = {v: k for k, v in BOX_TYPE_TO_CLASS.items()}


def _f64(*names: str) -> list[tuple[str, pa.DataType]]:
    return [(n, pa.float64()) for n in names]


_CI, _CB, _CC = "[CameraImageComponent]", "[CameraBoxComponent]", "[CameraCalibrationComponent]"
_CS, _L, _LB = "[CameraSegmentationLabelComponent]", "[LiDARComponent]", "[LiDARBoxComponent]"
_LC, _LS = "[LiDARCalibrationComponent]", "[LiDARSegmentationLabelComponent]"
_VP, _ST = "[VehiclePoseComponent]", "[StatsComponent]"

SCHEMAS: dict[str, pa.Schema] = {
    "camera_image": pa.schema([
        (SEGMENT, pa.string()), (FRAME, pa.int64()), (CAMERA, pa.int8()),
        (f"{_CI}.image", pa.binary()), (f"{_CI}.pose.transform", pa.list_(pa.float64(), 16)),
    ]),
    "camera_box": pa.schema([
        (SEGMENT, pa.string()), (FRAME, pa.int64()), (CAMERA, pa.int8()),
        ("key.camera_object_id", pa.string()),
        *_f64(f"{_CB}.box.center.x", f"{_CB}.box.center.y", f"{_CB}.box.size.x", f"{_CB}.box.size.y"),
        (f"{_CB}.type", pa.int8()),
    ]),
    "camera_calibration": pa.schema([
        (SEGMENT, pa.string()), (CAMERA, pa.int8()),
        *_f64(*(f"{_CC}.intrinsic.{k}" for k in ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3"))),
        (f"{_CC}.extrinsic.transform", pa.list_(pa.float64(), 16)),
        (f"{_CC}.width", pa.int32()), (f"{_CC}.height", pa.int32()),
        (f"{_CC}.rolling_shutter_direction", pa.int8()),
    ]),
    "camera_segmentation": pa.schema([
        (SEGMENT, pa.string()), (FRAME, pa.int64()), (CAMERA, pa.int8()),
        (f"{_CS}.panoptic_label_divisor", pa.int32()), (f"{_CS}.panoptic_label", pa.binary()),
        (f"{_CS}.sequence_id", pa.string()), (f"{_CS}.num_cameras_covered", pa.binary()),
    ]),
    "lidar": pa.schema([
        (SEGMENT, pa.string()), (FRAME, pa.int64()), (LASER, pa.int8()),
        (f"{_L}.range_image_return1.values", pa.list_(pa.float32())),
        (f"{_L}.range_image_return1.shape", pa.list_(pa.int32(), 3)),
    ]),
    "lidar_box": pa.schema([
        (SEGMENT, pa.string()), (FRAME, pa.int64()), ("key.laser_object_id", pa.string()),
        *_f64(*(f"{_LB}.box.center.{a}" for a in "xyz"), *(f"{_LB}.box.size.{a}" for a in "xyz"),
              f"{_LB}.box.heading"),
        (f"{_LB}.type", pa.int8()), (f"{_LB}.num_lidar_points_in_box", pa.int64()),
        (f"{_LB}.num_top_lidar_points_in_box", pa.int64()),
    ]),
    "lidar_calibration": pa.schema([
        (SEGMENT, pa.string()), (LASER, pa.int8()),
        (f"{_LC}.extrinsic.transform", pa.list_(pa.float64(), 16)),
        *_f64(f"{_LC}.beam_inclination.min", f"{_LC}.beam_inclination.max"),
        (f"{_LC}.beam_inclination.values", pa.list_(pa.float64())),
    ]),
    "lidar_segmentation": pa.schema([
        (SEGMENT, pa.string()), (FRAME, pa.int64()), (LASER, pa.int8()),
        (f"{_LS}.range_image_return1.values", pa.list_(pa.int32())),
        (f"{_LS}.range_image_return1.shape", pa.list_(pa.int32(), 3)),
    ]),
    "vehicle_pose": pa.schema([
        (SEGMENT, pa.string()), (FRAME, pa.int64()),
        (f"{_VP}.world_from_vehicle.transform", pa.list_(pa.float64(), 16)),
    ]),
    "stats": pa.schema([
        (SEGMENT, pa.string()), (FRAME, pa.int64()),
        (f"{_ST}.time_of_day", pa.string()), (f"{_ST}.location", pa.string()),
        (f"{_ST}.weather", pa.string()),
    ]),
}
COMPONENTS = tuple(SCHEMAS)
# Components every segment must have (stats is optional: it feeds the text).
REQUIRED = ("camera_image", "camera_box", "camera_calibration", "vehicle_pose")
# The TOP LiDAR's components, all or none per segment: a segment without them (Waymo's PVPS
# segments) or a frame without a TOP return is camera-only (the 3D tasks are not trained on it).
LIDAR = ("lidar", "lidar_box", "lidar_calibration", "lidar_segmentation")
# Panoptic labels: a segment without them, or a frame without a row, serves the other tasks.
PANOPTIC = ("camera_segmentation",)
# Columns that may hold nulls: beam inclinations are given as values or as min/max, and the
# reader does not need the others. Every other column must hold a value in every row.
NULLABLE: dict[str, frozenset[str]] = {
    "lidar_calibration": frozenset(f"{_LC}.beam_inclination.{k}" for k in ("min", "max", "values")),
    "camera_segmentation": frozenset({f"{_CS}.sequence_id"}),
    "lidar_box": frozenset({f"{_LB}.num_top_lidar_points_in_box"}),
    "stats": frozenset(f"{_ST}.{k}" for k in ("time_of_day", "location", "weather")),
}
