#!/usr/bin/env bash
# Issue 26's GPU run: the cuda backend's kernels compiled, checked, timed and profiled (limits add up to 535 s; most stages end well before theirs).
# Each stage has its own timeout and writes $OUT/<stage>.json as it goes; $OUT/cuda_check.log
# has everything printed. Usage (one device call): bash tools/gpu/cuda_backend_check.sh
# Pass --dry-run to do everything except CUDA calls (the CPU tests do). ENGINE_BENCH=1 adds issue
# 26's target table (the table stage: tools/gpu/issue_table.py), in what is left of CALL_S (570 s)
# after the other stages, less 75 s for the summary and the tests; it skips the sweep unless SWEEP=1.
set -u
start=$(date +%s)
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/cuda-check-out}
mkdir -p "$OUT"
log=$OUT/cuda_check.log
# the carried onnxruntime-gpu and small wheels, when the lead staged them (.device/)
[ -f .device/NAME ] && bash tools/gpu/device-run.sh true >> "$log" 2>&1
# /tmp/site-ort: onnxruntime-gpu staged by tools/gpu/ort_stage.py (install), ahead of the image's CPU-only 1.30
export PYTHONPATH=/tmp/site-ort:/tmp/site:$PWD PYTHONUNBUFFERED=1 RTVOICE_KERNEL_CACHE=/tmp/rtvoice-cuda-check/kernel-cache
PY=${PYTHON:-python3}
# small wheels carried beside the tree (gpu-stage/wheels: onnxconverter-common for the table's fp16
# rows), into /tmp/site on the GPU machine only (nvidia-smi there), never into a CPU test's machine
if ls gpu-stage/wheels/*.whl > /dev/null 2>&1 && command -v nvidia-smi > /dev/null && [ "${1:-}" != "--dry-run" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site gpu-stage/wheels/*.whl >> "$log" 2>&1
fi
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1; } >> "$log"
# rtvoice's own pure-Python dependencies (num2words, anyascii, defusedxml) must import here:
# the carried .device/wheels provide them on the GPU machine.
"$PY" -c "import rtvoice, cuda.bindings, onnx, onnxruntime, torch; print('imports ok', onnxruntime.__version__, onnxruntime.__file__)" >> "$log" 2>&1 ||
  echo "PREFLIGHT FAILED: see the import error above (carry the missing wheels in .device/wheels)" >> "$log"
# STAGES (default: all): the stages to run, e.g. STAGES="env table summary" with ENGINE_BENCH=1 and
# TABLE_ONLY (issue_table.py) for a short call that measures only some of the table's rows.
stage() {  # name, seconds
  if [ -n "${STAGES:-}" ] && [[ " $STAGES " != *" $1 "* ]]; then echo "== $1: not in STAGES" >> "$log"; return; fi
  echo "== $1 (limit $2 s)" >> "$log"
  timeout -k 5 "$2" "$PY" tools/gpu/cuda_backend_check.py "$1" --out "$OUT" "${@:3}" >> "$log" 2>&1
  echo "rc $? ($1)" >> "$log"
}
stage env 45 "$@"
stage voices 40 "$@"
stage parity 70 "$@"
stage bench 75 "$@"
sweep=1; [ "${ENGINE_BENCH:-0}" = 1 ] && sweep=0  # 8 files come back: table.json takes sweep.json's place
[ "${SWEEP:-$sweep}" = 0 ] || stage sweep 140 "$@"  # the kernel shapes side by side (SWEEP=0 skips it)
stage engine 70 "$@"
stage profile 35 "$@"  # torch.profiler over the engine per kernel mode: into engine.json (no 9th file)
if [ "${ENGINE_BENCH:-0}" = 1 ]; then  # issue 26's table: cuda, ONNX Runtime CUDA, PyTorch fp16; streams per GPU
  export TABLE_BUDGET_S=$(( ${CALL_S:-570} - ($(date +%s) - start) - 75 ))
  if [ "$TABLE_BUDGET_S" -ge 60 ]; then stage table $((TABLE_BUDGET_S + 20)) "$@"
  else echo "== table: skipped, $TABLE_BUDGET_S s left of CALL_S" >> "$log"; fi
fi
stage summary 10 "$@"
# The device brings back at most 8 files from $OUT (the log and the 7 stage JSONs): the rest goes into the log.
if [ "${1:-}" != "--dry-run" ] && { [ -z "${STAGES:-}" ] || [[ " $STAGES " == *" pytest "* ]]; }; then
  # the same checks as GPU tests (tests/cuda_backend/test_cuda_gpu.py); in STAGES as "pytest"
  echo "== pytest (limit 50 s)" >> "$log"
  timeout -k 5 50 "$PY" -m pytest tests/cuda_backend/test_cuda_gpu.py -q -p no:cacheprovider -o addopts="" \
    >> "$log" 2>&1
  echo "rc $? (pytest)" >> "$log"
fi
echo finished >> "$log"
cat "$OUT/summary.json"
