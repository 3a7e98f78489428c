"""Build what a GPU machine without network access needs to run cosim's learning benchmarks:
wheels its image lacks, and a recorded sf_downtown mobility trace to replay (no SUMO there).

    python bench/gpu/bundle.py OUT [--duration-s 3600] [--limit-mib 60] [--no-wheels]
                                   [--trace-from RUN_DIR]

OUT then holds
- ``wheels/``: CPython 3.12 manylinux x86_64 wheels (``pip download --only-binary=:all:
  --no-deps``) of ``WHEELS`` below, each at the version installed here (what this checkout is
  tested with). ``WHEELS`` is what a replayed run with learning, ``cosim data synth``, ``cosim
  pretrain``, ``bench/train_clients.py`` and the ``cuda`` tests import beyond the image's
  packages (``bench/gpu/image_packages.txt``), found by running them with
  ``COSIM_GPU_IMAGE_GUARD=trace`` (``bench/gpu/image_guard/``); the dry run of ``run.sh``
  refuses any other import;
- ``trace/mobility.parquet``: ``--duration-s`` of sf_downtown's mobility recorded every SUMO step
  (learning off; rewritten with zstd level 9, the same rows), ``trace/sf_downtown.net.xml``: the
  network netconvert built for it (a replay still reads the network; netconvert is SUMO's);
- ``manifest.json``: versions, files, bytes, and how the trace was recorded.

Prints the bundle's size; over ``--limit-mib`` (default 60: a device call carries at most 64 MiB
with the working tree) it exits 2 with one line. cosim itself travels as source.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "scenarios/sf_downtown.yaml"
LIMIT_MIB = 60.0

# Distributions the image lacks, or has at a version cosim's cannot use (typing-extensions: the
# pydantic here needs a recent one; it is pure Python, and the venv's copy shadows the image's).
WHEELS = (
    "open_clip_torch",  # the towers (open_clip); needs ftfy -> wcwidth, the rest is on the image
    "ftfy",
    "wcwidth",
    "simpy",  # the engine's clock
    "pydantic",  # the scenario
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "typing_extensions",
    "shapely",  # buildings and line of sight
    "sumolib",  # reading the network (pure Python; no SUMO binaries)
    "faster_coco_eval",  # 2D mAP's backend (torchmetrics)
)
# pip matches a manylinux tag exactly: the tags a CPython 3.12 x86_64 image of glibc 2.28+ takes
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64", "any")
PYTHON = "3.12"


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def check_size(folder: Path, limit_mib: float) -> int:
    """The bundle's bytes, printed; over the limit, one line and exit 2."""
    total = size_of(folder)
    if total > limit_mib * 2**20:
        print(f"error: the bundle {folder} is {total / 2**20:.1f} MiB, over the {limit_mib:g} MiB limit "
              f"(a device call carries at most 64 MiB with the working tree)", file=sys.stderr)
        raise SystemExit(2)
    print(f"bundle {folder}: {total / 2**20:.1f} MiB ({total} bytes), limit {limit_mib:g} MiB")
    return total


def pinned() -> list[str]:
    """``name==version`` of each of ``WHEELS`` as installed here."""
    out = []
    for name in WHEELS:
        try:
            out.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            raise SystemExit(f"error: {name} is not installed here, so its version to bundle is unknown: "
                             f"install the project ('pip install -e .')") from None
    return out


def download_wheels(dest: Path) -> list[dict]:
    dest.mkdir(parents=True, exist_ok=True)
    reqs = pinned()
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
           "--dest", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    print(f"downloading {len(reqs)} wheels for CPython {PYTHON} manylinux x86_64: {' '.join(reqs)}",
          flush=True)
    done = subprocess.run([*cmd, *reqs], capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"error: pip download failed (exit {done.returncode}; PyPI must be reachable): "
                         f"{tail}")
    wheels = sorted(dest.glob("*.whl"))
    names = {_dist(w.name) for w in wheels}
    missing = [r for r in reqs if _norm(r.split("==")[0]) not in names]
    if missing:
        raise SystemExit(f"error: no wheel came for {', '.join(missing)}")
    return [{"file": w.name, "name": _dist(w.name), "version": w.name.split("-")[1],
             "bytes": w.stat().st_size} for w in wheels]


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _dist(wheel: str) -> str:
    return _norm(wheel.split("-")[0])


def record_trace(dest: Path, duration_s: float, source: Path | None) -> dict:
    """sf_downtown's mobility with learning off (or an earlier such run's), and its network."""
    import pyarrow.parquet as pq

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = source
        wall = None
        if run_dir is None:
            run_dir = Path(tmp) / "record"
            cmd = [sys.executable, "-c", "from cosim.cli import main; main()", "run", SCENARIO,
                   "--quiet", "--out", str(run_dir), "--set", "learning.enabled=false",
                   "--set", f"duration_s={duration_s:g}"]
            print(f"recording {duration_s:g} s of sf_downtown's mobility (SUMO, learning off) ...",
                  flush=True)
            t0 = time.perf_counter()
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                raise SystemExit(f"error: recording failed (exit {done.returncode}): "
                                 f"{done.stderr.strip()[-600:]}")
            print(f"recorded in {wall:.0f} s", flush=True)
        info = json.loads((run_dir / "run.json").read_text())
        if info.get("status") != "complete":
            raise SystemExit(f"error: {run_dir} is not a complete run")
        net = Path(info["inputs"]["net"])
        table = pq.read_table(run_dir / "mobility.parquet")
        end = float(table.column("t").to_numpy().max())
        if end < duration_s - 1e-6:
            raise SystemExit(f"error: {run_dir}'s trace ends at {end:g} s, short of --duration-s "
                             f"{duration_s:g}")
        pq.write_table(table, dest / "mobility.parquet", compression="zstd", compression_level=9)
        shutil.copyfile(net, dest / "sf_downtown.net.xml")
    return {"scenario": SCENARIO, "seed": info["scenario"]["seed"], "duration_s": duration_s,
            "step_length_s": info["scenario"]["mobility"]["step_length_s"], "rows": table.num_rows,
            "vehicles": len(set(table.column("vehicle").to_pylist())), "end_s": end,
            "record_wall_s": wall, "sumo": info["versions"].get("sumo"),
            "mobility_sha256": _sha256(dest / "mobility.parquet"),
            "mobility_bytes": (dest / "mobility.parquet").stat().st_size,
            "net_bytes": (dest / "sf_downtown.net.xml").stat().st_size}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--duration-s", type=float, default=3600.0, help="how much mobility to record")
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    parser.add_argument("--no-wheels", action="store_true", help="the trace alone (a dry run here)")
    parser.add_argument("--trace-from", type=Path, help="a complete sf_downtown run (learning off) "
                        "recorded every step, instead of recording one")
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise SystemExit(f"error: {out} is not empty and holds no bundle: give a new or empty folder")
    for part in ("wheels", "trace", "manifest.json"):  # an earlier bundle there is replaced
        target = out / part
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    wheels = [] if args.no_wheels else download_wheels(out / "wheels")
    trace = record_trace(out / "trace", args.duration_s, args.trace_from)
    manifest = {"python": PYTHON, "platforms": list(PLATFORMS), "wheels": wheels, "trace": trace,
                "built_s": round(time.perf_counter() - t0, 1)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for w in wheels:
        print(f"  {w['file']}: {w['bytes'] / 2**10:.0f} KiB")
    print(f"  trace: {trace['duration_s']:g} s, {trace['rows']} rows, {trace['vehicles']} vehicles, "
          f"{trace['mobility_bytes'] / 2**20:.1f} MiB + network {trace['net_bytes'] / 2**20:.1f} MiB")
    check_size(out, args.limit_mib)


if __name__ == "__main__":
    main()
