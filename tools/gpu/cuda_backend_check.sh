#!/usr/bin/env bash
# Issue 26's GPU run: the cuda backend's kernels compiled, checked and timed (limits add up to 8.5 minutes; most stages end well before theirs).
# Each stage has its own timeout and writes $OUT/<stage>.json as it goes; $OUT/cuda_check.log
# has everything printed. Usage (one device call): bash tools/gpu/cuda_backend_check.sh
# Pass --dry-run to do everything except CUDA calls (the CPU tests do). ENGINE_BENCH=1 adds the
# whole-engine bench (rtvoice bench --backend cuda vs onnxruntime), a few minutes more.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/cuda-check-out}
mkdir -p "$OUT"
log=$OUT/cuda_check.log
# the carried onnxruntime-gpu and small wheels, when the lead staged them (.device/)
[ -f .device/NAME ] && bash tools/gpu/device-run.sh true >> "$log" 2>&1
# /tmp/site-ort: onnxruntime-gpu staged by tools/gpu/ort_stage.py (install), ahead of the image's CPU-only 1.30
export PYTHONPATH=/tmp/site-ort:/tmp/site:$PWD PYTHONUNBUFFERED=1 RTVOICE_KERNEL_CACHE=/tmp/rtvoice-cuda-check/kernel-cache
PY=${PYTHON:-python3}
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1; } >> "$log"
# rtvoice's own pure-Python dependencies (num2words, anyascii, defusedxml) must import here:
# the carried .device/wheels provide them on the GPU machine.
"$PY" -c "import rtvoice, cuda.bindings, onnx, onnxruntime, torch; print('imports ok', onnxruntime.__version__, onnxruntime.__file__)" >> "$log" 2>&1 ||
  echo "PREFLIGHT FAILED: see the import error above (carry the missing wheels in .device/wheels)" >> "$log"
stage() {  # name, seconds
  echo "== $1 (limit $2 s)" >> "$log"
  timeout -k 5 "$2" "$PY" tools/gpu/cuda_backend_check.py "$1" --out "$OUT" "${@:3}" >> "$log" 2>&1
  echo "rc $? ($1)" >> "$log"
}
stage env 45 "$@"
stage voices 40 "$@"
stage parity 70 "$@"
stage bench 75 "$@"
[ "${SWEEP:-1}" = 0 ] || stage sweep 140 "$@"  # the kernel shapes side by side (SWEEP=0 skips it)
stage engine 70 "$@"
stage summary 10 "$@"
# The device brings back at most 8 files from $OUT (the log and the 7 stage JSONs): the rest goes into the log.
if [ "${1:-}" != "--dry-run" ]; then  # the same checks as GPU tests (tests/cuda_backend/test_cuda_gpu.py)
  echo "== pytest (limit 50 s)" >> "$log"
  timeout -k 5 50 "$PY" -m pytest tests/cuda_backend/test_cuda_gpu.py -q -p no:cacheprovider -o addopts="" \
    >> "$log" 2>&1
  echo "rc $? (pytest)" >> "$log"
fi
# Optional (ENGINE_BENCH=1, +2-4 minutes): the issue's table, whole engine, full-size voice with
# WaveGlow 512, 602 forced frames of the 128-character phrase: cuda against onnxruntime, same card.
if [ "${ENGINE_BENCH:-0}" = 1 ] && [ "${1:-}" != "--dry-run" ]; then
  cp ../shared/data/benchmark-phrase-128.txt /tmp/phrase.txt 2>/dev/null ||
    echo "The forms of printed letters should be beautiful, and that their arrangement on the page should be reasonable and a help to the" > /tmp/phrase.txt
  [ -f /tmp/full512/waveglow.onnx ] || timeout 150 "$PY" build_engines.py --random full --waveglow-channels 512 \
    --out /tmp/full512 --no-parity >> "$log" 2>&1
  for b in cuda onnxruntime; do
    echo "== rtvoice bench --backend $b" >> "$log"
    timeout -k 5 120 "$PY" -m rtvoice bench --voice /tmp/full512 --backend "$b" --device cuda:0 \
      --text @/tmp/phrase.txt --steps 602 --runs 4 --warmup 1 --json >> "$log" 2>&1
    echo "rc $? (engine bench $b)" >> "$log"
  done
fi
echo finished >> "$log"
cat "$OUT/summary.json"
