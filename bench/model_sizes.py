"""Which trained model learns most per wall second: the default hour with each model size.

For each open_clip configuration (same towers, adapters and heads; cosim's own synthetic
pre-training of each, built first and not timed), ``cosim run SCENARIO --seed S`` runs with
``learning.model.name=M`` in the given precision; per model it prints the wall time, each task's
final headline metric, its mean over the hour's evaluations, both against the model-free lookup
baseline, and the final gain over the lookup per 100 wall seconds. The deployed model (what the
simulation charges in compute time and bytes) is the scenario's ``deployed_model`` in every run,
so participation is the same and only the learning differs.

    python bench/model_sizes.py [--models cosim-tiny,cosim-small,cosim-base] [--seeds 42]
                                [--precision bf16] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from precision_hour import headline, run  # noqa: E402

from cosim.learning.openclip import open_clip_module, quiet_random_init  # noqa: E402
from cosim.learning.pretrain import PretrainConfig, ensure_pretrained  # noqa: E402
from cosim.names import HEADLINE  # noqa: E402


def parameters(name: str) -> int:
    with quiet_random_init():
        model = open_clip_module().create_model(name, device="meta")
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/sf_downtown.yaml")
    parser.add_argument("--models", default="cosim-tiny,cosim-small,cosim-base")
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    models, seeds = args.models.split(","), [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        for model in models:
            t0 = time.perf_counter()
            ensure_pretrained(PretrainConfig(model=model))  # cached: the runs below find it
            print(f"{model}: {parameters(model) / 1e6:.1f} M parameters, synthetic pre-training ready "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            per_seed = []
            for seed in seeds:
                out = folder / f"{model}-seed{seed}"
                done = run(args.scenario, seed, args.precision, out,
                           [f"learning.model.name={model}", *args.set])
                lookup = done["info"]["summary"]["learning"]["lookup_baseline"]
                per_seed.append({"wall_s": done["wall_s"], "metrics": headline(out),
                                 "lookup": {t: lookup[t][m] for t, m in HEADLINE.items()}})
                print(f"  seed {seed}: {done['wall_s']:.1f} s wall", flush=True)
            results[model] = {"parameters": parameters(model), "runs": per_seed}
        print(f"\n{'model':<12} {'wall s':>7} " + " ".join(
            f"{t + ' final (mean) [lookup]':>34}" for t in HEADLINE) + f" {'gain/100 s':>11}")
        for model, r in results.items():
            wall = statistics.mean(x["wall_s"] for x in r["runs"])
            cells, gains = [], []
            for task in HEADLINE:
                final = statistics.mean(x["metrics"][task][0] for x in r["runs"])
                mean = statistics.mean(x["metrics"][task][1] for x in r["runs"])
                lookup = statistics.mean(x["lookup"][task] for x in r["runs"])
                cells.append(f"{final:.3f} ({mean:.3f}) [{lookup:.3f}]")
                gains.append((final - lookup) / max(lookup, 1e-3))
            # the mean over tasks of (final - lookup) / lookup, per 100 wall seconds
            print(f"{model:<12} {wall:>7.1f} " + " ".join(f"{c:>34}" for c in cells)
                  + f" {100 * statistics.mean(gains) / wall:>11.3f}")
        (folder / "model_sizes.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
