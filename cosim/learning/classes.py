"""Class lists of the four perception tasks (Waymo Open Dataset perception v2 conventions)."""

from __future__ import annotations

# 3D semantic segmentation: lidar_segmentation types, 0 = undefined (ignored by mIoU).
SEG3D = (
    "undefined", "car", "truck", "bus", "other vehicle", "motorcyclist", "bicyclist",
    "pedestrian", "sign", "traffic light", "pole", "construction cone", "bicycle", "motorcycle",
    "building", "vegetation", "tree trunk", "curb", "road", "lane marker", "other ground",
    "walkable", "sidewalk",
)
# 2D video panoptic segmentation: camera_segmentation classes (undefined pixels are ignored).
PAN2D = (
    "ego vehicle", "car", "truck", "bus", "other large vehicle", "bicycle", "motorcycle",
    "trailer", "pedestrian", "cyclist", "motorcyclist", "bird", "ground animal",
    "construction cone or pole", "pole", "pedestrian object", "sign", "traffic light",
    "building", "road", "lane marker", "road marker", "sidewalk", "vegetation", "sky", "ground",
    "dynamic", "static",
)
# 2D and 3D object detection: Waymo box types.
DETECTION = ("vehicle", "pedestrian", "cyclist", "sign")

CLASSES = {"seg3d": SEG3D, "det3d": DETECTION, "pan2d": PAN2D, "det2d": DETECTION}
# Regression channels of each head (see heads.py for their meaning).
REGRESSION = {"seg3d": 0, "det3d": 8, "pan2d": 3, "det2d": 4}
# The modalities each task's fused features come from (paper, section VI-A).
TASK_MODALITIES = {"seg3d": ("image", "lidar", "text"), "det3d": ("image", "lidar", "text"),
                   "pan2d": ("image", "text"), "det2d": ("image", "text")}
IGNORE_INDEX = 255
