#!/usr/bin/env bash
# The GPU checks of a session on a lent GPU: the gpu-marked tests, the training and segment throughput benchmarks,
# segment without the network (what bounds it on this host's CPUs and disk) and the tile-size sweep.
# Results land in $OUT (gpu-tests.txt, train_throughput-gpu.md, segment_pipeline.md, segment_gpu_tiles.md,
# segment_throughput.md, segment_start.md, read_scaling.md, stats_pass.md, checks.log, bench.log). Time limit per
# part in seconds, 0 skips it: T_TESTS, T_TRAIN, T_READ, T_STATS, T_PIPE, T_TILES, T_SEG, T_START; PIPE_READERS reader threads of the
# pipeline rows (default 6 12), READ_SHAPE the volume of the read-scaling rows (default 256x1024x1024); SEG_REPEATS runs per row of segment_throughput (default 3),
# SEG_METHODS its rows (default: all);
# TILES, VARIANTS (plain as-trained channels-last contiguous compile rewritten rewritten-channels-last), PRECISIONS, BATCHES (windows a batch at most; 0: segment's
# choice) for the tile sweep.
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
$PY -c "import torch; print('torch', torch.__version__, 'cuDNN', torch.backends.cudnn.version())" | tee -a "$OUT/checks.log"

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a time limit (none when SECONDS is 0), log its time
  local name=$1 limit=$2 t
  shift 2
  [ "$limit" = 0 ] && return
  t=$(date +%s)
  timeout "$limit" "$@"
  echo "$name: $(( $(date +%s) - t )) s" | tee -a "$OUT/checks.log"
}
gpu_tests() {
  $PY -m pytest -p no:cacheprovider -q -m gpu tests/inference/test_cuda.py tests/inference/test_engine.py \
    tests/inference/test_device_stats.py tests/training/test_timing.py -W ignore::DeprecationWarning \
    -W ignore::pytest.PytestConfigWarning > "$OUT/gpu-tests.txt" 2>&1  # the image has no pytest-timeout
  tail -3 "$OUT/gpu-tests.txt"
}
step tests "${T_TESTS:-150}" bash -c "$(declare -f gpu_tests); PY=$PY OUT=$OUT gpu_tests"
step "train throughput" "${T_TRAIN:-120}" bash -c "$PY benchmarks/train_throughput.py --device cuda --quick \
  --out-dir $OUT 2>>$OUT/bench.log | tail -8"
step "read scaling" "${T_READ:-40}" bash -c "$PY benchmarks/read_scaling.py --shape ${READ_SHAPE:-256x1024x1024} \
  --threads 1 2 4 8 16 --out $OUT/read_scaling.md 2>>$OUT/bench.log | tail -8 | tee -a $OUT/checks.log"
step "stats pass threads" "${T_STATS:-60}" bash -c "$PY benchmarks/stats_pass.py --shape ${READ_SHAPE:-256x1024x1024} \
  --dtypes float32 uint16 --threads 1 2 4 8 16 --repeats 2 --out $OUT/stats_pass.md 2>>$OUT/bench.log | tail -10 | tee -a $OUT/checks.log
  $PY benchmarks/stats_pass.py --shape ${READ_SHAPE:-256x1024x1024} --device cuda --repeats 3 --out $OUT/stats_pass.md \
  2>>$OUT/bench.log | tail -6 | tee -a $OUT/checks.log"
step "segment pipeline" "${T_PIPE:-90}" bash -c "$PY benchmarks/segment_pipeline.py --shapes 256x1024x1024 \
  --repeats 2 --readers ${PIPE_READERS:-6 12} --resident --out $OUT/segment_pipeline.md 2>>$OUT/bench.log | tail -6 | tee -a $OUT/checks.log"
step "tile sweep" "${T_TILES:-0}" bash -c "$PY benchmarks/segment_gpu_tiles.py --tiles ${TILES:-192 256 384 512} \
  --variants ${VARIANTS:-plain} --precisions ${PRECISIONS:-f32 bf16} --batches ${BATCHES:-0} \
  --out $OUT/segment_gpu_tiles.md 2>>$OUT/bench.log | tail -14 | tee -a $OUT/checks.log"
step "segment start" "${T_START:-60}" bash -c "$PY benchmarks/segment_start.py --device cuda \
  --out $OUT/segment_start.md 2>>$OUT/bench.log | tail -14 | tee -a $OUT/checks.log"
cp benchmarks/results/segment_throughput.md "$OUT/segment_throughput.md" 2>/dev/null
step "segment throughput" "${T_SEG:-200}" bash -c "$PY benchmarks/segment_throughput.py --device cuda \
  --gpu-repeats ${SEG_REPEATS:-3} ${SEG_METHODS:+--methods $SEG_METHODS} --out $OUT/segment_throughput.md 2>>$OUT/bench.log | tail -14 | tee -a $OUT/checks.log"
