#!/usr/bin/env bash
# Train the default model on a lent GPU with the committed recipe, then score it against v1 on the held-out
# benchmark. Everything lands in $OUT: the run folder ($OUT/run: weights, metrics.csv, learning curve,
# config, resume state) and $OUT/heldout.md, $OUT/train.log.
#   OUT=/tmp/out bash benchmarks/device/train-default-model.sh [CONFIG] [EVAL_ARGS...]
set -u
cfg=${1:-configs/default-model.yaml}; shift || true
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PWD/src:/tmp/site
else
  export PYTHONPATH=$PWD/src
fi
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/cache}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
t0=$(date +%s)
$PY -m tomoseg -q train "$cfg" --output "$OUT/run" 2>&1 | tee "$OUT/train.log"
echo "train: $(( $(date +%s) - t0 )) s (pool generation included)" | tee -a "$OUT/train.log"
t1=$(date +%s)
$PY benchmarks/evaluate_default_model.py --model v1=default --model "v2=$OUT/run/best.safetensors" \
  --out "$OUT/heldout.md" "$@" 2>&1 | tail -3 | tee -a "$OUT/train.log"
echo "evaluate: $(( $(date +%s) - t1 )) s" | tee -a "$OUT/train.log"
