#!/usr/bin/env bash
# Ship a trained pair of checkpoints as rtvoice's default voice, in one command (issue 22).
#
#   bash training/ship_default.sh CHECKPOINTS [--dry-run] [--test] [--force] [-- EXPORT_FLAGS...]
#
# CHECKPOINTS holds tacotron2.pt and waveglow.pt (whole or in .pt.partNN parts). The voice is
# exported (python -m training.export_default, float16-stored weights, Piper as the teacher,
# 40 MB budget: EXPORT_FLAGS are appended, so a later --teacher espeak or --budget-mb wins)
# into a scratch folder first, and rtvoice/voices/default is touched only once that folder
# exists, fits its budget and has spoken its check sentence. Then its four graphs and voice.json
# replace the shipped ones; any other file in the folder (a model card, a licence) is kept
# as it is. `python -m rtvoice say` with no --voice then speaks a sentence, to show that the
# default is the new voice. Nothing is committed. If anything fails once the folder is touched
# (that sentence, or --test's tests), the previous folder is put back as it was and the script
# exits 1 with one `error:` line.
#
# Why a script: the export writes into --out in place and refuses only on size, so a failed
# or half-copied export could leave the shipped folder mixed. Here it never sees a partial one.
#
# Tracked data derived from the voice: none today (no golden audio, hashes or figures that a
# generator rewrites; the docs quote measurements by hand), so there is nothing to regenerate.
#
#   --dry-run  export and check in the scratch folder, print the size change, replace nothing
#   --test     after replacing, run the tests that load the shipped voice (about 4 min here)
#   --force    replace even where rtvoice/voices/default has uncommitted changes
#
# Runs on the repository that holds this script (PYTHONPATH is set to it, so a clone imports
# its own rtvoice, not an editable install elsewhere), under `nice -n ${NICE:-15}`.
set -euo pipefail

usage="usage: bash training/ship_default.sh CHECKPOINTS [--dry-run] [--test] [--force] [-- EXPORT_FLAGS...]"
root="$(cd "$(dirname "$0")/.." && pwd)"
voice="$root/rtvoice/voices/default"
case "${1:-}" in  # a flag in its place would be taken for a folder name
  "" | -*) echo "error: CHECKPOINTS, the folder with tacotron2.pt and waveglow.pt, comes first. $usage" >&2; exit 2 ;;
esac
ckpt="$1"
shift
dry=0 test=0 force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --test) test=1 ;;
    --force) force=1 ;;
    --) shift; break ;;
    *) echo "error: unknown flag $1. $usage" >&2; exit 2 ;;
  esac
  shift
done
extra=("$@")
[ -d "$ckpt" ] || { echo "error: no folder $ckpt. $usage" >&2; exit 2; }
ckpt="$(cd "$ckpt" && pwd)"
for name in tacotron2 waveglow; do
  [ -f "$ckpt/$name.pt" ] || [ -f "$ckpt/$name.pt.part00" ] \
    || { echo "error: no $name.pt (or $name.pt.part00) in $ckpt" >&2; exit 2; }
done
cd "$root"
if [ "$dry" = 0 ] && [ "$force" = 0 ] && [ -n "$(git status --porcelain -- rtvoice/voices/default)" ]; then
  echo "error: rtvoice/voices/default has uncommitted changes (git status); commit or pass --force" >&2
  exit 2
fi

export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
run() { nice -n "${NICE:-15}" "$@"; }
bytes() { [ -d "$1" ] && find "$1" -maxdepth 1 -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}' || echo 0; }
mb() { awk -v b="$1" 'BEGIN {printf "%.2f", b / 1e6}'; }
tracked() { { git ls-files -z | xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s+=$1} END {print s+0}'; }
source_line() {  # what voice.json says trained the voice
  python - "$1" <<'PY' 2>/dev/null || echo "(no readable voice.json)"
import json, sys
s = json.load(open(sys.argv[1]))["source"]
print(f"teacher: {s.get('teacher')}; iterations: {s.get('iterations')}")
PY
}

work="$(mktemp -d /tmp/ship-default.XXXXXX)"
replaced=0 shipped=0
finish() {  # on any exit: a voice that failed its checks after replacing gives way to the previous one
  local rc=$?
  if [ "$replaced" = 1 ] && [ "$shipped" = 0 ]; then
    if [ -d "$voice" ]; then mv "$voice" "$work/failed"; fi
    if [ ! -d "$work/previous" ] || cp -a "$work/previous" "$voice"; then
      rm -rf "$work"
      echo "error: the new voice failed its checks after replacing rtvoice/voices/default (exit $rc);" \
        "the previous folder is restored" >&2
    else
      echo "error: the new voice failed its checks (exit $rc) and restoring rtvoice/voices/default failed;" \
        "the previous folder is $work/previous" >&2
    fi
    exit 1
  fi
  rm -rf "$work"
}
trap finish EXIT
start=$SECONDS
voice_before=$(bytes "$voice")
tracked_before=$(tracked)
echo "== export $ckpt -> $work/default"
run python -m training.export_default --checkpoints "$ckpt" --out "$work/default" \
  --fp16 --budget-mb 40 --teacher piper "${extra[@]}"
new_bytes=$(bytes "$work/default")
kept=$( [ -d "$voice" ] && comm -23 <(ls "$voice" | sort) <(ls "$work/default" | sort) | tr '\n' ' ' || true)
echo "== shipped: $(source_line "$voice/voice.json")"
echo "== new:     $(source_line "$work/default/voice.json")"
[ -z "$kept" ] || echo "== kept as they are (not written by the export): $kept"

if [ "$dry" = 1 ]; then
  echo "== dry run, nothing replaced: rtvoice/voices/default $(mb "$voice_before") MB now;" \
    "the export's files $(mb "$new_bytes") MB (kept files add to that)"
  echo "== took $((SECONDS - start)) s"
  exit 0
fi

echo "== replace $voice"
if [ -d "$voice" ]; then cp -a "$voice" "$work/previous"; fi  # put back if a check below fails
replaced=1
mkdir -p "$voice"
for f in "$work"/default/*; do
  cp "$f" "$voice/.$(basename "$f").new"
done
for f in "$work"/default/*; do  # renames last, so the folder is never half old, half new for long
  mv -f "$voice/.$(basename "$f").new" "$voice/$(basename "$f")"
done

echo "== rtvoice say with no --voice"
run python -m rtvoice say "The 8:15 to Leeds is delayed by 10 minutes." --device cpu --backend onnxruntime \
  --out "$work/check.wav"
python - "$work/check.wav" "$voice" <<'EOF'
import sys
from pathlib import Path

from rtvoice.audio import read_wav
from rtvoice.voice import DEFAULT_VOICE

samples, rate = read_wav(Path(sys.argv[1]))
assert DEFAULT_VOICE.resolve() == Path(sys.argv[2]).resolve(), f"rtvoice imported from elsewhere: {DEFAULT_VOICE}"
seconds = len(samples) / rate
assert 1.0 < seconds < 8.0, f"the check sentence took {seconds:.2f} s: not a spoken sentence"
print(f"   {seconds:.2f} s at {rate} Hz from {DEFAULT_VOICE}")
EOF

voice_after=$(bytes "$voice")
tracked_after=$(tracked)
echo "== rtvoice/voices/default: $(mb "$voice_before") MB -> $(mb "$voice_after") MB" \
  "($(mb $((voice_after - voice_before))) MB)"
echo "== tracked files (working-tree sizes): $(mb "$tracked_before") MB -> $(mb "$tracked_after") MB;" \
  "a GPU call carries at most 67.11 MB (64 MiB): python -m training.carry_size"
git status --short -- rtvoice/voices/default
if [ "$test" = 1 ]; then
  echo "== the tests that load the shipped voice"
  run python -m pytest -q -p no:cacheprovider \
    tests/core/test_core_default_voice.py tests/core/test_voice_schema.py tests/core/test_rate.py \
    tests/core/test_rate_cli.py tests/core/test_chunk_growth.py tests/text/test_text_pieces.py \
    tests/text/test_ssml.py tests/text/test_text_normalize_cases.py tests/text/test_text_no_lost_words_cli.py \
    tests/text/test_text_letter_names_heard.py tests/server/test_server_no_lost_words.py \
    tests/server/test_server_voice_names.py tests/mqtt/test_mqtt_no_lost_words.py \
    tests/training/test_training_fp16_voice.py tests/cuda_backend/test_step_reference.py \
    tests/core/test_script_checks.py tests/core/test_script_reading.py tests/cuda_backend/test_cuda_engine_emulated.py \
    tests/cuda_backend/test_kernel_emulated.py tests/cuda_backend/test_cuda_gpu.py tests/export/test_fp16_graphs.py \
    tests/gpu/test_gpu_vocoder_edges.py tests/mqtt/test_mqtt_audio_parts.py
fi
shipped=1
echo "== took $((SECONDS - start)) s; commit with: git add rtvoice/voices/default &&" \
  "git commit -m '...' -- rtvoice/voices/default"
