#!/usr/bin/env bash
# One GPU call of the default voice's training: set up, make the data, train, send back.
#
#   bash training/stretch.sh MODEL MINUTES [extra training flags...]
#
# MODEL is tacotron2, waveglow or both; MINUTES is the wall time of the WHOLE command (setup
# and data included: the training gets what is left, less a margin), e.g. 9 under a 10-minute
# limit. Needs training/carry/ (bash training/fetch_espeak.sh, here) carried along.
#
# `both` trains the two models at once, in two processes on the one GPU: Tacotron 2's
# step-by-step decoder loop is launch-bound and leaves most of the GPU idle, which WaveGlow's
# convolutions fill. Extra flags then go through TACOTRON2_ARGS and WAVEGLOW_ARGS (these
# also apply in the single-model modes).
#
# Checkpoints: the run trains in $RUN (/tmp/rtvoice-run, kept while the machine stays warm),
# starting from whichever of training/checkpoints/ and $RUN holds the later iteration, so a
# warm machine never steps back to an older copy. When it ends, each model's checkpoint and
# optimizer state (each file under 16 MiB) go to $OUT, if set, with the logs and PNGs packed
# into $OUT/report.tar (the device returns at most 8 files). Unpack them into
# training/checkpoints/ before the next call (bash training/land.sh FILES_AT), and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
usage="usage: training/stretch.sh tacotron2|waveglow|both MINUTES [flags]"
model="${1:?$usage}"
minutes="${2:?$usage}"
shift 2
case "$model" in
  tacotron2|waveglow) models=("$model") ;;
  both) models=(tacotron2 waveglow)
        [ $# -eq 0 ] || { echo "error: with both, pass flags in TACOTRON2_ARGS / WAVEGLOW_ARGS" >&2; exit 2; } ;;
  *) echo "error: MODEL is tacotron2, waveglow or both, not $model" >&2; exit 2 ;;
esac
export PYTHONUNBUFFERED=1

tools=/tmp/rtvoice-tools
RUN="${RUN:-/tmp/rtvoice-run}"
CHECKPOINTS="${CHECKPOINTS:-training/checkpoints}"  # where committed checkpoints are read from
DATA="${DATA:-training/data}"  # DATA and DATA_ARGS (e.g. "--limit 40 --max-chars 50") serve tiny checks
if [ ! -x "$tools/espeak/espeak-ng" ]; then
  [ -f training/carry/espeak.tar.xz ] || { echo "error: training/carry/ is missing. Hint: run bash training/fetch_espeak.sh where apt-get works, and carry training/carry" >&2; exit 2; }
  mkdir -p "$tools"
  tar -C "$tools" -xJf training/carry/espeak.tar.xz
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-index --no-deps --no-compile --target "$tools/site" training/carry/wheels/*.whl
fi
export PYTHONPATH="$tools/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$tools/espeak/espeak-ng" --version
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"

# shellcheck disable=SC2086
python3 -m training.data make --espeak "$tools/espeak/espeak-ng" --jobs "$(nproc)" --out "$DATA" ${DATA_ARGS:-}

mkdir -p "$RUN"
for m in "${models[@]}"; do
  newest="$(python3 -m training.checkpoint newest "$m" "$CHECKPOINTS" "$RUN")"
  if [ "$newest" = "$CHECKPOINTS" ]; then
    rm -f "$RUN/$m".*
    cp "$CHECKPOINTS/$m".* "$RUN"/ 2>/dev/null || true
  fi
done

train_minutes=$(python3 -c "print(round(max(0.5, ($start + $minutes * 60 - $(date +%s) - 15) / 60), 2))")
echo "training ${models[*]} for $train_minutes minutes (of $minutes for the whole command)"
pids=()
for m in "${models[@]}"; do
  var="${m^^}_ARGS"
  # shellcheck disable=SC2206
  extra=(${!var:-})
  # Each trainer's lines carry its name, so two running at once stay readable.
  python3 -m "training.train_$m" --minutes "$train_minutes" --resume --data "$DATA" --out "$RUN" \
    "${extra[@]}" "$@" 2>&1 | sed -u "s/^/[$m] /" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done

if [ -n "${OUT:-}" ]; then
  report=()
  for m in "${models[@]}"; do
    cp "$RUN/$m".pt* "$RUN/$m".optimizer.pt* "$OUT"/ 2>/dev/null || true
    for f in "$RUN/${m}"_*.png "$RUN/$m.log"; do [ -f "$f" ] && report+=("$(basename "$f")"); done
  done
  [ ${#report[@]} -eq 0 ] || tar -C "$RUN" -cf "$OUT/report.tar" "${report[@]}"
  ls -la "$OUT"
fi
echo "stretch done in $(( $(date +%s) - start )) s (training exit status $status)"
exit "$status"
