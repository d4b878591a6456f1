#!/usr/bin/env bash
# Issue 26's GPU run: the cuda backend's kernels compiled, checked and timed (about 4-5 minutes).
# Each stage has its own timeout and writes $OUT/<stage>.json as it goes; $OUT/cuda_check.log
# has everything printed. Usage (one device call): bash tools/gpu/cuda_backend_check.sh
# Pass --dry-run to do everything except CUDA calls (the CPU tests do).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/cuda-check-out}
mkdir -p "$OUT"
log=$OUT/cuda_check.log
# the carried onnxruntime-gpu and small wheels, when the lead staged them (.device/)
[ -f .device/NAME ] && bash tools/gpu/device-run.sh true >> "$log" 2>&1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 RTVOICE_KERNEL_CACHE=/tmp/rtvoice-cuda-check/kernel-cache
PY=${PYTHON:-python3}
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1; } >> "$log"
stage() {  # name, seconds
  echo "== $1 (limit $2 s)" >> "$log"
  timeout -k 5 "$2" "$PY" tools/gpu/cuda_backend_check.py "$1" --out "$OUT" "${@:3}" >> "$log" 2>&1
  echo "rc $? ($1)" >> "$log"
}
stage env 45 "$@"
stage voices 60 "$@"
stage parity 75 "$@"
stage bench 90 "$@"
stage engine 45 "$@"
stage summary 15 "$@"
if [ "${1:-}" != "--dry-run" ]; then  # the same checks as GPU tests (tests/cuda_backend/test_cuda_gpu.py)
  echo "== pytest (limit 60 s)" >> "$log"
  timeout -k 5 60 "$PY" -m pytest tests/cuda_backend/test_cuda_gpu.py -q -p no:cacheprovider -o addopts="" \
    > "$OUT/pytest.txt" 2>&1
  echo "rc $? (pytest)" >> "$log"; tail -15 "$OUT/pytest.txt" >> "$log"
fi
echo finished >> "$log"
cat "$OUT/summary.json"
