"""Corrupt input files: data, weights, replayed traces and oracle windows.

Each case goes through ``cosim run`` and must end as ONE line naming the file, exit 2, and no run
folder (neither OUT nor OUT.partial). A Hypothesis fuzz corrupts generated files (byte flips,
truncation, wrong column types) and checks the property on the validation functions themselves:
an InputError naming the file, or data that a run then reads without any other error.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cosim.cli import app
from cosim.errors import InputError
from cosim.learning.data import waymo_schema as W
from cosim.learning.data.synth import SynthConfig, generate, segment_name
from cosim.trace_schemas import MOBILITY_SCHEMA, WINDOW_SCHEMA

GRID = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
CFG = SynthConfig(segments=2, frames=2, seed=3, camera_size=(64, 48), lidar_size=(16, 128))
SEGMENT = segment_name(3, 0)
# one client and one held-out segment: the run uses both segments of the small data set
SMALL = ("duration_s=10", "clients.count=1", "learning.data.clients=1",
         "learning.data.heldout_segments=1")
CI, VP = "[CameraImageComponent]", "[VehiclePoseComponent].world_from_vehicle.transform"
LIDAR_SHAPE = "[LiDARComponent].range_image_return1.shape"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("waymo")
    generate(root, CFG, workers=1)
    return root


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory) -> dict[str, torch.Tensor]:
    from cosim.learning.openclip import open_clip_module, quiet_random_init

    with quiet_random_init():
        return open_clip_module().create_model("cosim-tiny", device="cpu").state_dict()


def _refused(tmp_path: Path, *settings_: str) -> str:
    """``cosim run`` with these --set items: exit 2, one line, no run folder; the line."""
    out = tmp_path / "run"
    args = ["run", str(GRID), "--out", str(out), "--quiet"]
    for item in settings_:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not out.with_name("run.partial").exists()
    return lines[0]


def _rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def _replace(table: pa.Table, column: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(column), column, values)


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# --- data: what `cosim data check` refuses, a run refuses too, before its folder exists ----------

def _jpeg_cut(t: pa.Table) -> pa.Table:
    return _replace(t, f"{CI}.image", pa.array([b[: len(b) // 2] for b in t.column(f"{CI}.image")
                                                .to_pylist()], pa.binary()))


def _nan_pose(t: pa.Table) -> pa.Table:
    poses = t.column(VP).to_pylist()
    poses[-1][3] = math.nan
    return _replace(t, VP, pa.array(poses, pa.list_(pa.float64(), 16)))


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (a decompression bomb's first bytes)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


LIDAR_LABELS = "[LiDARSegmentationLabelComponent].range_image_return1.values"
DIVISOR = "[CameraSegmentationLabelComponent].panoptic_label_divisor"


def _lidar_class(t: pa.Table, value: int) -> pa.Table:
    """Every labelled LiDAR pixel's class set to ``value`` (instance, class pairs)."""
    rows = []
    for row in t.column(LIDAR_LABELS).to_pylist():
        pairs = np.array(row).reshape(-1, 2)
        pairs[:, 1] = np.where(pairs[:, 1] > 0, value, pairs[:, 1])
        rows.append(pairs.reshape(-1).tolist())
    return _replace(t, LIDAR_LABELS, pa.array(rows, t.schema.field(LIDAR_LABELS).type))


RANGES = "[LiDARComponent].range_image_return1.values"


def _negated(column: str):
    return lambda t: _replace(t, column, pc.multiply(t.column(column), -1.0))


def _first_range(t: pa.Table, value: float, channel: int = 0) -> pa.Table:
    """The first return's ``channel`` (0: range, 1: intensity, 2: elongation, 3: no-label zone)
    of every pixel set to ``value`` (4 channels a pixel)."""
    rows = []
    for row in t.column(RANGES).to_pylist():
        pixels = np.array(row).reshape(-1, 4)
        pixels[:, channel] = value
        rows.append(pixels.reshape(-1).tolist())
    return _replace(t, RANGES, pa.array(rows, t.schema.field(RANGES).type))


LC = "[LiDARCalibrationComponent]"


def _transform_entry(column: str, index: int, value: float):
    """Entry ``index`` of every row's row-major 4 x 4 transform in ``column`` set to ``value``."""
    def change(t: pa.Table) -> pa.Table:
        rows = t.column(column).to_pylist()
        for row in rows:
            row[index] = value
        return _replace(t, column, pa.array(rows, t.schema.field(column).type))
    return change


def _inclinations(value: float):
    def change(t: pa.Table) -> pa.Table:
        column = f"{LC}.beam_inclination.values"
        rows = [[value] * len(r) for r in t.column(column).to_pylist()]
        return _replace(t, column, pa.array(rows, t.schema.field(column).type))
    return change


DATA_CASES = {  # name: (component, change, what the line says)
    # finite but absurd: NaN metrics or a math domain error mid-run, not an input error
    "lidar_box_negative_size": ("lidar_box", _negated("[LiDARBoxComponent].box.size.x"),
                                "a box size of -"),
    "lidar_box_far_away": ("lidar_box", lambda t: _replace(
        t, "[LiDARBoxComponent].box.center.x",
        pa.array([1e300] * t.num_rows, t.schema.field("[LiDARBoxComponent].box.center.x").type)),
        "a box centre more than"),
    "lidar_box_negative_point_count": ("lidar_box", lambda t: _replace(
        t, "[LiDARBoxComponent].num_lidar_points_in_box",
        pa.array([-5] * t.num_rows, pa.int64())), "-5 LiDAR points in it"),
    "camera_box_negative_width": ("camera_box", _negated("[CameraBoxComponent].box.size.x"),
                                  "without a positive width"),
    "range_far_below_no_return": ("lidar", lambda t: _first_range(t, -1e30), "a range of -1e+30"),
    # float32's largest finite values: the model's inputs overflow and training diverges
    "intensity_near_float32_max": ("lidar", lambda t: _first_range(t, 3e38, 1), "an intensity of"),
    "elongation_near_float32_max": ("lidar", lambda t: _first_range(t, 3e38, 2), "an elongation of"),
    "no_label_zone_flag_huge": ("lidar", lambda t: _first_range(t, -3e38, 3), "a no-label-zone flag"),
    # a transform or an angle that sends every LiDAR point to infinity (overflow warnings)
    "extrinsic_translation_1e307": ("lidar_calibration", _transform_entry(
        f"{LC}.extrinsic.transform", 3, 1e307), f"{LC}.extrinsic.transform"),
    "extrinsic_scaled_rotation": ("lidar_calibration", _transform_entry(
        f"{LC}.extrinsic.transform", 0, 1e15), "not a rotation"),
    "beam_inclinations_1e15": ("lidar_calibration", _inclinations(1e15), "beam inclination"),
    "pose_translation_1e307": ("vehicle_pose", _transform_entry(VP, 3, 1e307), VP),
    "pose_last_row_not_rigid": ("vehicle_pose", _transform_entry(VP, 15, 0.0), "last row"),
    # a class past the task's list would index past its heads and metric mid-run
    "lidar_class_past_seg3d": ("lidar_segmentation", lambda t: _lidar_class(t, 999),
                               LIDAR_LABELS.removesuffix(".values")),
    "lidar_class_negative": ("lidar_segmentation", lambda t: _lidar_class(t, -3),
                             LIDAR_LABELS.removesuffix(".values")),
    # a divisor of 1 leaves instance ids in the class: far past the camera classes
    "panoptic_class_past_pan2d": ("camera_segmentation", lambda t: _replace(
        t, DIVISOR, pa.array([1] * t.num_rows, t.schema.field(DIVISOR).type)),
        "[CameraSegmentationLabelComponent].panoptic_label"),
    # between PIL's warning and error thresholds: a warning line once, now one input error
    "image_bomb_warning_size": ("camera_image", lambda t: _replace(
        t, f"{CI}.image", pa.array([_png_declaring(10000, 10000)] * t.num_rows, pa.binary())),
        f"{CI}.image"),
    "lidar_shape_overflowing_int64": ("lidar", lambda t: _replace(
        t, LIDAR_SHAPE, pa.array([[2**31 - 1, 2**31 - 1, 2**2]] * t.num_rows,
                                 pa.list_(pa.int32(), 3))), LIDAR_SHAPE),
    "undecodable_jpeg": ("camera_image", _jpeg_cut, f"{CI}.image"),
    "image_as_int": ("camera_image", lambda t: _replace(
        t, f"{CI}.image", pa.array(range(t.num_rows), pa.int64())), f"{CI}.image"),
    "pose_as_string": ("vehicle_pose", lambda t: _replace(
        t, VP, pa.array([str(p) for p in t.column(VP).to_pylist()])), VP),
    "wrong_lidar_shape": ("lidar", lambda t: _replace(
        t, LIDAR_SHAPE, pa.array([[16, 100, 4]] * t.num_rows, pa.list_(pa.int32(), 3))), LIDAR_SHAPE),
    "empty_camera_table": ("camera_image", lambda t: t.slice(0, 0), W.FRAME),
    "nan_pose": ("vehicle_pose", _nan_pose, VP),
    "lidar_box_segment_mismatch": ("lidar_box", lambda t: _replace(
        t, W.SEGMENT, pa.array(["another_segment"] * t.num_rows)), W.SEGMENT),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_corrupt_data_is_refused_before_the_run_folder(data_root, tmp_path, case):
    component, change, column = DATA_CASES[case]
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    target = root / component / f"{SEGMENT}.parquet"
    _rewrite(target, change)
    line = _refused(tmp_path, f"learning.data.root={root}", *SMALL)
    assert str(target) in line and column in line, line
    # `cosim data check` says the same line
    check = CliRunner().invoke(app, ["data", "check", str(root)])
    assert check.exit_code == 2 and check.stderr.strip() == line, check.output


SPECIAL_FILES = {
    "dev_zero": lambda p: p.symlink_to("/dev/zero"),
    "fifo": lambda p: os.mkfifo(p),
    "folder": lambda p: p.mkdir(),
    "dangling_link": lambda p: p.symlink_to(p.with_name("nowhere.parquet")),
}


@pytest.mark.parametrize("component", ["lidar", "camera_segmentation", "camera_image", "vehicle_pose"])
@pytest.mark.parametrize("kind", sorted(SPECIAL_FILES))
def test_a_component_that_is_not_a_regular_file_is_refused(data_root, tmp_path, component, kind):
    """Optional components too: taken for absent, a segment's LiDAR or panoptic labels would
    drop without a word."""
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    target = root / component / f"{SEGMENT}.parquet"
    target.unlink(missing_ok=True)
    SPECIAL_FILES[kind](target)
    check = CliRunner().invoke(app, ["data", "check", str(root)])
    assert check.exit_code == 2, check.output
    line = check.stderr.strip()
    assert "\n" not in line and str(target) in line and "not a regular file" in line, line
    assert _refused(tmp_path, f"learning.data.root={root}", *SMALL) == line


@pytest.mark.slow
def test_clean_data_runs_and_its_check_is_remembered(data_root, tmp_path, monkeypatch):
    """The checks refuse nothing a run can read: the same data set runs to completion."""
    from cosim.learning.data import validate

    result = CliRunner().invoke(app, ["run", str(GRID), "--out", str(tmp_path / "ok"), "--quiet",
                                      *[x for s in (f"learning.data.root={data_root}", *SMALL)
                                        for x in ("--set", s)]])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ok" / "run.json").is_file()
    checked: list[str] = []
    monkeypatch.setattr(validate, "check_segment", lambda reader: checked.append(reader.name))
    from cosim.scenario_loader import load_scenario

    sc = load_scenario(GRID, [f"learning.data.root={data_root}", *SMALL])
    validate.check_run_data(sc.learning.data, sc.seed)
    assert checked == []  # both segments passed in the run: not decoded again


# --- weights: the backbone checkpoint and learning.init_modules ---------------------------------

def test_garbage_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "weights.pt"
    ckpt.write_text("".join(f"line {i}: not a checkpoint\n" for i in range(9)))
    line = _refused(tmp_path, f"learning.model.checkpoint={ckpt}", "duration_s=10")
    assert str(ckpt) in line and "learning.model.checkpoint" in line


NUMBER_KINDS = {"complex": torch.complex64, "bool": torch.bool, "integer": torch.int64}


@pytest.mark.parametrize("problem", ["nan", "wrong_shape", "missing_key", *NUMBER_KINDS])
def test_checkpoint_with_bad_tensors_is_refused(clip_weights, tmp_path, problem):
    """A tensor of another kind of number would be copied into the model's floats silently:
    its imaginary part dropped, or every weight 0 or 1."""
    state = dict(clip_weights)
    if problem == "nan":
        state["visual.proj"] = torch.full_like(state["visual.proj"], math.nan)
    elif problem in NUMBER_KINDS:
        state["visual.proj"] = state["visual.proj"].to(NUMBER_KINDS[problem])
    elif problem == "wrong_shape":
        state["visual.conv1.weight"] = torch.zeros(3, 3)
    else:
        del state["ln_final.weight"]
    ckpt = tmp_path / "weights.pt"
    torch.save(state, ckpt)
    line = _refused(tmp_path, f"learning.model.checkpoint={ckpt}", "duration_s=10")
    assert str(ckpt) in line and "learning.model.checkpoint" in line
    expected = {"nan": "visual.proj", "wrong_shape": "visual.conv1.weight", "missing_key": "ln_final.weight",
                **{k: f"visual.proj holds {v}" for k, v in NUMBER_KINDS.items()}}
    assert expected[problem] in line, line


def test_a_good_checkpoint_passes_the_check(clip_weights, tmp_path):
    from cosim.learning.backbone import check_checkpoint

    torch.save(clip_weights, tmp_path / "weights.pt")
    check_checkpoint("cosim-tiny", tmp_path / "weights.pt")


class _Payload:
    """Unpickling this would create ``marker``: a stand-in for code hidden in a weights file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("field", ["learning.model.checkpoint", "learning.init_modules"])
def test_code_in_a_weights_file_is_never_run(tmp_path, field):
    marker = tmp_path / "ran"
    weights = tmp_path / "weights.pt"
    torch.save({"visual.proj": torch.zeros(2), "payload": _Payload(marker)}, weights)
    line = _refused(tmp_path, f"{field}={weights}", "duration_s=10")
    assert str(weights) in line and field in line and not marker.exists()


@pytest.mark.parametrize("field", ["learning.model.checkpoint", "learning.init_modules"])
def test_a_weights_file_that_would_inflate_to_gigabytes_is_refused_unread(tmp_path, field):
    """A torch archive whose member is deflated zeros: its directory declares 200 MB from a file
    of a few hundred kB; refused from the declared sizes, before torch inflates anything."""
    import zipfile

    weights = tmp_path / "bomb.pt"
    torch.save({"visual.proj": torch.zeros(2)}, weights)
    with zipfile.ZipFile(weights, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/data/99", bytes(200 * 2**20))
    assert weights.stat().st_size < 2**20
    line = _refused(tmp_path, f"{field}={weights}", "duration_s=10")
    assert field in line and "would inflate to" in line


@pytest.mark.parametrize("field", ["learning.model.checkpoint", "learning.init_modules"])
@pytest.mark.parametrize("elements", [2**32, 2**40])
def test_a_tensor_larger_than_the_data_its_file_stores_is_refused(tmp_path, field, elements):
    """An expanded (stride-0) tensor: a 1.5 kB file claiming gigabytes or terabytes, refused
    from its storage's size before any check reads its values."""
    weights = tmp_path / "tiny.pt"
    torch.save({"visual.proj": torch.zeros(1).expand(elements)}, weights)
    assert weights.stat().st_size < 4096
    line = _refused(tmp_path, f"{field}={weights}", "duration_s=10")
    assert field in line and "more than the 4 bytes its file stores" in line, line


@pytest.mark.parametrize("field", ["learning.model.checkpoint", "learning.init_modules"])
def test_a_weights_file_of_a_dtype_without_arithmetic_is_one_line(tmp_path, field):
    weights = tmp_path / "f8.pt"
    torch.save({"visual.proj": torch.zeros(4, dtype=torch.float8_e4m3fn)}, weights)
    line = _refused(tmp_path, f"{field}={weights}", "duration_s=10")
    assert field in line and "float8_e4m3fn, which cosim cannot check" in line, line


@pytest.mark.parametrize("field", ["learning.model.checkpoint", "learning.init_modules"])
def test_a_sparse_tensor_in_a_weights_file_is_one_line(tmp_path, field):
    """A sparse tensor reads (with torch's warning about unchecked invariants) but is no dense
    weight: one line, no warnings around it."""
    weights = tmp_path / "sparse.pt"
    torch.save({"visual.proj": torch.sparse_coo_tensor([[0], [0]], [1.0], (2, 2))}, weights)
    line = _refused(tmp_path, f"{field}={weights}", "duration_s=10")
    assert field in line and "sparse_coo tensor, not the dense weights" in line, line


def test_init_modules_beyond_float32s_range_are_refused(tmp_path):
    modules = tmp_path / "global_modules.pt"
    torch.save({"task_adapter.up.bias": torch.full((4,), 1e300, dtype=torch.float64)}, modules)
    line = _refused(tmp_path, f"learning.init_modules={modules}", "duration_s=10")
    assert "learning.init_modules" in line and "beyond float32's range" in line, line


@pytest.mark.parametrize("problem", ["truncated", "nan"])
def test_corrupt_init_modules_are_refused(tmp_path, problem):
    modules = tmp_path / "global_modules.pt"
    weights = torch.randn(4, 4)
    if problem == "nan":
        weights[1, 2] = math.nan
    torch.save({"heads.det2d.0.weight": weights, "task_adapter.up.bias": torch.zeros(4)}, modules)
    if problem == "truncated":
        _truncated(modules)
    line = _refused(tmp_path, f"learning.init_modules={modules}", "duration_s=10")
    assert str(modules) in line and "learning.init_modules" in line


@pytest.mark.parametrize("problem", ["wrong_shape", "integer_weights", "none_of_the_models"])
def test_init_modules_that_do_not_fit_the_model_are_refused_before_the_folder(tmp_path, problem):
    from cosim.learning.deployed import meta_model
    from cosim.scenario_loader import load_scenario

    grid = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    model = meta_model(load_scenario(grid, ["learning.enabled=true"]).learning.model)
    shapes = {k: tuple(v.shape) for k, v in model.export_modules(model.module_names()).items()}
    name = sorted(shapes)[0]
    modules = tmp_path / "global_modules.pt"
    if problem == "wrong_shape":
        saved = {name: torch.zeros(*[n + 1 for n in shapes[name]])}
        says = "has shape"
    elif problem == "integer_weights":
        saved = {name: torch.ones(*shapes[name], dtype=torch.int64)}
        says = "holds torch.int64 values"
    else:
        saved = {"some.other.model": torch.zeros(3)}
        says = "none of this model's modules"
    torch.save(saved, modules)
    line = _refused(tmp_path, f"learning.init_modules={modules}", "duration_s=10")
    assert "learning.init_modules" in line and says in line


# --- tables: a replayed mobility trace and the oracle's link windows ----------------------------

def _trace(path: Path, end_s: float = 20.0) -> Path:
    t = np.repeat(np.arange(0.0, end_s + 1), 2)
    n = len(t)
    table = pa.table({"t": t, "vehicle": ["v0", "v1"] * (n // 2), "x": np.linspace(0, 600, n),
                      "y": np.full(n, 300.0), "lon": np.zeros(n), "lat": np.zeros(n),
                      "speed": np.full(n, 10.0), "heading": np.full(n, 90.0),
                      "edge": ["e"] * n, "parked": np.zeros(n, bool), "type": ["car"] * n},
                     schema=MOBILITY_SCHEMA)
    pq.write_table(table, path)
    return path


def _windows(path: Path) -> Path:
    table = pa.table({"vehicle": ["v0", "v0", "v1"], "cell": [-1, 0, -1], "start": [0.0, 0.0, 5.0],
                      "end": [30.0, 30.0, 12.0], "duration_s": [30.0, 30.0, 7.0],
                      "mean_rate_bps": [1e6] * 3, "min_rate_bps": [1e5] * 3,
                      "censored": [True, True, False]}, schema=WINDOW_SCHEMA)
    pq.write_table(table, path)
    return path


def test_good_trace_and_windows_pass_their_readers(tmp_path):
    from cosim.mobility.replay import ReplaySession
    from cosim.radio.prediction import OraclePredictor

    assert ReplaySession(_trace(tmp_path / "m.parquet"), 1.0).end_s == 20.0
    assert OraclePredictor(_windows(tmp_path / "w.parquet")).remaining_s("v0", 10.0) == 20.0


def test_a_verified_trace_covers_its_run_after_its_last_vehicle_left(tmp_path):
    """A run's own trace (its SHA-256 in the run.json beside it) covers that run's duration even
    when its vehicles all left earlier; a trace without that word ends with its last row."""
    from cosim.bounded_read import file_sha256
    from cosim.mobility.replay import ReplaySession

    trace = _trace(tmp_path / "mobility.parquet", end_s=20.0)
    info = {"status": "complete", "scenario": {"duration_s": 30.0, "output": {"mobility_period_s": 1.0}},
            "trace_sha256": {"mobility": file_sha256(trace)}}
    (tmp_path / "run.json").write_text(json.dumps(info))
    session = ReplaySession(trace, 1.0)
    assert session.covers_s == 30.0
    session.warm_up(25)
    assert len(session.read().ids) == 0  # no vehicle left in the network
    info["trace_sha256"]["mobility"] = "0" * 64
    (tmp_path / "run.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="changed since its run wrote it"):
        ReplaySession(trace, 1.0)
    (tmp_path / "run.json").unlink()
    assert ReplaySession(trace, 1.0).covers_s == 20.0


TABLE_CASES = {
    "truncated": _truncated,
    "nan": lambda p: _rewrite(p, lambda t: _replace(
        t, t.column_names[2], pa.array([math.nan] + t.column(2).to_pylist()[1:], pa.float64()))),
    "wrong_type": lambda p: _rewrite(p, lambda t: _replace(  # numbers stored as text
        t, t.column_names[2], pa.array([str(v) for v in t.column(2).to_pylist()]))),
    "missing_column": lambda p: _rewrite(p, lambda t: t.drop_columns([t.column_names[3]])),
}


@pytest.mark.parametrize("case", sorted(TABLE_CASES))
def test_corrupt_replay_trace_is_refused(tmp_path, case):
    trace = _trace(tmp_path / "mobility.parquet")
    TABLE_CASES[case](trace)
    line = _refused(tmp_path, f"mobility.replay={trace}", "learning=null", "duration_s=10")
    assert str(trace) in line and "mobility.replay" in line


@pytest.mark.parametrize("case", sorted(TABLE_CASES))
def test_corrupt_oracle_windows_are_refused(tmp_path, case):
    windows = _windows(tmp_path / "link_windows.parquet")
    TABLE_CASES[case](windows)
    line = _refused(tmp_path, "scheduling.policy=oracle", f"scheduling.oracle_windows={windows}",
                    "duration_s=10")
    assert str(windows) in line and "scheduling.oracle_windows" in line


# --- report: a run's or a compare's files, checked before report/ is made -----------------------

def _report_refused(folder: Path) -> str:
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert not (folder / "report").exists()
    return lines[0]


def _complete_run(folder: Path) -> Path:
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(
        {"status": "complete", "scenario": {"name": "grid_small"}, "seed": 1}))
    return folder


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _sparse(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with path.open("wb") as f:
            f.truncate(size)  # no disk used
    return make


BAD_TABLES = {
    "garbage": (lambda p: p.write_bytes(b"garbage\n"), "not a readable Parquet file"),
    "sparse_giant": (_sparse(30 * 2**30), "not a readable Parquet file"),
    "fifo": (_fifo, "not a regular file"),
    "dev_zero": (lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
    "folder": (lambda p: p.mkdir(), "not a regular file"),
    "dangling_link": (lambda p: p.symlink_to(p.with_name("nowhere")), "cannot read it"),
}


@pytest.mark.parametrize("name", ["mobility", "radio", "handoffs", "metrics"])
@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_report_refuses_an_unreadable_trace_before_writing(tmp_path, name, case):
    run = _complete_run(tmp_path / "run")
    make, says = BAD_TABLES[case]
    make(run / f"{name}.parquet")
    line = _report_refused(run)
    assert f"{name}.parquet" in line and says in line, line


def _unsealed(run: Path, how: str) -> None:
    info = json.loads((run / "run.json").read_text())
    if how == "digests removed":
        del info["trace_sha256"]
    elif how == "digests emptied":
        info["trace_sha256"] = {}
    elif how == "traces deleted, digests emptied":
        (run / "mobility.parquet").unlink()
        info["trace_sha256"] = {}
    elif how == "a written table unlisted":
        info["traces"]["radio"] = "radio.parquet"
    elif how == "a trace edited":
        _shift_trace(run / "mobility.parquet")
    else:  # a trace the run never wrote, put beside its own
        _windows(run / "link_windows.parquet")
    (run / "run.json").write_text(json.dumps(info))


def _shift_trace(path: Path) -> None:
    _rewrite(path, lambda t: _replace(t, "x", pa.array([v + 2.0 for v in t.column("x").to_pylist()])))


@pytest.mark.parametrize("command", ["report", "export"])
@pytest.mark.parametrize("how", ["digests removed", "digests emptied", "a trace edited",
                                 "a trace added", "traces deleted, digests emptied",
                                 "a written table unlisted"])
def test_report_and_export_read_only_traces_their_run_sealed(tmp_path, command, how):
    """A complete run's traces are its results only while run.json holds their SHA-256: without
    the digests, or with a trace changed or added, report and export refuse before writing."""
    from cosim.bounded_read import file_sha256

    run = tmp_path / "run"
    run.mkdir()
    trace = _trace(run / "mobility.parquet")
    (run / "run.json").write_text(json.dumps(
        {"status": "complete", "scenario": {"name": "grid_small"}, "seed": 1,
         "traces": {"mobility": "mobility.parquet"},
         "trace_sha256": {"mobility": file_sha256(trace)}}))
    _unsealed(run, how)
    before = sorted(p.name for p in run.iterdir())
    result = CliRunner().invoke(app, [command, str(run)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "trace_sha256" in lines[0], result.output
    assert sorted(p.name for p in run.iterdir()) == before


BAD_COMPARE_JSON = {
    "garbage": (lambda p: p.write_text("{{{"), "not valid JSON"),
    "a_list": (lambda p: p.write_text("[1]"), "not the object cosim writes"),
    "huge": (_sparse(100 * 2**20), "too big"),
    "fifo": (_fifo, "not a regular file"),
    "no_policies": (lambda p: p.write_text('{"aggregations": ["sync"], "seeds": [0]}'), "policies"),
    "no_seeds": (lambda p: p.write_text('{"policies": ["random"], "aggregations": ["sync"]}'),
                 "seeds"),
    "seeds_as_text": (lambda p: p.write_text(
        '{"policies": ["random"], "aggregations": ["sync"], "seeds": ["0"]}'), "integer seeds"),
    "seed_true": (lambda p: p.write_text(
        '{"policies": ["random"], "aggregations": ["sync"], "seeds": [true]}'), "integer seeds"),
}


@pytest.mark.parametrize("case", sorted(BAD_COMPARE_JSON))
def test_report_refuses_a_damaged_compare_json_before_writing(tmp_path, case):
    folder = tmp_path / "cmp"
    folder.mkdir()
    make, says = BAD_COMPARE_JSON[case]
    make(folder / "compare.json")
    line = _report_refused(folder)
    assert "compare.json" in line and says in line, line


# --- fuzz: corrupt files are refused with one line, or read cleanly ----------------------------

FUZZ_EXAMPLES = int(os.environ.get("COSIM_FUZZ_EXAMPLES", "50"))
FUZZ_RANDOM = "COSIM_FUZZ_EXAMPLES" in os.environ  # a longer fuzz explores; the default repeats
KINDS = ("component", "jpeg", "dtype", "module_file", "checkpoint", "trace", "windows")
CASTS = (pa.string(), pa.int64(), pa.float64(), pa.binary(), pa.list_(pa.float64()))


def _mutate(data: bytes, draw, label: str) -> bytes:
    """Byte flips and/or a truncation."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 6), label=f"{label} flips")):
        pos = draw(st.integers(0, len(out) - 1), label=f"{label} at")
        out[pos] ^= draw(st.integers(1, 255), label=f"{label} xor")
    if draw(st.booleans(), label=f"{label} truncate"):
        out = out[: draw(st.integers(0, len(out)), label=f"{label} keep")]
    return bytes(out)


def _cast(column: pa.ChunkedArray, to: pa.DataType) -> pa.Array:
    """A column rewritten with another type (values turned into that type's kind)."""
    values = column.to_pylist()
    if pa.types.is_string(to):
        return pa.array([str(v) for v in values], to)
    if pa.types.is_binary(to):
        return pa.array([str(v).encode() for v in values], to)
    if pa.types.is_list(to):
        return pa.array([[float(len(str(v)))] for v in values], to)
    number = [len(v) if isinstance(v, bytes | str | list) else float(v or 0) for v in values]
    return pa.array([int(x) for x in number] if pa.types.is_integer(to) else number, to)


def _assert_one_line(exc: InputError, folder: Path) -> None:
    line = exc.line()
    assert "\n" not in line and line.startswith("error: ") and str(folder) in line, line


def _fuzz_data(root: Path, kind: str, draw) -> None:
    from cosim.learning.data.samples import build_sample
    from cosim.learning.data.validate import check_dataset
    from cosim.learning.data.waymo_v2 import WaymoV2Dataset
    from cosim.learning.grid import Geometry

    component = draw(st.sampled_from(W.COMPONENTS if kind != "jpeg" else ("camera_image",)),
                     label="component")
    path = root / component / f"{SEGMENT}.parquet"
    if kind == "component":
        path.write_bytes(_mutate(path.read_bytes(), draw, "file"))
    elif kind == "jpeg":
        _rewrite(path, lambda t: _replace(t, f"{CI}.image", pa.array(
            [_mutate(b, draw, "jpeg") for b in t.column(f"{CI}.image").to_pylist()], pa.binary())))
    else:
        table = pq.read_table(path)
        column = draw(st.sampled_from(table.column_names), label="column")
        to = draw(st.sampled_from(CASTS), label="cast to")
        pq.write_table(_replace(table, column, _cast(table.column(column), to)), path)
    try:
        check_dataset(root)
    except InputError as exc:
        _assert_one_line(exc, root)
        event(f"{kind}: refused")
        return
    event(f"{kind}: read cleanly")
    # passed: what a run builds from the data works
    reader = WaymoV2Dataset(root).segment(SEGMENT)
    for ts in reader.timestamps:
        build_sample(reader.frame(ts), Geometry(image_size=64, grid=32, bev_range_m=40.0))


def _fuzz_file(folder: Path, kind: str, draw, clip_weights) -> None:
    from cosim.learning.backbone import check_checkpoint, load_clip
    from cosim.learning.module_file import load_module_file
    from cosim.mobility.replay import ReplaySession
    from cosim.radio.prediction import OraclePredictor

    if kind == "module_file":
        path = folder / "modules.pt"
        torch.save({"heads.det2d.0.weight": torch.randn(8, 8), "task_adapter.up.bias": torch.zeros(8)},
                   path)
    elif kind == "checkpoint":
        path = folder / "weights.pt"
        # a few tensors of the real model: the file stays small, and missing keys are refused too
        keep = draw(st.sampled_from([None, 3]), label="all tensors")
        torch.save(clip_weights if keep is None else dict(list(clip_weights.items())[:keep]), path)
    elif kind == "trace":
        path = _trace(folder / "mobility.parquet")
    else:
        path = _windows(folder / "link_windows.parquet")
    path.write_bytes(_mutate(path.read_bytes(), draw, kind))
    try:
        if kind == "module_file":
            loaded = load_module_file(path)
            assert all(torch.isfinite(v).all() for v in loaded.values() if v.is_floating_point())
        elif kind == "checkpoint":
            check_checkpoint("cosim-tiny", path)
            load_clip("cosim-tiny", path)  # passed: open_clip loads it
        elif kind == "trace":
            ReplaySession(path, 1.0).read()
        else:
            OraclePredictor(path).remaining_s("v0", 1.0)
    except InputError as exc:
        _assert_one_line(exc, folder)
        event(f"{kind}: refused")
        return
    event(f"{kind}: read cleanly")


@pytest.mark.slow
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=not FUZZ_RANDOM,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_fuzz_corrupt_files_are_one_line_or_read_cleanly(data_root, clip_weights, kind, data):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if kind in ("component", "jpeg", "dtype"):
            root = folder / "data"
            shutil.copytree(data_root, root)
            _fuzz_data(root, kind, data.draw)
        else:
            _fuzz_file(folder, kind, data.draw, clip_weights)


def test_fuzz_finds_through_the_command_line_what_it_finds_in_process(data_root, tmp_path):
    """One fuzz-style corruption through ``cosim run``: the in-process InputError is the line."""
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    target = root / "lidar" / f"{SEGMENT}.parquet"
    data = bytearray(target.read_bytes())
    for pos in range(len(data) // 3, len(data) // 3 + 64):
        data[pos] ^= 0x5A
    target.write_bytes(bytes(data))
    from cosim.learning.data.validate import check_dataset

    with pytest.raises(InputError) as caught:
        check_dataset(root)
    assert _refused(tmp_path, f"learning.data.root={root}", *SMALL) == caught.value.line()


def test_a_frame_too_small_to_see_anything_is_no_scene(data_root):
    import dataclasses

    from cosim.learning.data.waymo_v2 import WaymoV2Dataset, frame_problem

    reader = WaymoV2Dataset(data_root).segment(SEGMENT)
    frame = reader.frame(reader.timestamps[0])
    assert frame_problem(frame) is None
    tiny = dataclasses.replace(frame, image=frame.image[:1, :1])
    assert frame_problem(tiny) == ("camera_image", "a 1 x 1 image (at least 16 pixels a side)")


def _invalid_utf8_ids(path: Path) -> None:
    """The first vehicle id's bytes made invalid UTF-8 (\\xff), the column still typed string."""
    table = pq.read_table(path)
    ids = [v.encode() for v in table.column("vehicle").to_pylist()]
    ids[0] = ids[0][:1] + b"\xff" + ids[0][1:]
    offsets = np.cumsum([0, *map(len, ids)]).astype(np.int32)
    broken = pa.Array.from_buffers(pa.string(), len(ids),
                                   [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(ids))])
    i = table.schema.get_field_index("vehicle")
    pq.write_table(table.set_column(i, "vehicle", broken), path)


@pytest.mark.parametrize("table", ["trace", "windows"])
def test_text_that_is_not_utf8_is_one_line(tmp_path, table):
    """A string column Arrow stores without checking: read, it failed as an internal error."""
    if table == "trace":
        path = _trace(tmp_path / "mobility.parquet")
        sets = [f"mobility.replay={path}", "learning=null", "duration_s=10"]
        field = "mobility.replay"
    else:
        path = _windows(tmp_path / "link_windows.parquet")
        sets = ["scheduling.policy=oracle", f"scheduling.oracle_windows={path}", "duration_s=10"]
        field = "scheduling.oracle_windows"
    _invalid_utf8_ids(path)
    line = _refused(tmp_path, *sets)
    assert str(path) in line and field in line and "UTF" in line.upper(), line


@pytest.mark.parametrize("component", ["vehicle_pose", "camera_box", "camera_image", "lidar_box",
                                       "camera_calibration", "stats"])
def test_a_row_whose_key_repeats_is_refused(data_root, tmp_path, component):
    """Each Waymo v2 component names one row per key: a second row under the first row's key
    (a second pose, a box counted twice) would be read silently as one of them, or twice."""
    from cosim.learning.data.validate import check_dataset

    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    path = root / component / f"{SEGMENT}.parquet"
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), path)
    with pytest.raises(InputError) as caught:
        check_dataset(root)
    _assert_one_line(caught.value, root)
    assert "share one key" in caught.value.line() and component in caught.value.line()


def test_a_segment_file_without_its_camera_images_is_refused(data_root, tmp_path):
    """Segments are the camera_image files: another component's file for a segment that has none
    (a partial download) would be dropped without a word."""
    from cosim.learning.data.validate import check_dataset

    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    shutil.copy(root / "lidar" / f"{SEGMENT}.parquet", root / "lidar" / "orphan.parquet")
    with pytest.raises(InputError) as caught:
        check_dataset(root)
    _assert_one_line(caught.value, root)
    assert "orphan" in caught.value.line() and "camera_image" in caught.value.line()
