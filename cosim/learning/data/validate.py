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

from cosim.destinations import check_finished_output
from cosim.errors import InputError
from cosim.input_checks import check_values, read_table, remembered
from cosim.learning.data import waymo_schema as W
from cosim.learning.data.waymo_v1 import V1SegmentReader, WaymoV1Dataset
from cosim.learning.data.waymo_v2 import SegmentReader, WaymoV2Dataset
from cosim.scenario import DataConfig


def _components(reader: SegmentReader) -> list[str]:
    optional = [c for c in W.COMPONENTS if c not in W.REQUIRED and reader.present(c)]
    return [*W.REQUIRED, *optional]


def _check_frames(reader: SegmentReader) -> None:
    """Poses for exactly camera_image's frames; labels and LiDAR for some of them (a frame
    without a row is camera-only or unlabelled); LiDAR labels for exactly the LiDAR's frames."""
    expected = set(reader.timestamps)
    if set(reader._read_keys("vehicle_pose")) != expected:
        raise InputError(reader._path("vehicle_pose"), W.FRAME, "frame timestamps differ from camera_image's")
    for component in reader.per_frame_components()[1:]:
        extra = sorted(set(reader._read_keys(component)) - expected)
        if extra:
            raise InputError(reader._path(component), W.FRAME, f"frame {extra[0]} is not in camera_image")
    if reader.has_lidar and set(reader._read_keys("lidar_segmentation")) != set(reader._read_keys("lidar")):
        raise InputError(reader._path("lidar_segmentation"), W.FRAME,
                         "frame timestamps differ from lidar's")


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
    _check_frames(reader)
    reader._labels  # noqa: B018 -- reads and checks the label components
    if reader.has_lidar:
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


def check_v1_segment(reader: V1SegmentReader) -> int:
    """Every record's framing and checksums, its Frame proto, and every frame decoded as
    training decodes it; returns the number of frames."""
    for ts in reader.timestamps:
        reader.frame(ts)
    return len(reader.timestamps)


def check_v1_dataset(root: Path) -> tuple[int, int]:
    """Every segment of a v1 folder in full (``cosim data check``); (segments, frames)."""
    ds = WaymoV1Dataset(root)
    names = ds.segments()
    if not names:
        raise InputError(ds.root, None, "no <segment>.tfrecord files")
    return len(names), sum(check_v1_segment(ds.segment(name)) for name in names)


def check_any_dataset(root: Path) -> tuple[str, int, int]:
    """``cosim data check``: a v2 folder (component sub-folders) or a v1 one (TFRecords);
    (format, segments, frames)."""
    root = Path(root)
    check_finished_output(root, "data synth")
    if (root / "camera_image").is_dir() or not any(root.glob("*.tfrecord")):
        return ("v2", *check_dataset(root))
    return ("v1", *check_v1_dataset(root))


def check_run_data(cfg: DataConfig, seed: int) -> None:
    """What a run reads of ``learning.data.root``, before the run starts: every segment's keys
    and labels (v1: every record's framing, checksums and timestamp), and the segments of its
    partition in full. The cached synthetic set (no root) is cosim's own output: made now
    (once, cached) and only partitioned, so a split with too few segments or an empty client
    is refused before the run's folder too."""
    from cosim.learning.data.partition import partition

    if cfg.root is None:
        from cosim.learning.data.datasets import dataset_root

        synthetic = WaymoV2Dataset(dataset_root(cfg))
        partition(*synthetic.describe(), cfg, seed, synthetic.camera_only(),
                  synthetic.without_panoptic())
        return

    check_finished_output(cfg.root, "data synth")

    if cfg.format == "v1":
        ds1 = WaymoV1Dataset(cfg.root)
        if not ds1.segments():
            raise InputError(ds1.root, None, "no <segment>.tfrecord files")
        for name in ds1.segments():
            reader = ds1.segment(name)
            def index(r: V1SegmentReader = reader) -> object:
                return r.timestamps

            remembered("waymo-v1-records", [reader.path], index)
        frames, city = ds1.describe()
        parts = partition(frames, city, cfg, seed, ds1.camera_only(), ds1.without_panoptic())
        used = {s for shard in parts.clients for s, _ in shard.frames} | {s for s, _ in parts.heldout}
        for name in sorted(used):
            reader = ds1.segment(name)
            def check(r: V1SegmentReader = reader) -> object:
                return check_v1_segment(r)

            remembered("waymo-v1-segment", [reader.path], check)
        return
    ds = WaymoV2Dataset(cfg.root)
    for name in _segments(ds):
        _remembered(ds, name, "keys", check_keys)
    frames, city = ds.describe()
    parts = partition(frames, city, cfg, seed, ds.camera_only(), ds.without_panoptic())
    used = {s for shard in parts.clients for s, _ in shard.frames} | {s for s, _ in parts.heldout}
    for name in sorted(used):
        _remembered(ds, name, "segment", check_segment)


def _remembered(ds: WaymoV2Dataset, name: str, level: str, check) -> None:
    reader = ds.segment(name)
    files = [reader._path(c) for c in _components(reader)]
    remembered(f"waymo-{level}", files, lambda: check(reader))
