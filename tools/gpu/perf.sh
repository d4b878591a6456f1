#!/usr/bin/env bash
# Issue #7's GPU session (ORT CUDA): GPU tests, then the bench matrix for the README's
# "GPU measurements". Needs the carried onnxruntime-gpu parts in /tmp (tools/gpu/device-run.sh).
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
B="python3 -m rtvoice bench --voice /tmp/full512 --device cuda:0 --text /tmp/phrase.txt"
log=$OUT/perf.txt
# name, seconds, bench flags: one JSON per run, and the table in the log.
bench() {
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" >> "$log"
  timeout "$limit" $B "$@" --json > "/tmp/bench/$name.json" 2>> "$log"; echo "rc $? ($name)" >> "$log"
  python3 - "/tmp/bench/$name.json" >> "$log" 2>&1 <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = lambda k: r[k]["median"] if isinstance(r.get(k), dict) else r.get(k)
g = lambda k: r[k].get("p99") if isinstance(r.get(k), dict) else None
print(f"ttfa {f('time_to_first_audio_s')} p99 {g('time_to_first_audio_s')} | latency {f('latency_s')} | "
      f"rtf {f('rtf')} | dec_us {f('decoder_us_per_step')} | wg_us {f('waveglow_us_per_audio_s')} | "
      f"vb {f('vocoder_batch_mean')} | torch {r.get('torch')}")
PY
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$log"
echo "== pytest" >> "$log"
timeout 200 python3 -m pytest tests/gpu tests/cuda -q -x -p no:cacheprovider -o addopts="" 2>&1 | grep -v "plugin EP" | tail -15 >> "$log"
S="--steps 602 --runs 6 --warmup 2"
bench c1_graphs $((60)) $S --compare torch
bench c1_nographs 45 $S --cuda-graphs off
bench c1_before 45 $S --cuda-graphs off --max-batch 1 --vocoder-batch 1
S="--steps 200 --runs 2 --warmup 1"
for c in 8 32 128 256; do bench "c${c}_batched" 70 $S --concurrency $c; done
for c in 8 32; do bench "c${c}_before" 60 $S --concurrency $c --cuda-graphs off --max-batch 1 --vocoder-batch 1; done
bench c32_nographs 50 $S --concurrency 32 --cuda-graphs off
bench c32_novocbatch 50 $S --concurrency 32 --vocoder-batch 1
tar -C /tmp/bench -cf "$OUT/bench.tar" .
echo finished
