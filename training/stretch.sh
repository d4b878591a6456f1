#!/usr/bin/env bash
# One GPU call of the default voice's training: set up, make the data, train, send back.
#
#   bash training/stretch.sh MODEL MINUTES [extra training flags...]
#
# MODEL is tacotron2 or waveglow; MINUTES is the wall time of the WHOLE command (setup and
# data included: the training gets what is left, less a margin), e.g. 9 under a 10-minute
# limit. Needs training/carry/ (bash training/fetch_espeak.sh, here) carried along.
#
# Checkpoints: the run trains in $RUN (/tmp/rtvoice-run, kept while the machine stays warm),
# starting from whichever of training/checkpoints/ and $RUN holds the later iteration, so a
# warm machine never steps back to an older copy. When it ends, MODEL's files (checkpoint,
# optimizer state, PNGs, log: at most 5 files, each under 16 MiB) are copied to $OUT, if set.
# Copy them into training/checkpoints/ before the next call, and commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
model="${1:?usage: training/stretch.sh tacotron2|waveglow MINUTES [flags]}"
minutes="${2:?usage: training/stretch.sh tacotron2|waveglow MINUTES [flags]}"
shift 2
case "$model" in tacotron2|waveglow) ;; *) echo "error: MODEL is tacotron2 or waveglow, not $model" >&2; exit 2;; esac
export PYTHONUNBUFFERED=1

tools=/tmp/rtvoice-tools
RUN="${RUN:-/tmp/rtvoice-run}"
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
newest="$(python3 -m training.checkpoint newest "$model" training/checkpoints "$RUN")"
if [ "$newest" = "training/checkpoints" ]; then
  rm -f "$RUN/$model".*
  cp training/checkpoints/"$model".* "$RUN"/ 2>/dev/null || true
fi

train_minutes=$(python3 -c "print(round(max(0.5, ($start + $minutes * 60 - $(date +%s) - 15) / 60), 2))")
echo "training $model for $train_minutes minutes (of $minutes for the whole command)"
status=0
python3 -m "training.train_$model" --minutes "$train_minutes" --resume --data "$DATA" --out "$RUN" "$@" || status=$?

if [ -n "${OUT:-}" ]; then
  cp "$RUN/$model".pt* "$RUN/$model".optimizer.pt* "$RUN/${model}"_*.png "$RUN/$model.log" "$OUT"/ 2>/dev/null || true
  ls -la "$OUT"
fi
echo "stretch done in $(( $(date +%s) - start )) s (training exit status $status)"
exit "$status"
