#!/usr/bin/env bash
# One GPU call of the default voice's training: set up, make the data, train, send back.
#
#   bash training/stretch.sh RUNS MINUTES [extra training flags...]
#   TEACHER=piper bash training/stretch.sh RUNS MINUTES      # the natural voice (issue 22; see below)
#
# RUNS names what trains, at once, in parallel processes on the one GPU: tacotron2,
# waveglow, both (= "tacotron2 waveglow"), or a space-separated list of MODEL[:VARIANT],
# e.g. "waveglow waveglow:stft" to compare two WaveGlow settings side by side. MINUTES is
# the wall time of the WHOLE command (setup and data included: the training gets what is
# left, less a margin), e.g. 9 under a 10-minute limit. Needs training/carry/
# (bash training/fetch_espeak.sh, here) carried along.
#
# Why parallel: Tacotron 2's step-by-step decoder loop is launch-bound and leaves most of
# the GPU idle, which WaveGlow's convolutions fill; a small WaveGlow leaves room for another.
# GTA=1 trains WaveGlow on Tacotron 2's teacher-forced mels instead of the teacher's (see below).
# Flags: MODEL_ARGS (TACOTRON2_ARGS, WAVEGLOW_ARGS) apply to every run of that model,
# MODEL_VARIANT_ARGS (e.g. WAVEGLOW_STFT_ARGS) to one variant; command-line flags only
# when a single run trains.
#
# Checkpoints: a run trains in $RUN (/tmp/rtvoice-run, kept while the machine stays warm),
# a variant in $RUN/VARIANT, starting from whichever of training/checkpoints/ and that
# folder holds the later iteration, so a warm machine never steps back to an older copy (a
# variant with no checkpoint yet also considers $RUN's, so it branches off the calls before).
# When it ends, each run's checkpoint and optimizer state (each file under 16 MiB) go to
# $OUT (a variant's to $OUT/VARIANT), if set, with its logs and PNGs packed into
# report.tar there (the device returns at most 8 files, 64 MiB in all: past OUT_LIMIT_BYTES,
# 63 MiB, optimizer states stay behind, the last run's first). Land the run you keep with
# bash training/land.sh FILES_AT[/VARIANT], and commit.
#
# TEACHER=piper (issue 22; training/README.md, "The natural voice"): the teacher is Piper's
# en_US-joe-medium, carried as float16 parts in training/carry/teacher (TEACHER_CARRY) and rebuilt
# in TEACHER_DIR (/tmp/rtvoice-teacher); the corpus is synthesized into training/data-piper with
# TEACHER_JOBS onnxruntime processes for at most TEACHER_MINUTES. TEACHER_DEVICE auto: where a CUDA
# session of ONNX Runtime opens, both (TEACHER_CUDA_JOBS, 4, on the GPU and the cores left but one,
# 11 of 16, on the CPU, all taking shards from one queue), else nproc on the CPU; cuda or cpu force
# one device. Why both: on an H100 machine (2026-12-07) 4 CUDA processes made 41 shards of 64
# sentences in 3 minutes, fewer a minute than 12 CPU processes had made there (132 in 7.3), while 12
# cores sat idle. The mixed mode has not yet run on a GPU (its log line "teacher processes:" gives
# each device's share). Runs live in
# /tmp/rtvoice-natural and resume training/checkpoints-natural; weights go back as float16
# (HALF_OUT=1). The missing shards are made in a shuffled order (SHARD_ORDER=shuffled; corpus: in
# corpus order), so a call that makes only part of the corpus trains on a draw from all of it, not on
# the first third of LJSpeech every session. TEACHER_BACKGROUND=1 goes on making an incomplete corpus
# on the CPU while the models train, and they take each new shard in (--follow-data; see below).
# SYNTH_ONLY=1 makes the corpus and trains nothing. PARTIAL=1 (default) trains on the
# shards finished when TEACHER_MINUTES runs out or a teacher process dies (make exits 4 for both,
# with either teacher); PARTIAL=0 then trains nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
usage="usage: training/stretch.sh 'tacotron2|waveglow|both|MODEL[:VARIANT] ...' MINUTES [flags]"
spec="${1:?$usage}"
minutes="${2:?$usage}"
shift 2
[ "$spec" = both ] && spec="tacotron2 waveglow"
read -r -a runs <<< "$spec"
for r in "${runs[@]}"; do
  case "${r%%:*}" in tacotron2|waveglow) ;; *) echo "error: no model ${r%%:*} in '$spec'" >&2; exit 2 ;; esac
  [[ "$r" != *:* || "${r#*:}" =~ ^[a-z0-9]+$ ]] || { echo "error: variant names are [a-z0-9]+, not '${r#*:}'" >&2; exit 2; }
done
dups=$(printf '%s\n' "${runs[@]}" | sort | uniq -d)
[ -z "$dups" ] || { echo "error: '$dups' named twice" >&2; exit 2; }
[ ${#runs[@]} -eq 1 ] || [ $# -eq 0 ] || { echo "error: with several runs, pass flags in MODEL_ARGS / MODEL_VARIANT_ARGS" >&2; exit 2; }
export PYTHONUNBUFFERED=1

tools=/tmp/rtvoice-tools
bg_pid=""  # TEACHER_BACKGROUND's corpus maker, while it runs
follow_args=()
# TEACHER=piper: the natural voice of issue 22 (training/teacher.py). Its runs, committed-checkpoint
# folder and data are apart from espeak-ng's, so neither ever resumes the other's.
TEACHER="${TEACHER:-espeak}"
case "$TEACHER" in
  espeak) run_default=/tmp/rtvoice-run checkpoints_default=training/checkpoints data_default=training/data ;;
  piper) run_default=/tmp/rtvoice-natural checkpoints_default=training/checkpoints-natural data_default=training/data-piper ;;
  *) echo "error: TEACHER is espeak or piper, not '$TEACHER'" >&2; exit 2 ;;
esac
RUN="${RUN:-$run_default}"
CHECKPOINTS="${CHECKPOINTS:-$checkpoints_default}"  # where committed (landed) checkpoints are read from
DATA="${DATA:-$data_default}"  # DATA and DATA_ARGS (e.g. "--limit 40 --max-chars 50") serve tiny checks
if [ ! -d "$tools/site" ]; then
  compgen -G "training/carry/wheels/*.whl" > /dev/null || { echo "error: training/carry/wheels is missing. Hint: run bash training/fetch_espeak.sh where apt-get works, and carry training/carry (or, for TEACHER=piper, training/carry/wheels)" >&2; exit 2; }
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-index --no-deps --no-compile --target "$tools/site" training/carry/wheels/*.whl
fi
if [ "$TEACHER" = espeak ] && [ ! -x "$tools/espeak/espeak-ng" ]; then
  [ -f training/carry/espeak.tar.xz ] || { echo "error: training/carry/ is missing. Hint: run bash training/fetch_espeak.sh where apt-get works, and carry training/carry" >&2; exit 2; }
  mkdir -p "$tools"
  tar -C "$tools" -xJf training/carry/espeak.tar.xz
fi
# /tmp/site-ort: onnxruntime-gpu, where tools/gpu/ort_stage.py installed it on this machine (the
# teacher then runs on the GPU), ahead of the image's CPU-only onnxruntime.
site_ort=""
[ -d /tmp/site-ort/onnxruntime ] && site_ort="/tmp/site-ort:"
export PYTHONPATH="$site_ort$tools/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"

# shard_counts -> "MADE PLANNED" from $DATA's manifest; nothing where it lists no shard (or is missing).
shard_counts() {
  [ -f "$DATA/manifest.json" ] || return 0
  python3 -c "import json, sys; m = json.load(open(sys.argv[1])); print(len(m['shards']), m['planned']) if m['shards'] else None" "$DATA/manifest.json" 2>/dev/null || true
}
# Exit 4 from make (training.data, training.teacher): the corpus is incomplete (out of time, or a
# teacher process died), its finished shards listed in a manifest with "complete": false. PARTIAL=1
# (the default) trains on them; the next call on the warm machine still makes the rest first.
partial_corpus() {
  local counts=""
  [ "${PARTIAL:-1}" != 1 ] || counts="$(shard_counts)"
  if [ -z "$counts" ]; then echo "corpus incomplete ($1): call again on the warm machine (this call trained nothing)"; exit 0; fi
  echo "corpus incomplete ($1): training on ${counts% *} of ${counts#* } shards (PARTIAL=0 trains nothing)"
}

if [ "$TEACHER" = piper ]; then
  # The teacher travels as float16 parts (python -m training.teacher pack, here); parts carried by
  # earlier calls wait in TEACHER_DIR while the machine stays warm. The corpus is made in resumable
  # shards until TEACHER_MINUTES into the call (default: all but 2 minutes of it); a corpus still
  # incomplete then trains on its finished shards (PARTIAL=0: nothing), and the next call on the
  # warm machine makes the rest first.
  TEACHER_DIR="${TEACHER_DIR:-/tmp/rtvoice-teacher}"
  rc=0
  python3 -m training.teacher unpack --src "${TEACHER_CARRY:-training/carry/teacher}" --out "$TEACHER_DIR" || rc=$?
  if [ "$rc" = 3 ]; then echo "teacher incomplete: carry the missing parts next (this call trained nothing)"; exit 0; fi
  [ "$rc" = 0 ] || exit "$rc"
  synth_minutes="${TEACHER_MINUTES:-$(python3 -c "print(max(0.5, $minutes - 2 - ($(date +%s) - $start) / 60))")}"
  # TEACHER_DEVICE (auto): where ONNX Runtime has CUDA (onnxruntime-gpu staged by tools/gpu/ort_stage.py,
  # PYTHONPATH=/tmp/site-ort), both: TEACHER_CUDA_JOBS (4) processes on the GPU and the cores left but
  # one on the CPU, taking shards from one queue; else the CPU alone, nproc processes. cuda (4) and
  # cpu can be forced. TEACHER_JOBS: the processes in all.
  teacher_device="${TEACHER_DEVICE:-auto}"
  if [ "$teacher_device" = auto ]; then  # both where the CUDA provider starts on the model: onnxruntime-gpu
    # lists it even where its CUDA libraries do not load, and would then run on the CPU
    teacher_device=cpu
    python3 -c "import sys; from training.teacher import PiperTeacher; PiperTeacher(model=sys.argv[1], phonemes='', provider='cuda').session()" \
      "$TEACHER_DIR/joe.onnx" > /dev/null 2>&1 && teacher_device=both
  fi
  cuda_jobs="${TEACHER_CUDA_JOBS:-4}"
  case "$teacher_device" in
    both) teacher_jobs="${TEACHER_JOBS:-$(( cuda_jobs + ($(nproc) - cuda_jobs - 1 > 1 ? $(nproc) - cuda_jobs - 1 : 1) ))}"
          echo "teacher: Piper on cuda and cpu, $teacher_jobs processes ($cuda_jobs on cuda)" ;;
    cuda) teacher_jobs="${TEACHER_JOBS:-$cuda_jobs}"; echo "teacher: Piper on cuda, $teacher_jobs processes" ;;
    *) teacher_jobs="${TEACHER_JOBS:-$(nproc)}"; echo "teacher: Piper on $teacher_device, $teacher_jobs processes" ;;
  esac
  # teacher_make DEVICE JOBS MINUTES [FLAGS...]: make $DATA's missing shards with Piper until MINUTES,
  # run under the command prefix in teacher_prefix (e.g. nice), if any.
  teacher_prefix=()
  teacher_make() {
    # shellcheck disable=SC2086
    "${teacher_prefix[@]}" python3 -m training.teacher make --model "$TEACHER_DIR/joe.onnx" --phonemes "$TEACHER_DIR/phonemes.npz" \
      --teacher-device "$1" --jobs "$2" --out "$DATA" --minutes "$3" --shard-order "${SHARD_ORDER:-shuffled}" \
      "${@:4}" ${DATA_ARGS:-}
  }
  rc=0
  teacher_make "$teacher_device" "$teacher_jobs" "$synth_minutes" --cuda-jobs "$cuda_jobs" || rc=$?
  if [ "$rc" = 4 ]; then partial_corpus "$synth_minutes minutes ran out, or a teacher process died: see above"
  elif [ "$rc" != 0 ]; then exit "$rc"; fi
  [ "${SYNTH_ONLY:-0}" = 1 ] && { echo "SYNTH_ONLY=1: the corpus is made; nothing trains"; exit 0; }
  # TEACHER_BACKGROUND=1: a corpus still incomplete goes on being made on the CPU while the models
  # train, in TEACHER_BACKGROUND_JOBS processes (all cores but 4, at nice 10, so the trainers keep
  # theirs), until a minute before training ends; the trainers take in each new shard
  # (--follow-data FOLLOW_SECONDS). Why: the first minutes of a cold call made 21-36 of the 244
  # shards, and Tacotron 2 then went over those 1,300-2,300 sentences 55-100 times.
  if [ "$rc" = 4 ] && [ "${TEACHER_BACKGROUND:-0}" = 1 ]; then
    bg_jobs="${TEACHER_BACKGROUND_JOBS:-$(( $(nproc) > 5 ? $(nproc) - 4 : 1 ))}"
    bg_minutes="$(python3 -c "print(round(($start + $minutes * 60 - $(date +%s) - 15) / 60 - 1, 2))")"
    if python3 -c "import sys; sys.exit(not $bg_minutes >= 0.5)"; then
      echo "teacher: the rest of the corpus on the CPU beside the training, $bg_jobs processes for $bg_minutes minutes"
      ( teacher_prefix=(nice -n 10); teacher_make cpu "$bg_jobs" "$bg_minutes" 2>&1 | sed -u "s/^/[teacher] /" ) &
      bg_pid=$!
      follow_args=(--follow-data "${FOLLOW_SECONDS:-30}")
    fi
  fi
else
  "$tools/espeak/espeak-ng" --version
  rc=0
  # shellcheck disable=SC2086
  python3 -m training.data make --espeak "$tools/espeak/espeak-ng" --jobs "$(nproc)" --out "$DATA" ${DATA_ARGS:-} || rc=$?
  if [ "$rc" = 4 ]; then partial_corpus "a teacher process died: see above"
  elif [ "$rc" != 0 ]; then exit "$rc"; fi
fi

# run_dir RUN -> where it trains; out_dir RUN -> where its files go back
run_dir() { [[ "$1" == *:* ]] && echo "$RUN/${1#*:}" || echo "$RUN"; }
out_dir() { [[ "$1" == *:* ]] && echo "$OUT/${1#*:}" || echo "$OUT"; }

# A run resumes its own folder, unless the committed checkpoint is later. A variant new to this
# machine starts from the later of the committed checkpoint and the machine's main run: on a warm
# machine it branches off the calls before instead of stepping back to the committed one. (The main
# run is set up first, so variants named beside it start where it starts.)
for r in "${runs[@]}"; do
  m="${r%%:*}" dir="$(run_dir "$r")"
  mkdir -p "$dir"
  sources=("$CHECKPOINTS")
  if [ "$dir" != "$RUN" ] && [ -z "$(python3 -m training.checkpoint newest "$m" "$dir" 2>/dev/null)" ]; then
    sources+=("$RUN")
  fi
  newest="$(python3 -m training.checkpoint newest "$m" "${sources[@]}" "$dir")"
  if [ -n "$newest" ] && [ "$newest" != "$dir" ]; then
    rm -f "$dir/$m".*
    cp "$newest/$m".* "$dir"/ 2>/dev/null || true
  fi
done

# GTA=1: WaveGlow trains on Tacotron 2's teacher-forced mels (training/gta.py), made into $DATA-gta
# from the newest Tacotron 2 checkpoint at the call's start (GTA_BATCH sentences a batch). Tacotron 2
# starts training first, so making them costs only WaveGlow's minutes.
make_gta() {
  local t2
  t2="$(python3 -m training.checkpoint newest tacotron2 "$CHECKPOINTS" "$RUN")"
  [ -n "$t2" ] || { echo "error: GTA=1 needs a tacotron2 checkpoint in $CHECKPOINTS or $RUN" >&2; return 2; }
  python3 -m training.gta --checkpoints "$t2" --data "$DATA" --out "$DATA-gta" --overwrite --batch-size "${GTA_BATCH:-128}"
}

# CUDA graphs are opt-in (--cuda-graphs on in MODEL_ARGS; see training/README.md for why): Tacotron 2's
# decoder loop (training/decoder_graphs.py) and WaveGlow's whole step (training/waveglow_graph.py).
# When asked for, first check, in seconds, that graphed and eager train alike here; if not, that
# model trains eagerly.
wants_graphs() { [[ " ${runs[*]} " == *" $1"* && " $2 " == *" --cuda-graphs on "* ]]; }
if python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  if wants_graphs tacotron2 "${TACOTRON2_ARGS:-}" && ! python3 -m training.decoder_graphs; then
    echo "warning: the CUDA-graph decoder loop failed its check; Tacotron 2 trains eagerly (--cuda-graphs off)"
    TACOTRON2_ARGS="${TACOTRON2_ARGS:-} --cuda-graphs off"
  fi
  if wants_graphs waveglow "${WAVEGLOW_ARGS:-}" && ! python3 -m training.waveglow_graph; then
    echo "warning: the CUDA-graph WaveGlow step failed its check; WaveGlow trains eagerly (--cuda-graphs off)"
    WAVEGLOW_ARGS="${WAVEGLOW_ARGS:-} --cuda-graphs off"
  fi
fi

minutes_left() { python3 -c "print(round(max(0.5, ($start + $minutes * 60 - $(date +%s) - 15) / 60), 2))"; }
echo "training ${runs[*]} in the $(minutes_left) minutes left (of $minutes for the whole command)"
# Tacotron 2's runs start first: a WaveGlow run may first wait for GTA mels.
mapfile -t ordered < <(printf '%s\n' "${runs[@]}" | grep '^tacotron2' || true; printf '%s\n' "${runs[@]}" | grep '^waveglow' || true)
pids=()
gta_data=""
failed=0
for r in "${ordered[@]}"; do
  m="${r%%:*}"
  var="${m^^}_ARGS"
  # shellcheck disable=SC2206
  extra=(${!var:-})
  if [[ "$r" == *:* ]]; then
    var="${m^^}_${r#*:}"; var="${var^^}_ARGS"
    # shellcheck disable=SC2206
    extra+=(${!var:-})
  fi
  if [ "$m" = waveglow ] && [ "${GTA:-0}" = 1 ]; then
    # A failure here must not abandon the Tacotron 2 run already training: its files still go back.
    if [ -z "$gta_data" ]; then
      if make_gta; then gta_data="$DATA-gta"; else gta_data=failed; fi
    fi
    if [ "$gta_data" = failed ]; then
      echo "error: making the GTA mels failed; $r does not train" >&2
      failed=2
      continue
    fi
    extra+=(--data "$gta_data")
  fi
  train_minutes="$(minutes_left)"
  echo "$r trains for $train_minutes minutes"
  # Each trainer's lines carry its run's name, so runs at once stay readable.
  python3 -m "training.train_$m" --minutes "$train_minutes" --resume --data "$DATA" --out "$(run_dir "$r")" \
    "${follow_args[@]}" "${extra[@]}" "$@" 2>&1 | sed -u "s/^/[$r] /" &
  pids+=($!)
done
status=$failed
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
# The background teacher stops at its own deadline, a minute before the trainers' (exit 4: out of time).
[ -z "$bg_pid" ] || wait "$bg_pid" || true
if [ -n "$bg_pid" ]; then counts="$(shard_counts)"; [ -z "$counts" ] || echo "corpus now ${counts% *} of ${counts#* } shards"; fi

if [ -n "${OUT:-}" ]; then
  for r in "${runs[@]}"; do
    m="${r%%:*}" dir="$(run_dir "$r")" out="$(out_dir "$r")"
    mkdir -p "$out"
    if [ "${HALF_OUT:-$([ "$TEACHER" = piper ] && echo 1 || echo 0)}" = 1 ] && [ -n "$(ls "$dir/$m".pt* 2>/dev/null)" ]; then
      # The natural voice's weights go back as float16: both models and their optimizer states
      # then fit the 63 MiB (training/checkpoint.py save_half; a resume casts them back).
      python3 -m training.checkpoint half "$m" "$dir" "$out"
      cp "$dir/$m".optimizer.pt* "$out"/ 2>/dev/null || true
    else
      cp "$dir/$m".pt* "$dir/$m".optimizer.pt* "$out"/ 2>/dev/null || true
    fi
    report=()
    for f in "$dir/${m}"_*.png "$dir/$m.log"; do [ -f "$f" ] && report+=("$(basename "$f")"); done
    # Appending: two runs without a variant (tacotron2 and waveglow) share $OUT and its report.tar.
    [ ${#report[@]} -eq 0 ] || tar -C "$dir" -rf "$out/report.tar" "${report[@]}"
  done
  # The device sends back at most 64 MiB in all, and drops whole files past that. Weights matter
  # most: optimizer states are left behind, the last run's first, until the rest fits (a run resumed
  # without one warms up a fresh optimizer).
  limit="${OUT_LIMIT_BYTES:-$((63 * 1024 * 1024))}"
  out_bytes() { find "$OUT" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
  for (( i = ${#runs[@]} - 1; i >= 0; i-- )); do
    [ "$(out_bytes)" -gt "$limit" ] || break
    r="${runs[i]}"
    for f in "$(out_dir "$r")/${r%%:*}".optimizer.pt*; do
      [ -f "$f" ] || continue
      echo "warning: left $f out (the files sent back must stay under $limit bytes); it stays in $(run_dir "$r") while the machine is warm"
      rm -f "$f"
    done
  done
  [ "$(out_bytes)" -le "$limit" ] || echo "warning: $OUT still holds $(out_bytes) bytes, over $limit: the device will leave files out"
  ls -laR "$OUT"
fi
echo "stretch done in $(( $(date +%s) - start )) s (training exit status $status)"
exit "$status"
