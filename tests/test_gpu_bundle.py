"""What travels to a GPU machine and what runs there: ``bench/gpu/bundle.py`` (wheels the GPU
image lacks, a recorded sf_downtown trace, a size limit), the image guard, and a dry run of
``bench/gpu/run.sh`` on this machine's CPU with a tiny configuration, the same steps as on the
GPU (the wheels' install aside: they are for CPython 3.12)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "bench" / "gpu" / "bundle.py"
sys.path.insert(0, str(BUNDLE.parent))
import bundle  # noqa: E402


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _fake_run(folder: Path, end_s: float) -> Path:
    """A complete run folder as a learning-off recording leaves it (the parts bundle.py reads)."""
    folder.mkdir()
    net = folder / "net.net.xml"
    net.write_text("<net/>\n")
    times = [float(t) for t in range(int(end_s) + 1)]
    pq.write_table(pa.table({"t": times, "vehicle": ["v0"] * len(times)}), folder / "mobility.parquet")
    (folder / "run.json").write_text(json.dumps({
        "status": "complete", "inputs": {"net": str(net)}, "versions": {"sumo": "test"},
        "scenario": {"seed": 42, "mobility": {"step_length_s": 1.0}}}))
    return folder


def test_a_bundle_over_its_size_limit_is_refused_in_one_line(tmp_path):
    run = _fake_run(tmp_path / "recorded", 5)
    done = subprocess.run([sys.executable, str(BUNDLE), str(tmp_path / "b"), "--no-wheels", "--trace-from",
                           str(run), "--duration-s", "5", "--limit-mib", "0.0001"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "over the 0.0001 MiB limit" in lines[0]
    ok = subprocess.run([sys.executable, str(BUNDLE), str(tmp_path / "b"), "--no-wheels", "--trace-from",
                         str(run), "--duration-s", "5"], cwd=REPO, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"bundle .*: [\d.]+ MiB \(\d+ bytes\), limit 60 MiB", ok.stdout)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["trace"]["rows"] == 6 and manifest["wheels"] == []
    short = subprocess.run([sys.executable, str(BUNDLE), str(tmp_path / "c"), "--no-wheels", "--trace-from",
                            str(run), "--duration-s", "60"], cwd=REPO, capture_output=True, text=True)
    assert short.returncode != 0 and "short of --duration-s 60" in short.stderr


def test_the_image_guard_refuses_what_the_image_lacks(tmp_path):
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("# the image\nnumpy\n")
    env = {**os.environ, "COSIM_GPU_IMAGE_GUARD": str(allowed), "COSIM_GPU_IMAGE_LOG": str(tmp_path / "log"),
           "PYTHONPATH": str(REPO / "bench" / "gpu" / "image_guard")}
    code = ("import json, numpy\n"
            "try:\n    import simpy\nexcept ModuleNotFoundError as e:\n    print('refused:', e)\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "refused: No module named 'simpy'" in done.stdout
    assert "not on the GPU machine's image" in done.stdout
    assert (tmp_path / "log").read_text().split() == ["numpy"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The bundle with its wheels (from PyPI) and 60 s of recorded mobility (SUMO)."""
    out = tmp_path_factory.mktemp("gpu") / "bundle"
    done = subprocess.run([sys.executable, str(BUNDLE), str(out), "--duration-s", "60"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"bundle .*: [\d.]+ MiB \(\d+ bytes\), limit 60 MiB", done.stdout)
    return out


@pytest.mark.slow
def test_the_bundle_holds_the_wheels_and_a_replayable_trace(built):
    manifest = json.loads((built / "manifest.json").read_text())
    wheels = sorted((built / "wheels").glob("*.whl"))
    assert {_norm(w.name.split("-")[0]) for w in wheels} == {_norm(n) for n in bundle.WHEELS}
    assert len(wheels) == len(bundle.WHEELS)  # one version each
    for wheel in wheels:
        python, abi, platform = wheel.stem.split("-")[-3:]
        assert python in ("py3", "py2.py3", "cp312") or python.startswith("cp3") and abi == "abi3", wheel.name
        assert platform == "any" or ("manylinux" in platform and platform.endswith("x86_64")), wheel.name
    trace = manifest["trace"]
    assert trace["duration_s"] == 60 and trace["end_s"] >= 60 and trace["rows"] > 0
    assert (built / "trace" / "sf_downtown.net.xml").stat().st_size > 0
    assert bundle.size_of(built) <= 60 * 2**20


@pytest.mark.slow
def test_run_sh_dry_run_on_the_cpu(built, tmp_path):
    """run.sh end to end with the CPU as the device, a tiny model and data, K = 1 and 2, a 60 s
    replay, imports limited to the GPU image's packages and the bundle's."""
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "WORK": str(tmp_path / "work"), "BUNDLE": str(built),
           "COSIM_GPU_SKIP_INSTALL": "1", "PYTHON": sys.executable, "DEVICE": "cpu",
           "MODEL": "cosim-tiny", "KS": "1,2", "PRECISIONS": "fp32", "REPS": "1", "DURATION_S": "60",
           "HOUR_PRECISION": "fp32", "PRETRAIN_STEPS": "2", "PRETRAIN_SEGMENTS": "2", "DATA_SEGMENTS": "6",
           "DATA_FRAMES": "4", "SETS": "learning.data.clients=4 learning.data.heldout_segments=2",
           "TEST_SELECT": "pinned or live_on"}
    env.pop("COSIM_CACHE_DIR", None)  # run.sh keeps its own under WORK
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu" / "run.sh")], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "image guard on" in log and "install skipped" in log
    for step in ("data", "pretrain", "clients", "hour", "tests"):
        assert f"{step} done in" in log
    results = json.loads((out / "results.json").read_text())
    assert results["cuda_tests_exit"] == 0 and results["env"]["cuda_available"] is not None
    clients = json.loads((out / "train_clients.json").read_text())
    assert clients["device"] == "cpu" and [r["k"] for r in clients["rows"]] == [1, 2]
    assert all(r["max_abs_diff_sequential_batched"] >= 0 for r in clients["rows"])
    hour = json.loads((out / "hour.json").read_text())
    assert hour["rounds"] >= 1 and hour["device"] == "cpu" and hour["model"] == "cosim-tiny"
    assert set(hour["headline"]) == {"seg3d", "det3d", "pan2d", "det2d"}
    assert hour["versions"]["sumo"]  # recorded, or said to be unused
    assert (out / "hour_metrics.png").stat().st_size > 0
    assert "2 passed" in (out / "cuda_tests.txt").read_text()
    assert len(list(out.iterdir())) <= 8  # what a device call brings back


def test_a_replay_needs_no_sumo_to_say_its_versions(monkeypatch):
    from types import SimpleNamespace

    from cosim import runner
    from cosim.errors import MissingDependencyError

    def missing() -> str:
        raise MissingDependencyError("SUMO not found")

    monkeypatch.setattr(runner, "sumo_version", missing)
    replayed = SimpleNamespace(mobility=SimpleNamespace(replay=Path("trace/mobility.parquet")))
    assert runner.versions(replayed)["sumo"].startswith("not used")
    with pytest.raises(MissingDependencyError):  # a live run needs SUMO
        runner.versions(SimpleNamespace(mobility=SimpleNamespace(replay=None)))


def test_pretraining_on_cuda_without_a_gpu_is_refused_in_one_line(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", "from cosim.cli import main; main()", "pretrain", "--out",
                           str(tmp_path / "m.pt"), "--device", "cuda"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device" in lines[0] and "no CUDA device" in lines[0], done.stderr
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.slow
def test_run_sh_installs_the_wheels_into_a_venv_over_this_environment(built, tmp_path):
    """The install step as on the GPU machine, whose python3 is itself a venv: the bundle's
    wheels go into a new venv, and the environment's own packages (torch) stay reachable. Only
    the wheels this Python can take (pure Python, abi3) are installed here."""
    bundle_dir = tmp_path / "bundle"
    (bundle_dir / "wheels").mkdir(parents=True)
    (bundle_dir / "trace").symlink_to(built / "trace")
    usable = [w for w in (built / "wheels").glob("*.whl")
              if w.name.endswith("-none-any.whl") or "-abi3-" in w.name]
    assert any(w.name.startswith("simpy-") for w in usable)
    for wheel in usable:
        (bundle_dir / "wheels" / wheel.name).symlink_to(wheel)
    work = tmp_path / "work"
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WORK": str(work), "BUNDLE": str(bundle_dir),
           "PYTHON": sys.executable, "DEVICE": "cpu", "STEPS": "install"}
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu" / "run.sh")], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "install done in" in (tmp_path / "out" / "log.txt").read_text()
    where = subprocess.run([str(work / "venv" / "bin" / "python"), "-c",
                            "import simpy, torch; print(simpy.__file__); print(torch.__file__)"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert where[0].startswith(str(work / "venv")) and not where[1].startswith(str(work / "venv"))
