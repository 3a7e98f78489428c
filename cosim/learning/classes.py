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
IGNORE_INDEX = 255
