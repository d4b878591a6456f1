"""Command line of the Piper teacher (``python -m training.teacher ...``); see training/teacher.py.

phonemize  corpus texts -> Piper phoneme ids (here: needs the ``teacher`` extra)
pack       the Piper model -> float16 parts + config (here: needs the ``teacher`` extra)
unpack     float16 parts -> float32 model (anywhere with ``onnx``)
make       phoneme ids + model -> dataset shards (anywhere with onnxruntime and torch; on CUDA, the CPU
           or both at once)
bench      real-time factor of the model on this CPU
check      the rebuilt model's audio against the original's (noise scales 0: deterministic)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from training.corpus_extra import EXTRA, read_extra
from training.data import CORPUS, DATA, Dataset, Row, cuda_available, make, read_corpus, select
from training.espeak import SAMPLE_RATE
from training.teacher import (
    CARRY,
    MODEL,
    PHONEMES,
    PiperTeacher,
    check_config,
    load_phonemes,
    model_files,
    pack,
    phonemize,
    save_phonemes,
    teacher_providers,
    text_key,
    unpack,
)
from training.teacher_pool import describe, slots_folder, tally

log = logging.getLogger("training.teacher")


def corpus_rows(corpus: Path = CORPUS, extra: Path | None = EXTRA) -> list[Row]:
    """LJSpeech's rows (their 300 held out as training.data defines them) and ours, in index order."""
    rows = read_corpus(corpus)
    if extra is not None and extra.exists():
        rows += read_extra(extra)
    return rows


def _phonemize(args: argparse.Namespace) -> None:
    rows = corpus_rows(args.corpus, args.extra)
    texts = sorted({r.text for r in rows})
    start = time.perf_counter()
    ids = phonemize(texts)
    save_phonemes(args.out, texts, ids)
    log.info("%d texts -> %s (%.0f kB) in %.0f s; %d Piper sentences, %d ids", len(texts), args.out,
             args.out.stat().st_size / 1e3, time.perf_counter() - start, sum(len(s) for s in ids),
             sum(len(x) for s in ids for x in s))


def stage_parts(src: Path, out: Path, parts: list[int], with_phonemes: bool, extra: list[Path] | None = None) -> None:
    """Fill ``out`` with parts ``parts`` of the packed teacher, its manifest and config (a few kB).

    Carried as TEACHER_CARRY over consecutive calls on one warm machine, the parts add up in
    TEACHER_DIR there; the call that brings the last one rebuilds the model and goes on.
    """
    manifest = json.loads((src / f"{MODEL}.parts.json").read_text())
    if out.exists():
        for f in out.iterdir():
            f.unlink()
    out.mkdir(parents=True, exist_ok=True)
    names = [f"{MODEL}.parts.json", f"{MODEL}.json", *(manifest["parts"][k] for k in parts)]
    names += [PHONEMES] if with_phonemes else []
    for name in names:
        (out / name).write_bytes((src / name).read_bytes())
    for f in extra or []:
        (out / f.name).write_bytes(f.read_bytes())
        names.append(f.name)
    log.info("%s: %s (%.1f MB)", out, ", ".join(names), sum((out / n).stat().st_size for n in names) / 1e6)


def missing_phonemes(rows: list[Row], phonemes: Path) -> list[str]:
    """The texts of ``rows`` that ``phonemes`` has no ids for (the corpus changed after phonemize)."""
    table = load_phonemes(phonemes)
    return [r.text for r in rows if text_key(r.text) not in table]


def _make(args: argparse.Namespace) -> int:
    check_config(Path(str(args.model) + ".json"))
    rows = select(corpus_rows(args.corpus, args.extra), args.limit, args.max_chars)
    missing = missing_phonemes(rows, args.phonemes)
    if missing:
        log.error("%d corpus texts have no phoneme ids in %s (e.g. %r): the corpus changed after it was phonemized. "
                  "Hint: python -m training.teacher phonemize (here, with the teacher extra), and carry it",
                  len(missing), args.phonemes, missing[0][:60])
        return 2
    both = args.teacher_device == "both"
    jobs = args.jobs or max(1, (os.cpu_count() or 1) - (1 if both else 0))
    if both and not 1 <= args.cuda_jobs < jobs:
        log.error("--teacher-device both runs --cuda-jobs of the --jobs processes on CUDA and at least one on the "
                  "CPU: --cuda-jobs %d of --jobs %d does not. Hint: --teacher-device cuda, or more --jobs",
                  args.cuda_jobs, jobs)
        return 2
    with slots_folder() as slots:
        teacher = PiperTeacher(model=str(args.model), phonemes=str(args.phonemes), noise_scale=args.noise_scale,
                               noise_w=args.noise_w, length_scale=args.length_scale, provider=args.teacher_device,
                               cuda_jobs=args.cuda_jobs if both else 0, slots=str(slots))
        try:  # a CUDA provider missing or not starting: one line here, not one per worker
            if args.teacher_device in ("cuda", "both"):
                # ONNX Runtime falls back to the CPU, with a warning, where CUDA does not load
                replace(teacher, provider="cuda").session()
            else:
                teacher_providers(args.teacher_device)
        except RuntimeError as e:
            log.error("%s", e)
            return 2
        if both:
            log.info("teacher: %d processes, the first %d to speak on CUDA, the rest on the CPU", jobs, args.cuda_jobs)
        deadline = time.monotonic() + 60 * args.minutes if args.minutes else None
        device = args.device or ("cuda" if cuda_available() else "cpu")
        start = time.perf_counter()
        order_seed = None if args.shard_order == "corpus" else (
            args.seed if args.seed is not None else int(time.time()))  # another draw each call by default
        made = make(args.out, rows, teacher, jobs, args.shard_size, device, deadline, order_seed)
        log.info("teacher processes: %s", describe(tally(slots), time.perf_counter() - start))
    if made is None:
        return 4
    data = Dataset.load(args.out, with_audio=False)
    log.info("%s: %s", args.out, data.describe())
    return 0


def _bench(args: argparse.Namespace) -> None:
    rows = [r for r in corpus_rows(args.corpus, None) if r.split == "train"][: args.sentences]
    teacher = PiperTeacher(model=str(args.model), phonemes=str(args.phonemes), threads=args.threads)
    teacher.speak(rows[0].text)  # load and warm up
    start, cpu0 = time.perf_counter(), time.process_time()
    seconds = sum(teacher.speak(r.text).size for r in rows) / SAMPLE_RATE
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    print(json.dumps({"sentences": len(rows), "audio_s": round(seconds, 1), "wall_s": round(wall, 2),
                      "cpu_s": round(cpu, 2), "threads": args.threads, "rtf": round(seconds / wall, 1),
                      "rtf_per_cpu_second": round(seconds / cpu, 1), "cpu_count": os.cpu_count()}))


def _check(args: argparse.Namespace) -> int:
    """Deterministic (noise 0) audio of the original and the rebuilt model on a few sentences.

    Passes when every sentence's mean absolute log-mel difference is at most ``--max-mel-diff``.
    """
    rows = [r for r in corpus_rows(args.corpus, None) if r.split == "train"][: args.sentences]
    original, _ = model_files()
    a = PiperTeacher(model=str(original), phonemes=str(args.phonemes), noise_scale=0.0, noise_w=0.0)
    b = PiperTeacher(model=str(args.model), phonemes=str(args.phonemes), noise_scale=0.0, noise_w=0.0)
    # For scale: the original against itself at Piper's default noise_scale (durations kept fixed).
    c = PiperTeacher(model=str(original), phonemes=str(args.phonemes), noise_scale=0.667, noise_w=0.0)
    worst_snr, worst_mel, noise_mel = float("inf"), 0.0, []
    from training.mel import MelSpectrogram, int16_to_float

    mel = MelSpectrogram()

    def log_mel(clip: np.ndarray) -> np.ndarray:
        return np.asarray(mel(int16_to_float(clip)[None])[0].numpy())

    for r in rows:
        x, y = a.speak(r.text), b.speak(r.text)
        if x.size != y.size:
            log.error("lengths differ: %d vs %d samples on %r", x.size, y.size, r.text[:50])
            return 1
        xf, yf = x.astype(np.float64), y.astype(np.float64)
        snr = 10 * np.log10(np.sum(xf**2) / max(np.sum((xf - yf) ** 2), 1e-9))
        diff = float(np.abs(log_mel(x) - log_mel(y)).mean())
        n1, n2 = c.speak(r.text), c.speak(r.text)
        noise = float(np.abs(log_mel(n1) - log_mel(n2)).mean()) if n1.size == n2.size else float("nan")
        worst_snr, worst_mel = min(worst_snr, snr), max(worst_mel, diff)
        noise_mel.append(noise)
        print(f"{x.size / SAMPLE_RATE:5.2f} s  SNR {snr:5.1f} dB  mean |log mel diff| {diff:.4f} "
              f"(two default-noise runs: {noise:.4f})  {r.text[:40]}")
    print(f"worst of {len(rows)} sentences: SNR {worst_snr:.1f} dB, mean |log mel diff| {worst_mel:.4f}; "
          f"two runs of the original at noise_scale 0.667 differ by {np.nanmean(noise_mel):.4f} on average")
    return 0 if worst_mel <= args.max_mel_diff else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.teacher", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def corpus_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--corpus", type=Path, default=CORPUS)
        s.add_argument("--extra", type=Path, default=EXTRA, help="our sentences (training/corpus_extra.py)")

    s = sub.add_parser("phonemize", help="corpus texts -> Piper phoneme ids (needs the teacher extra)")
    corpus_args(s)
    s.add_argument("--out", type=Path, default=CARRY / PHONEMES)
    s = sub.add_parser("pack", help="the Piper model as float16 parts (needs the teacher extra)")
    s.add_argument("--out", type=Path, default=CARRY)
    s.add_argument("--parts", type=int, default=0, help="number of parts (default: as few as fit 15 MiB each)")
    s = sub.add_parser("unpack", help="float16 parts -> float32 model; exit 3 while parts are missing")
    s.add_argument("--src", type=Path, default=CARRY)
    s.add_argument("--out", type=Path, default=Path("/tmp/rtvoice-teacher"))
    s = sub.add_parser("make", help="phoneme ids + model -> dataset shards, in --jobs processes (exit 4: incomplete)")
    corpus_args(s)
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--phonemes", type=Path, default=CARRY / PHONEMES)
    s.add_argument("--out", type=Path, default=DATA)
    s.add_argument("--jobs", type=int, help="processes that run Piper (default: the CPU count; with "
                   "--teacher-device both, one less: this process computes the mels and writes the shards)")
    s.add_argument("--limit", type=int, help="tiny run: this many training sentences (and a tenth held out)")
    s.add_argument("--max-chars", type=int)
    s.add_argument("--shard-size", type=int, default=64)
    s.add_argument("--device", help="where mels are computed (default: cuda if available)")
    s.add_argument("--teacher-device", choices=("cpu", "cuda", "both"), default="cpu",
                   help="where ONNX Runtime runs Piper (cuda: onnxruntime-gpu; use a few --jobs; both: "
                        "--cuda-jobs of the --jobs processes on CUDA, the rest on the CPU, on the same shard queue)")
    s.add_argument("--cuda-jobs", type=int, default=4, help="with --teacher-device both: how many of the --jobs "
                   "processes run on CUDA (default 4)")
    s.add_argument("--minutes", type=float, help="stop making shards after this long (exit 4: the corpus is "
                   "incomplete; finished shards stay, the next run makes the rest)")
    s.add_argument("--shard-order", choices=("corpus", "shuffled"), default="corpus",
                   help="the order the missing shards are made in: corpus order, or shuffled (a time-boxed call "
                        "then trains on a draw from the whole corpus, not always its first shards)")
    s.add_argument("--seed", type=int, help="with --shard-order shuffled: the shuffle's seed (default: the clock, "
                   "so each call draws other shards; logged)")
    s.add_argument("--noise-scale", type=float, default=0.667)
    s.add_argument("--noise-w", type=float, default=0.8)
    s.add_argument("--length-scale", type=float, default=1.0)
    s = sub.add_parser("stage", help="copy some parts (and the small files) into a folder to carry in one call, "
                       "when the whole teacher does not fit beside the tree")
    s.add_argument("--src", type=Path, default=CARRY)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--part", type=int, action="append", default=[], help="part number (repeatable)")
    s.add_argument("--with-phonemes", action="store_true", help="add phonemes.npz (0.66 MB) too")
    s.add_argument("--with", dest="extra_files", type=Path, action="append", default=[],
                   help="another file to stage (e.g. training/carry/warm/tacotron2.pt; unpack copies it to "
                        "TEACHER_DIR)")
    s = sub.add_parser("verify", help="every corpus text has phoneme ids (exit 1 if not): run before a GPU call")
    corpus_args(s)
    s.add_argument("--phonemes", type=Path, default=CARRY / PHONEMES)
    for name in ("bench", "check"):
        s = sub.add_parser(name, help=(_bench if name == "bench" else _check).__doc__ or name)
        corpus_args(s)
        s.add_argument("--model", type=Path, default=None, help="default: the installed wheel's model")
        s.add_argument("--phonemes", type=Path, default=CARRY / PHONEMES)
        s.add_argument("--sentences", type=int, default=20)
        s.add_argument("--threads", type=int, default=1)
        s.add_argument("--max-mel-diff", type=float, default=0.05,
                       help="check: largest mean |log mel difference| (nats) that passes")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "phonemize":
        _phonemize(args)
    elif args.cmd == "pack":
        model, config = model_files()
        check_config(config)
        pack(model, config, args.out, args.parts)
    elif args.cmd == "unpack":
        return 0 if unpack(args.src, args.out) is not None else 3
    elif args.cmd == "make":
        return _make(args)
    elif args.cmd == "stage":
        stage_parts(args.src, args.out, args.part, args.with_phonemes, args.extra_files)
    elif args.cmd == "verify":
        missing = missing_phonemes(corpus_rows(args.corpus, args.extra), args.phonemes)
        print(f"{len(missing)} corpus texts lack phoneme ids in {args.phonemes}" + (f", e.g. {missing[0]!r}"
                                                                                   if missing else ""))
        return 1 if missing else 0
    else:
        args.model = args.model or model_files()[0]
        if args.cmd == "bench":
            _bench(args)
            return 0
        return _check(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
