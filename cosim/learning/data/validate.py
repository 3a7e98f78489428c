"""Checks of a Waymo v2 folder: ``cosim data check`` and every run that reads
``learning.data.root`` use the same per-segment check, so a file the check refuses is refused
before a run creates its folder (not half-way through it, as a failed run).

``check_segment`` reads every component through the reader (types, nulls, NaN: see
``cosim.input_checks``), checks that keys match the file name and camera_image's frames, and
decodes every frame as training does (images, label PNGs, range images, poses). A run checks the
segments its partition uses in full and the others as far as the partition reads them (keys and
labels); a segment that passed is remembered by its files' sizes and times, so later runs on the
same data do not decode it again.
"""

from __future__ import annotations

from pathlib import Path

from cosim.errors import InputError
from cosim.input_checks import check_values, read_table, remembered
from cosim.learning.data import waymo_schema as W
from cosim.learning.data.waymo_v2 import SegmentReader, WaymoV2Dataset
from cosim.scenario import DataConfig

# components whose frames must be camera_image's
_PER_FRAME = ("camera_segmentation", "lidar", "lidar_segmentation", "vehicle_pose")


def _components(reader: SegmentReader) -> list[str]:
    optional = [c for c in W.COMPONENTS if c not in W.REQUIRED and reader._path(c).is_file()]
    return [*W.REQUIRED, *optional]


def check_keys(reader: SegmentReader) -> None:
    """Every component's rows name this segment and camera_image's frames; labels and the
    LiDAR calibration read (what partitioning a dataset reads of every segment)."""
    for component in _components(reader):
        where = reader._checked(component)
        table = read_table(where, [W.SEGMENT], f"{component} Parquet file")
        check_values(where, table)
        other = sorted(set(table.column(W.SEGMENT).to_pylist()) - {reader.name})
        if other:
            raise InputError(where.path, W.SEGMENT, f"{other[0]!r} does not match the file name "
                             f"(segment {reader.name})")
    if not reader.timestamps:
        raise InputError(reader._path("camera_image"), W.FRAME, "no frames (0 rows)")
    expected = set(reader.timestamps)
    for component in _PER_FRAME:
        if set(reader._read_keys(component)) != expected:
            raise InputError(reader._path(component), W.FRAME, "frame timestamps differ from camera_image's")
    reader._labels  # noqa: B018 -- reads and checks the label components
    reader.lidar_calibration  # noqa: B018


def check_segment(reader: SegmentReader) -> int:
    """``check_keys`` and every frame decoded; returns the number of frames."""
    check_keys(reader)
    for ts in reader.timestamps:
        reader.frame(ts)
    return len(reader.timestamps)


def _segments(ds: WaymoV2Dataset) -> list[str]:
    names = ds.segments()
    if not names:
        raise InputError(ds.root / "camera_image", None, "no <segment>.parquet files")
    return names


def check_dataset(root: Path) -> tuple[int, int]:
    """Every segment in full (``cosim data check``); returns (segments, frames)."""
    ds = WaymoV2Dataset(root)
    names = _segments(ds)
    frames = sum(check_segment(ds.segment(name)) for name in names)
    return len(names), frames


def check_run_data(cfg: DataConfig, seed: int) -> None:
    """What a run reads of ``learning.data.root``, before the run starts: every segment's keys
    and labels, and the segments of its partition in full. The cached synthetic set (no root)
    is cosim's own output and v1 TFRecords have their own reader: neither is checked here."""
    if cfg.root is None or cfg.format != "v2":
        return
    from cosim.learning.data.partition import partition

    ds = WaymoV2Dataset(cfg.root)
    for name in _segments(ds):
        _remembered(ds, name, "keys", check_keys)
    frames, city = ds.describe()
    parts = partition(frames, city, cfg, seed)
    used = {s for shard in parts.clients for s, _ in shard.frames} | {s for s, _ in parts.heldout}
    for name in sorted(used):
        _remembered(ds, name, "segment", check_segment)


def _remembered(ds: WaymoV2Dataset, name: str, level: str, check) -> None:
    reader = ds.segment(name)
    files = [reader._path(c) for c in _components(reader)]
    remembered(f"waymo-{level}", files, lambda: check(reader))
