#!/usr/bin/env bash
# One GPU session's measurements (ORT CUDA): see docs/benchmarks.md, "GPU: NVIDIA H200, before batching". Writes to $OUT.
set -u
cd "$(dirname "$0")/../.."
bash tools/gpu/device-run.sh true > /dev/null
export PYTHONPATH=/tmp/site:$PWD
ls /tmp/full512/waveglow.onnx > /dev/null 2>&1 || python3 build_engines.py --random full --waveglow-channels 512 --out /tmp/full512 --no-parity > /dev/null 2>&1
echo "The forms of printed letters should be beautiful, and that their arrangement on the page should be reasonable and a help to the" > /tmp/phrase.txt
B="python3 -m rtvoice bench --voice /tmp/full512 --device cuda:0 --text @/tmp/phrase.txt --steps 602"
{
echo "== pytest"; timeout 100 python3 -m pytest tests/gpu -q -p no:cacheprovider -o addopts="" 2>&1 | tail -4
echo "== bench"; timeout 150 $B --runs 6 --warmup 2 --compare torch 2>&1
echo "== seams"; timeout 150 $B --seams 2>&1
} 2>&1 | grep -v "plugin EP" > $OUT/session.txt
echo finished
