#!/usr/bin/env bash
# One command for a GPU: the CUDA tests, a full-set analysis of the shared resnet56 (each stage against this GPU's
# float32 GEMM) and one bf16 training epoch of resnet56 and resnet18, in at most 8 minutes, into one JSON file.
#
#   benchmarks/gpu_check.sh [DATA_DIR] [OUT_JSON]
#
# DATA_DIR holds cifar10-jpeg/cifar10_test.npz and weights/resnet56-4bfd9763.th (default: ../shared/data; about
# 32 MB in all, all the check reads); OUT_JSON defaults to gpu_check.json. Training times use synthetic images
# (a step's speed does not depend on the pixels). Without CUDA it says so in one line and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DATA=${1:-../shared/data}
OUT=${2:-gpu_check.json}
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check"
    exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
set +e
timeout 150 "$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/graph/test_scan.py tests/analysis/test_exactness.py \
    tests/models/test_pruned.py tests/graph/test_gemm.py > "$WORK/tests.txt" 2>&1
TESTS=$?
timeout 240 "$PYTHON" benchmarks/bench_pipeline.py --device cuda --model resnet56 \
    --weights "$DATA/weights/resnet56-4bfd9763.th" --data "npz:$DATA/cifar10-jpeg/cifar10_test.npz" \
    --normalize imagenet --json "$WORK/pipeline.json" > "$WORK/pipeline.txt" 2>&1
PIPELINE=$?
timeout 120 "$PYTHON" benchmarks/bench_training.py --device cuda --models resnet56,resnet18 --layouts channels_last \
    --steps 196 --warmup 5 --repeats 1 --json "$WORK/training.json" > "$WORK/training.txt" 2>&1
TRAINING=$?
set -e
"$PYTHON" - "$WORK" "$OUT" "$TESTS" "$PIPELINE" "$TRAINING" <<'PY'
import json, sys, pathlib
import torch
work, out, codes = pathlib.Path(sys.argv[1]), sys.argv[2], dict(zip(("tests", "pipeline", "training"), sys.argv[3:]))
def part(name):
    path = work / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
summary = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "exit_codes": codes,
           "tests": (work / "tests.txt").read_text()[-4000:], "pipeline": part("pipeline"), "training": part("training"),
           "logs": {name: (work / f"{name}.txt").read_text()[-3000:] for name in ("pipeline", "training")}}
pathlib.Path(out).write_text(json.dumps(summary, indent=1) + "\n")
print(f"gpu_check: {summary['gpu']}: tests exit {codes['tests']}, pipeline exit {codes['pipeline']}, "
      f"training exit {codes['training']}; written to {out}")
PY
