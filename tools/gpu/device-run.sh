#!/usr/bin/env bash
# What the lead runs on the GPU machine (see docs/benchmarks.md, "GPU: NVIDIA H100"): installs the
# carried onnxruntime-gpu and small wheels into /tmp/site, then tests and benchmarks.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ ! -d /tmp/site/onnxruntime ]; then
  name=$(cat .device/NAME)
  cat /tmp/part_* > "/tmp/$name"
  python3 -m pip install -q --no-index --no-deps --target /tmp/site "/tmp/$name" .device/wheels/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD
python3 -c "import onnxruntime as o; o.preload_dlls(); print(o.__version__, o.get_available_providers())"
"$@"
