#!/usr/bin/env bash
# Issue #7's GPU session (ORT CUDA): GPU tests, then the bench matrix for docs/benchmarks.md,
# "GPU: NVIDIA H100, ONNX Runtime CUDA". Needs the carried onnxruntime-gpu parts in /tmp (tools/gpu/device-run.sh).
# Writes $OUT/perf.txt (the log) and $OUT/bench.tar (one JSON per run).
set -u
cd "$(dirname "$0")/../.."
bash tools/gpu/device-run.sh true > /dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
ls /tmp/full512/waveglow.onnx > /dev/null 2>&1 ||
  python3 build_engines.py --random full --waveglow-channels 512 --out /tmp/full512 --no-parity > /dev/null 2>&1
cp ../shared/data/benchmark-phrase-128.txt /tmp/phrase.txt 2>/dev/null ||
  echo "The forms of printed letters should be beautiful, and that their arrangement on the page should be reasonable and a help to the" > /tmp/phrase.txt
mkdir -p /tmp/bench
B="python3 -m rtvoice bench --voice /tmp/full512 --device cuda:0 --text @/tmp/phrase.txt"
log=$OUT/perf.txt
# name, seconds, bench flags: one JSON per run, and the table in the log.
bench() {
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" >> "$log"
  timeout "$limit" $B "$@" --json > "/tmp/bench/$name.json" 2>> "$log"; echo "rc $? ($name)" >> "$log"
  python3 - "/tmp/bench/$name.json" >> "$log" 2>&1 <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["summary"]
f = lambda k: r[k]["median"] if isinstance(r.get(k), dict) else r.get(k)
g = lambda k: r[k].get("p99") if isinstance(r.get(k), dict) else None
print(f"ttfa {f('time_to_first_audio_s')} p99 {g('time_to_first_audio_s')} | latency {f('latency_s')} | "
      f"rtf {f('rtf')} | dec_us {f('decoder_us_per_step')} | wg_us {f('waveglow_us_per_audio_s')} | "
      f"vb {f('vocoder_batch_mean')} | torch {r.get('torch')}")
PY
  tar -C /tmp/bench -cf "$OUT/bench.tar" .
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$log"
echo "== pytest" >> "$log"
timeout 150 python3 -m pytest tests/gpu tests/cuda -q -x -p no:cacheprovider -o addopts="" > /tmp/pytest.txt 2>&1
echo "pytest rc $?" >> "$log"; grep -v "plugin EP" /tmp/pytest.txt | grep -v "^  File\|^    " | head -60 >> "$log"
# Most wanted first: the whole command may be cut off, and what ran is already in $OUT.
L="--steps 602 --runs 6 --warmup 2"
S="--steps 200 --runs 2 --warmup 1"
OFF="--cuda-graphs off --max-batch 1 --vocoder-batch 1"
bench c128_batched 60 $S --concurrency 128
bench c256_batched 80 $S --concurrency 256
bench c32_novocbatch 40 $S --concurrency 32 --vocoder-batch 1
bench c1_graphs 60 $L --compare torch
bench c32_batched 50 $S --concurrency 32
bench c128_before 100 $S --concurrency 128 $OFF
echo finished
