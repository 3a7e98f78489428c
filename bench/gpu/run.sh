#!/usr/bin/env bash
# cosim's learning layer on a GPU machine, in one call, from the bundle bench/gpu/bundle.py built:
#   1. a venv over the machine's own packages (--system-site-packages), the bundle's wheels
#      installed offline (pip --no-index --no-deps); cosim runs from this checkout (PYTHONPATH);
#   2. the synthetic data (cosim data synth) and, meanwhile, the backbone's pre-training
#      (cosim pretrain on the device, the trained model's configuration);
#   3. bench/train_clients.py on the device: K clients one after another vs one batched pass, in
#      each precision, with the largest parameter difference between the two;
#   4. the default hour (sf_downtown) replayed from the bundle's trace, the trained model being
#      the deployed one: wall time, rounds, final headline metrics, peak GPU memory;
#   5. the learning tests with a device path (pytest -m cuda, tests/test_cuda.py) on the device.
# Results go to $OUT (at most 8 files): log.txt, results.json (environment, steps and their
# seconds, pre-training, tests), train_clients.json, hour.json, cuda_tests.txt, hour_metrics.png.
#
#   OUT=DIR bash bench/gpu/run.sh
#
# Settings (environment): DEVICE (cuda), MODEL (ViT-B-16: the deployed model), KS (1,5,10,20),
# PRECISIONS (fp32,bf16), REPS (2), CLIENT_PATHS (sequential,batched), DURATION_S (3600),
# HOUR_PRECISION (bf16), PRETRAIN_STEPS (300), PRETRAIN_SEGMENTS (32: a 224-px scene renders in
# about 5 s on one core), DATA_SEGMENTS (28) and DATA_FRAMES (40) (sf_downtown's synthetic set),
# TEST_SELECT (a pytest -k expression: a subset of the device tests), SETS (more --set items for train_clients and the hour, space-separated), STEPS (which of
# install,data,pretrain,clients,hour,tests to run), BUNDLE (bench/gpu/bundle), WORK (a temporary
# folder; name one to split the steps over calls on one machine: a later call reuses its venv,
# data and backbone), PYTHON (python3). A dry run elsewhere: COSIM_GPU_SKIP_INSTALL=1 reuses PYTHON's
# environment as it is, and IMAGE_GUARD=1 (its default there) refuses any import of a package
# neither the GPU image (bench/gpu/image_packages.txt) nor the bundle holds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${OUT:?set OUT to the folder for the results}"
DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-ViT-B-16}
KS=${KS:-1,5,10,20}
PRECISIONS=${PRECISIONS:-fp32,bf16}
REPS=${REPS:-2}
CLIENT_PATHS=${CLIENT_PATHS:-sequential,batched}
DURATION_S=${DURATION_S:-3600}
HOUR_PRECISION=${HOUR_PRECISION:-bf16}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-300}
PRETRAIN_SEGMENTS=${PRETRAIN_SEGMENTS:-32}
DATA_SEGMENTS=${DATA_SEGMENTS:-28}
DATA_FRAMES=${DATA_FRAMES:-40}
SETS=${SETS:-}
STEPS=${STEPS:-install,data,pretrain,clients,hour,tests}
BUNDLE=$(cd "${BUNDLE:-$ROOT/bench/gpu/bundle}" && pwd)
PYTHON=${PYTHON:-python3}
SKIP_INSTALL=${COSIM_GPU_SKIP_INSTALL:-0}
IMAGE_GUARD=${IMAGE_GUARD:-$SKIP_INSTALL}
WORK=${WORK:-$(mktemp -d)}
EXTRA_PATH=

mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/log.txt") 2>&1
T0=$SECONDS
STEP_TIMES="$WORK/steps.tsv"
: > "$STEP_TIMES"
say() { echo "[run.sh $(date -u +%H:%M:%S) +$((SECONDS - T0))s] $*"; }
want() { [[ ",$STEPS," == *",$1,"* ]]; }
step_done() { printf '%s\t%s\n' "$1" "$2" >> "$STEP_TIMES"; say "$1 done in $2 s"; }
trap 'say "FAILED (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

say "device $DEVICE, model $MODEL, K $KS, precisions $PRECISIONS (hour: $HOUR_PRECISION), reps $REPS," \
    "hour ${DURATION_S} s, steps $STEPS, bundle $BUNDLE, work $WORK"
[[ -f "$BUNDLE/trace/mobility.parquet" ]] || { say "no trace in $BUNDLE: run python bench/gpu/bundle.py $BUNDLE first"; exit 2; }

# 1. the environment
if want install && [[ "$SKIP_INSTALL" != 1 ]]; then
    t=$SECONDS
    ls "$BUNDLE"/wheels/*.whl > /dev/null || { say "no wheels in $BUNDLE/wheels: build the bundle with wheels"; exit 2; }
    # no pip inside (ensurepip may be missing): PYTHON's pip installs into the venv's folder
    if "$PYTHON" -m venv --system-site-packages --without-pip "$WORK/venv"; then
        PY="$WORK/venv/bin/python"
        SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        # PYTHON may itself be a venv (the image's is): --system-site-packages reaches only the
        # interpreter's own, so PYTHON's folders join the new venv's path after its own packages
        "$PYTHON" -c 'import site; print("\n".join(site.getsitepackages()))' > "$SITE/_cosim_parent_env.pth"
    else
        PY=$(command -v "$PYTHON")
        SITE="$WORK/site"
        EXTRA_PATH=$SITE
        say "no venv could be made: the wheels go to $SITE, first on PYTHONPATH"
    fi
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --disable-pip-version-check \
        --target "$SITE" "$BUNDLE"/wheels/*.whl
    step_done install $((SECONDS - t))
elif [[ "$SKIP_INSTALL" != 1 && -x "$WORK/venv/bin/python" ]]; then
    PY="$WORK/venv/bin/python"  # an earlier call's, on the same machine with the same WORK
    say "install skipped: reusing $WORK/venv"
elif [[ "$SKIP_INSTALL" != 1 && -d "$WORK/site" ]]; then
    PY=$(command -v "$PYTHON")
    EXTRA_PATH="$WORK/site"
    say "install skipped: reusing $WORK/site"
else
    PY=$(command -v "$PYTHON")
    say "install skipped: using $PY as it is"
fi
export PYTHONPATH="$ROOT${EXTRA_PATH:+:$EXTRA_PATH}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export COSIM_CACHE_DIR=${COSIM_CACHE_DIR:-$WORK/cache}
if [[ "$IMAGE_GUARD" == 1 ]]; then
    ALLOWED="$WORK/allowed.txt"
    { cat "$ROOT/bench/gpu/image_packages.txt"
      "$PY" -c "import sys; sys.path.insert(0, '$ROOT/bench/gpu'); import bundle; print('\n'.join(bundle.WHEELS))"
    } > "$ALLOWED"
    export COSIM_GPU_IMAGE_GUARD="$ALLOWED" PYTHONPATH="$ROOT/bench/gpu/image_guard:$PYTHONPATH"
    say "image guard on: imports limited to the GPU image's packages and the bundle's ($ALLOWED)"
fi
cd "$ROOT"
cosim() { "$PY" -c 'from cosim.cli import main; main()' "$@"; }

"$PY" - "$DEVICE" "$WORK/env.json" <<'EOF'
import json, platform, sys
import torch
device = sys.argv[1]
info = {"python": platform.python_version(), "prefix": sys.prefix, "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "threads": torch.get_num_threads()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info |= {"gpu": p.name, "gpu_memory_bytes": p.total_memory, "capability": f"{p.major}.{p.minor}",
             "bf16": torch.cuda.is_bf16_supported(including_emulation=False)}
for name in ("open_clip", "simpy", "pydantic", "shapely", "sumolib", "faster_coco_eval", "numpy", "pyarrow"):
    try:
        module = __import__(name)
        info[name] = f"{getattr(module, '__version__', '?')} ({module.__file__})"
    except Exception as exc:  # reported, and the step that needs it fails loudly
        info[name] = f"missing: {exc}"
json.dump(info, open(sys.argv[2], "w"), indent=1)
print(json.dumps(info))
if device == "cuda" and not torch.cuda.is_available():
    sys.exit("DEVICE=cuda but torch sees no CUDA device")
EOF

DATA="$WORK/data"
BACKBONE="$WORK/backbone-$MODEL.pt"
COMMON=(--set "learning.model.name=$MODEL" --set "learning.model.checkpoint=$BACKBONE"
        --set "learning.data.root=$DATA" --set "learning.local.device=$DEVICE")
for s in $SETS; do COMMON+=(--set "$s"); done

# 2. data (in the background) and pre-training
if want data; then
    t=$SECONDS
    say "data: cosim data synth ($DATA_SEGMENTS segments x $DATA_FRAMES frames), in the background"
    cosim data synth --out "$DATA" --segments "$DATA_SEGMENTS" --frames "$DATA_FRAMES" --seed 0 \
        > "$WORK/synth.log" 2>&1 &
    SYNTH_PID=$!
fi
if want pretrain; then
    t2=$SECONDS
    say "pretrain: cosim pretrain --model $MODEL --steps $PRETRAIN_STEPS --segments $PRETRAIN_SEGMENTS --device $DEVICE"
    cosim pretrain --out "$BACKBONE" --model "$MODEL" --steps "$PRETRAIN_STEPS" \
        --segments "$PRETRAIN_SEGMENTS" --device "$DEVICE" --overwrite --quiet | tee "$WORK/pretrain.txt"
    step_done pretrain $((SECONDS - t2))
fi
if want data; then
    wait "$SYNTH_PID" || { cat "$WORK/synth.log"; say "data synth failed"; exit 1; }
    cat "$WORK/synth.log"
    step_done data $((SECONDS - t))
fi

if want clients || want hour; then  # made by this call or an earlier one with the same WORK
    [[ -d "$DATA" ]] || { say "no data at $DATA: add data to STEPS"; exit 2; }
    [[ -f "$BACKBONE" ]] || { say "no backbone at $BACKBONE: add pretrain to STEPS"; exit 2; }
fi

# 3. K clients: sequential vs one batched pass
if want clients; then
    t=$SECONDS
    say "clients: bench/train_clients.py --device $DEVICE --ks $KS --precisions $PRECISIONS --paths $CLIENT_PATHS"
    "$PY" bench/train_clients.py --device "$DEVICE" --ks "$KS" --precisions "$PRECISIONS" --reps "$REPS" \
        --paths "$CLIENT_PATHS" --json "$OUT/train_clients.json" "${COMMON[@]}"
    step_done clients $((SECONDS - t))
fi

# 4. the default hour, replayed
if want hour; then
    t=$SECONDS
    say "hour: sf_downtown, ${DURATION_S} s replayed, $MODEL trained, $HOUR_PRECISION"
    "$PY" bench/gpu/hour.py --trace "$BUNDLE/trace" --duration-s "$DURATION_S" --out "$OUT/hour.json" \
        --run-dir "$WORK/hour-run" --png "$OUT/hour_metrics.png" \
        "${COMMON[@]}" --set "learning.precision=$HOUR_PRECISION"
    step_done hour $((SECONDS - t))
fi

# 5. the device tests
TESTS_RC=-1
if want tests; then
    t=$SECONDS
    say "tests: pytest -m cuda tests/test_cuda.py on $DEVICE"
    set +e
    COSIM_TEST_DEVICE=$DEVICE "$PY" -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider \
        ${TEST_SELECT:+-k "$TEST_SELECT"} 2>&1 | tee "$OUT/cuda_tests.txt"
    TESTS_RC=${PIPESTATUS[0]}
    set -e
    step_done tests $((SECONDS - t))
fi

"$PY" - "$WORK" "$OUT/results.json" "$TESTS_RC" <<'EOF'
import json, sys
from pathlib import Path
work, out, tests_rc = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
steps = {}
for line in (work / "steps.tsv").read_text().splitlines():
    name, seconds = line.split("\t")
    steps[name] = int(seconds)
pre = work / "pretrain.txt"
result = {"env": json.loads((work / "env.json").read_text()), "step_seconds": steps,
          "pretrain": pre.read_text().strip() if pre.exists() else None,
          "cuda_tests_exit": None if tests_rc < 0 else tests_rc}
out.write_text(json.dumps(result, indent=1) + "\n")
EOF
if [[ "$TESTS_RC" -gt 0 ]]; then
    say "the device tests failed (exit $TESTS_RC): see $OUT/cuda_tests.txt"
    exit 1
fi
say "done in $((SECONDS - T0)) s: $OUT"
