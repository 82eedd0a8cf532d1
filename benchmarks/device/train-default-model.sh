#!/usr/bin/env bash
# Train the default model on a lent GPU with the committed recipe, over as many short leases as it takes.
#
# Each call trains for at most T_RUN seconds (default 360) and brings the whole run folder back as one file,
# $OUT/run.tgz (weights, metrics.csv, learning curve, config, resume state). Keep it between sessions as
# runs/CONFIG-NAME.tgz (e.g. runs/default-model-v3.tgz; ignored by git) and carry it into the next call: the
# run then continues with --resume where it stopped (the learning rate and the loss switch follow the share
# of max_minutes used, so the pieces add up to one run). When the run has used its whole budget, or with
# EVAL=1, best.safetensors is scored against the shipped default on the held-out benchmark ($OUT/heldout.md;
# EVAL=0 never scores, to leave it to a CPU after the lease). Log: $OUT/train.log.
#
#   OUT=/tmp/out bash benchmarks/device/train-default-model.sh [CONFIG] [EVAL_ARGS...]
#   run(command="bash benchmarks/device/train-default-model.sh configs/default-model-v3.yaml",
#       carry=[".whl", "runs/default-model-v3.tgz"])
set -u
cfg=${1:-configs/default-model-v3.yaml}; shift || true
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PWD/src:/tmp/site
else
  export PYTHONPATH=$PWD/src
fi
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/cache}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
previous=${RUN_TGZ:-runs/$(basename "$cfg" .yaml).tgz}   # a run of this config, from an earlier call
resume=""
if [ -f "$previous" ]; then
  tar xzf "$previous" -C "$OUT" && resume=--resume
  echo "resuming $previous" | tee -a "$OUT/train.log"
fi
t0=$(date +%s)
timeout -s INT "${T_RUN:-360}" $PY -m tomoseg -q train "$cfg" --output "$OUT/run" $resume 2>&1 | tee -a "$OUT/train.log"
rc=${PIPESTATUS[0]}
echo "train: $(( $(date +%s) - t0 )) s, exit $rc (0: budget used up; 124/130: stopped by T_RUN, resume next time)" \
  | tee -a "$OUT/train.log"
tail -3 "$OUT/run/metrics.csv" 2>/dev/null | tee -a "$OUT/train.log"
if [ "${EVAL:-auto}" = 1 ] || { [ "${EVAL:-auto}" = auto ] && [ "$rc" = 0 ]; }; then
  t1=$(date +%s)
  $PY benchmarks/evaluate_default_model.py --model shipped=default --model "new=$OUT/run/best.safetensors" \
    --out "$OUT/heldout.md" "$@" 2>&1 | tail -3 | tee -a "$OUT/train.log"
  echo "evaluate: $(( $(date +%s) - t1 )) s" | tee -a "$OUT/train.log"
fi
tar czf "$OUT/run.tgz" -C "$OUT" run && rm -rf "$OUT/run"   # one file back instead of a folder of them
ls -la "$OUT"
