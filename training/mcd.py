"""Mel-cepstral distortion of a voice against the Piper teacher, DTW-aligned, in dB (issue 22).

The spectral distance to the teacher's audio is the measure the natural voice can optimize
(its naturalness is judged elsewhere by a predictor we do not have). Each held-out sentence
is spoken by both, and ``mel-cepstral-distance`` (Kubichek's MCD; MIT, PyPI) compares the two
clips with its defaults: 32 ms Hann windows every 8 ms, 20 mel bands, coefficients 1-16,
frames aligned by dynamic time warping on the mel spectrogram. The report gives the mean
over sentences, and the library's alignment penalty::

    python -m training.mcd --voice DIR [--limit N]      # -> training/eval/mcd-DIRNAME.json
    python -m training.mcd --teacher-floor [--limit N]  # the teacher against another noise draw of itself
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.data import CORPUS, read_heldout
from training.espeak import SAMPLE_RATE
from training.evaluate import REPORTS
from training.teacher import CARRY, PHONEMES, PiperTeacher, model_files

log = logging.getLogger("training.mcd")


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """int16 (or float in [-1, 1]) mono samples at 22050 Hz as a WAV file."""
    if samples.dtype != np.int16:
        samples = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.tobytes())
    return path


def mcd(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(MCD in dB, alignment penalty) of two clips, by the library's defaults."""
    try:
        from mel_cepstral_distance import compare_audio_files
    except ImportError as exc:
        raise SystemExit(f"{exc}. Hint: pip install -e '.[teacher]'") from exc
    with tempfile.TemporaryDirectory() as tmp:
        d, penalty = compare_audio_files(write_wav(Path(tmp) / "a.wav", a), write_wav(Path(tmp) / "b.wav", b))
    return float(d), float(penalty)


DEFINITION = ("mel-cepstral-distance 0.0.4 compare_audio_files defaults (Kubichek; 32 ms Hann / 8 ms hop, 20 mel "
              "bands, coefficients 1-16, DTW on mel)")


def measure(rows: Sequence[Any], other: Callable[[Any], np.ndarray], teacher: Callable[[str], np.ndarray]
            ) -> dict[str, Any]:
    """MCD of ``other(row)`` against ``teacher(row.text)`` for each held-out row, and the means.

    ``other`` takes the row (not its text), so a caller can hand over audio it already has.
    A clip the library cannot measure (silent, empty, or shorter than one window: it raises or
    returns NaN) is kept as null and counted in ``failed``: a broken candidate voice is
    what the judge is for, and one bad clip must not lose the other sentences. The means are
    over the measured clips, null when there are none.
    """
    per: list[dict[str, Any]] = []
    for n, row in enumerate(rows, 1):
        a, b = other(row), teacher(row.text)
        try:
            d, penalty = mcd(a, b)
            why = "" if np.isfinite(d) and np.isfinite(penalty) else f"not finite: {d}, {penalty}"   # an empty clip
        except (ValueError, IndexError) as exc:   # silent (ValueError), or shorter than a frame (IndexError)
            why = f"{type(exc).__name__}: {exc}"
        if why:
            log.warning("%4d #%-5d MCD not measurable (%s), recorded as null: %s", n, row.index, why, row.text[:60])
            per.append({"index": row.index, "mcd_db": None, "penalty": None, "error": why})
            continue
        per.append({"index": row.index, "mcd_db": round(d, 3), "penalty": round(penalty, 4)})
        print(f"{n:4d} #{row.index:<5d} MCD {d:6.2f} dB  penalty {penalty:.3f}  {row.text[:60]}", flush=True)
    done = [r for r in per if r["mcd_db"] is not None]
    values = np.array([r["mcd_db"] for r in done])
    return {"sentences": len(per), "failed": len(per) - len(done),
            "mcd_db": float(values.mean()) if done else None,
            "median_db": float(np.median(values)) if done else None,
            "penalty": float(np.mean([r["penalty"] for r in done])) if done else None,
            "definition": DEFINITION, "per_sentence": per}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.mcd", description=__doc__.split("\n\n")[0])
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--voice", type=Path, help="rtvoice voice folder")
    who.add_argument("--teacher-floor", action="store_true", help="the teacher against another draw of itself")
    p.add_argument("--limit", type=int, help="only the first N held-out sentences")
    p.add_argument("--phonemes", type=Path, default=CARRY / PHONEMES)
    p.add_argument("--out", type=Path, default=REPORTS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = read_heldout(CORPUS)[: args.limit]
    teacher = PiperTeacher(model=str(model_files()[0]), phonemes=str(args.phonemes))
    if args.teacher_floor:
        name, other = "teacher-floor", lambda row: teacher.speak(row.text)
    else:
        from rtvoice import Voice

        voice = Voice.load(args.voice, backend="onnxruntime", device="cpu")
        name = f"mcd-{args.voice.name}"

        def other(row: Any) -> np.ndarray:
            return np.concatenate([c.samples for c in voice.synthesize(row.text)])

    started = time.perf_counter()
    measured = measure(rows, other, teacher.speak)
    per = measured.pop("per_sentence")
    report: dict[str, Any] = {"kind": "mcd", "name": name, "voice": str(args.voice) if args.voice else None,
                              "teacher": teacher.settings(), **measured,
                              "elapsed_s": round(time.perf_counter() - started, 1),
                              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "per_sentence": per}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    if report["mcd_db"] is None:
        print(f"{name}: no clip measurable, {report['failed']} of {len(per)} failed")
    else:
        print(f"{name}: MCD {report['mcd_db']:.2f} dB (median {report['median_db']:.2f}) over "
              f"{len(per) - report['failed']} of {len(per)} sentences")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
