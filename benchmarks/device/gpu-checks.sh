#!/usr/bin/env bash
# The GPU checks of a session on a lent GPU: the gpu-marked tests, the training and segment throughput benchmarks,
# and segment without the network (what bounds it on this host's CPUs and disk).
# Results land in $OUT (gpu-tests.txt, train_throughput-gpu.md, segment_pipeline.md, segment_throughput.md,
# checks.log, bench.log). Time limits per part: T_TESTS, T_TRAIN, T_PIPE, T_SEG (seconds).
#   OUT=/tmp/out bash benchmarks/device/gpu-checks.sh
set -u
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PWD/src:/tmp/site
else
  export PYTHONPATH=$PWD/src
fi
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/cache} TOMOSEG_NO_PROGRESS=1
PY=${PYTHON:-python3}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/checks.log"
t=$(date +%s)
timeout ${T_TESTS:-150} $PY -m pytest -p no:cacheprovider -q -m gpu tests/inference/test_cuda.py \
  tests/inference/test_engine.py tests/training/test_timing.py -W ignore::DeprecationWarning \
  2>&1 | tail -25 > "$OUT/gpu-tests.txt"; tail -3 "$OUT/gpu-tests.txt"
echo "tests: $(( $(date +%s) - t )) s" | tee -a "$OUT/checks.log"; t=$(date +%s)
timeout ${T_TRAIN:-120} $PY benchmarks/train_throughput.py --device cuda --quick --out-dir "$OUT" 2>>"$OUT/bench.log" | tail -8
echo "train throughput: $(( $(date +%s) - t )) s" | tee -a "$OUT/checks.log"; t=$(date +%s)
timeout ${T_PIPE:-90} $PY benchmarks/segment_pipeline.py --shapes 256x1024x1024 --repeats 2 --readers 6 12 \
  --out "$OUT/segment_pipeline.md" 2>>"$OUT/bench.log" | tail -6 | tee -a "$OUT/checks.log"
echo "segment pipeline: $(( $(date +%s) - t )) s" | tee -a "$OUT/checks.log"; t=$(date +%s)
cp benchmarks/results/segment_throughput.md "$OUT/segment_throughput.md" 2>/dev/null
timeout ${T_SEG:-200} $PY benchmarks/segment_throughput.py --device cuda --gpu-repeats 1 --out "$OUT/segment_throughput.md" \
  2>>"$OUT/bench.log" | tail -14 | tee -a "$OUT/checks.log"
echo "segment throughput: $(( $(date +%s) - t )) s" | tee -a "$OUT/checks.log"
