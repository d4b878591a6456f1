"""Where a voice's word errors come from: each stage of the pipeline heard alone.

    python -m training.diagnose [--teacher espeak|piper] [--checkpoints training/checkpoints] [--limit 30]
                                [--sigmas 0.3,0.6,1.0] [--voice-sigmas 0.6] [--gl-iters 60]
                                [--out training/eval] [--name parts] [--wav [DIR]]

The whole voice's WER (training/evaluate.py) mixes two models' errors. Here the same held-out
sentences are heard through each stage alone, by the same recognizer (Whisper tiny.en):

- ``teacher``: the teacher's audio (espeak-ng, or Piper's ``en_US-joe-medium`` for the natural
  voice, spoken as training.judge speaks it), the bound;
- ``griffinlim(teacher mel)``: the teacher's 80-band mel inverted by Griffin-Lim, the ceiling of
  the mel representation itself;
- ``griffinlim(tacotron2 mel)``: Tacotron 2's free-running mel, by Griffin-Lim: the acoustic model;
- ``waveglow(teacher mel, sigma S)``: the vocoder alone, on the mel it was trained on;
- ``waveglow(tacotron2 mel, sigma S)``: the whole voice, at each of ``--voice-sigmas``.

Griffin-Lim needs no training, so it adds no model of its own: what it loses is what any
vocoder would have to guess from the mel. The report goes to ``OUT/NAME.json``.

Scoring is training.evaluate's (training/scoring.py): each sentence as written against the
hypothesis, both in one canonical form, so the figures compare with ``eval/judge-*.json`` and
``eval/teacher-piper-rebuilt.json``. The Piper teacher needs the ``teacher`` extra (piper-tts,
GPL-3.0, training only), which ``training.judge.piper_teacher`` imports when called.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rtvoice.export.tacotron2 import Tacotron2
from rtvoice.export.waveglow import WaveGlow
from training.data import read_heldout, symbol_ids
from training.espeak import SAMPLE_RATE, Teacher
from training.evaluate import REPORTS, Audio, PcmTeacher, Recognizer, WhisperRecognizer, to_asr_rate
from training.export_default import load_models
from training.mel import AUDIO, LOG_FLOOR, MelSpectrogram, int16_to_float, mel_filterbank
from training.scoring import canonical, edit_distance, reference, scheme, written_texts
from training.tacotron2_steps import free_run

HERE = Path(__file__).resolve().parent
VOICE_SIGMA = 0.6
"""The sigma the exported voice uses (voice.json's default)."""
TEACHER, GL_TEACHER, GL_TACOTRON2 = "teacher", "griffinlim(teacher mel)", "griffinlim(tacotron2 mel)"


def whole(sigma: float) -> str:
    """The whole voice's condition at WaveGlow noise scale ``sigma``."""
    return f"waveglow(tacotron2 mel, sigma {sigma:g})"


WHOLE = whole(VOICE_SIGMA)

Clips = Callable[[int, str], dict[str, Audio]]
"""(corpus index, text) -> {condition: float32 audio at 22050 Hz}."""


def griffin_lim(log_mel: np.ndarray | Tensor, n_iter: int = 60, momentum: float = 0.99, seed: int = 0) -> np.ndarray:
    """Log mel (n_mel, T) -> float32 audio of (max(T, 4) - 1) * hop samples, peak 0.9, by fast Griffin-Lim.

    The magnitude is the filterbank's pseudo-inverse applied to the mel (clamped at 0); the phase
    starts random (seeded) and follows Perraudin et al.'s accelerated iteration (as librosa has it).
    A mel of fewer than 4 frames (a decoder that stopped at once) is padded with silent frames:
    the STFT's reflect padding needs more than half a window of audio.
    """
    a = AUDIO
    bank = mel_filterbank(a.sample_rate, a.filter_length, a.n_mel_channels, a.mel_fmin, a.mel_fmax)
    inverse = torch.linalg.pinv(torch.from_numpy(bank).double()).float()
    mel = torch.as_tensor(log_mel, dtype=torch.float32).detach().cpu()
    mel = torch.nn.functional.pad(mel, (0, max(0, 4 - mel.size(1))), value=math.log(LOG_FLOOR))
    magnitude = torch.clamp(inverse @ torch.exp(mel), min=0.0)
    window = torch.hann_window(a.win_length, periodic=True)
    length = (mel.size(1) - 1) * a.hop_length
    stft: dict[str, Any] = {"n_fft": a.filter_length, "hop_length": a.hop_length, "win_length": a.win_length,
                            "window": window, "center": True}

    def to_audio(angles: Tensor) -> Tensor:
        return torch.istft(magnitude * angles, length=length, **stft)

    generator = torch.Generator().manual_seed(seed)
    angles = torch.polar(torch.ones_like(magnitude), 2 * math.pi * torch.rand(magnitude.shape, generator=generator))
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = torch.stft(to_audio(angles), pad_mode="reflect", return_complex=True, **stft)
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / angles.abs().clamp(min=1e-16)
        previous = rebuilt
    audio = to_audio(angles).numpy()
    return (audio * (0.9 / max(float(np.abs(audio).max()), 1e-9))).astype(np.float32)


def vocode(waveglow: WaveGlow, mel: Tensor, sigma: float, seed: int) -> Audio:
    """WaveGlow on one mel (n_mel, T), with seeded noise of scale ``sigma``; unnormalized, like the runtime."""
    p = waveglow.params
    shape = (1, p.n_group, mel.size(1) * p.hop_length // p.n_group)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * sigma
    with torch.no_grad():
        return waveglow.infer(mel[None], noise)[0].numpy().astype(np.float32)


def model_clips(tacotron2: Tacotron2, waveglow: WaveGlow, teacher: PcmTeacher, sigmas: Sequence[float],
                gl_iters: int, voice_sigmas: Sequence[float] = (VOICE_SIGMA,)) -> Clips:
    """Every condition's clip of one sentence, from the teacher (int16 at 22050 Hz) and the two models.

    ``voice_sigmas`` are the whole voice's sigmas: the one to store in voice.json is chosen here.
    """
    mel_fn = MelSpectrogram()
    waveglow.freeze_inverses()

    def clips(index: int, text: str) -> dict[str, Audio]:
        audio = int16_to_float(teacher.speak(text))
        with torch.no_grad():
            teacher_mel = mel_fn(audio[None])[0]
            ids = torch.from_numpy(symbol_ids(text).astype(np.int64))
            tacotron2_mel = free_run(tacotron2, ids, tacotron2.params.max_decoder_steps, seed=index)[0]
        out = {TEACHER: audio.numpy(), GL_TEACHER: griffin_lim(teacher_mel, gl_iters, seed=index),
               GL_TACOTRON2: griffin_lim(tacotron2_mel, gl_iters, seed=index)}
        for sigma in sigmas:
            out[f"waveglow(teacher mel, sigma {sigma:g})"] = vocode(waveglow, teacher_mel, sigma, index)
        for sigma in voice_sigmas:
            out[whole(sigma)] = vocode(waveglow, tacotron2_mel, sigma, index)
        return out

    return clips


@dataclass(frozen=True)
class Sentence:
    index: int
    ref: str
    """What was spoken (the corpus text)."""
    words: int
    hyps: dict[str, str]
    errors: dict[str, int]
    audio_s: dict[str, float]
    written: str
    """What the hypotheses were scored against (the sentence as written, where known)."""


def run(texts: Sequence[tuple[int, str]], clips: Clips, asr: Recognizer, rate: int = SAMPLE_RATE,
        on_first: Callable[[dict[str, Audio]], None] | None = None,
        written: Mapping[int, str] | None = None) -> list[Sentence]:
    """Recognize and score every condition's clip of each ``(index, text)``; one line per sentence.

    Scored as training.evaluate scores: against ``written`` (index -> the sentence as written;
    default :func:`training.scoring.written_texts`), else the spoken text, both canonical.
    """
    written = written_texts() if written is None else written
    done = []
    for n, (index, text) in enumerate(texts, 1):
        audio = clips(index, text)
        if on_first is not None and n == 1:
            on_first(audio)
        against = reference(index, text, written)
        ref = canonical(against)
        hyps = {c: asr(to_asr_rate(a, rate)) for c, a in audio.items()}
        errors = {c: edit_distance(ref, canonical(h)) for c, h in hyps.items()}
        done.append(Sentence(index, text, len(ref), hyps, errors, {c: round(a.size / rate, 3) for c, a in
                                                                  audio.items()}, against))
        print(f"{n:3d}/{len(texts)} #{index:<5d} {len(ref):3d} words; errors: "
              + ", ".join(f"{c} {e}" for c, e in errors.items()), flush=True)
    return done


def table(sentences: Sequence[Sentence]) -> dict[str, dict[str, Any]]:
    """Per condition: corpus WER, errors, words, median sentence WER, and the capped WER.

    WER is all edits over all reference words; ``capped`` caps each sentence's errors at its words.
    The median and ``capped`` are there because Whisper loops on audio it does not understand
    ("very, very, ..."): one such sentence can add five times its words in insertions to the
    corpus WER, so two unintelligible stages can differ by 2x in WER only by how Whisper looped.
    """
    total = sum(s.words for s in sentences)
    conditions = sentences[0].errors if sentences else {}
    return {c: {"wer": round(e / max(total, 1), 4), "errors": e, "words": total,
                "median": round(float(np.median([s.errors[c] / max(s.words, 1) for s in sentences])), 4),
                "capped": round(sum(min(s.errors[c], s.words) for s in sentences) / max(total, 1), 4)}
            for c in conditions for e in [sum(s.errors[c] for s in sentences)]}


def write_wavs(clips: dict[str, Audio], folder: Path, rate: int = SAMPLE_RATE) -> None:
    """Each clip as 16-bit mono PCM, clipped to [-1, 1] as rtvoice's writer does."""
    folder.mkdir(parents=True, exist_ok=True)
    for condition, audio in clips.items():
        name = "".join(ch if ch.isalnum() or ch == "." else "-" for ch in condition).strip("-")
        with wave.open(str(folder / f"{name}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())


def floats(text: str) -> list[float]:
    """A comma-separated list of numbers (``--sigmas``, ``--voice-sigmas``)."""
    return [float(s) for s in text.split(",") if s.strip()]


def teacher_for(kind: str, texts: Sequence[str], stack: contextlib.ExitStack, espeak: str = "espeak-ng"
                ) -> tuple[PcmTeacher, dict[str, Any]]:
    """The teacher that ``kind`` names and what the report records of it.

    ``piper`` is training.judge's: Piper's phonemizer makes the ids of these ``texts`` now, into a
    folder that ``stack`` removes, and training.teacher's PiperTeacher speaks them with Piper's
    default noise, as it spoke the corpus.
    """
    if kind == "espeak":
        teacher = Teacher(espeak=espeak)
        return teacher, {"kind": "espeak"} | asdict(teacher)
    from training.judge import piper_teacher

    piper = piper_teacher(list(texts), Path(stack.enter_context(tempfile.TemporaryDirectory())))
    return piper, {"kind": "piper"} | piper.settings()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.diagnose", description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", choices=("espeak", "piper"), default="espeak",
                   help="the voice's teacher: espeak-ng (the shipped voice) or Piper en_US-joe-medium (the natural "
                        "voice; needs the teacher extra)")
    p.add_argument("--checkpoints", type=Path, default=HERE / "checkpoints",
                   help="folder of tacotron2.pt and waveglow.pt (float16-stored weights load as float32)")
    p.add_argument("--limit", type=int, default=30, help="the first N held-out sentences")
    p.add_argument("--sigmas", default="0.3,0.6,1.0", help="WaveGlow sigmas on the teacher's mel")
    p.add_argument("--voice-sigmas", default=f"{VOICE_SIGMA:g}", help="WaveGlow sigmas for the whole voice")
    p.add_argument("--gl-iters", type=int, default=60, help="Griffin-Lim iterations")
    p.add_argument("--max-decoder-steps", type=int, help="Tacotron 2's step limit (default: the checkpoint's)")
    p.add_argument("--espeak", default="espeak-ng")
    p.add_argument("--out", type=Path, default=REPORTS)
    p.add_argument("--name", default="parts", help="the report: OUT/NAME.json")
    p.add_argument("--asr-threads", type=int, default=1,
                   help="Whisper's threads (the teacher reports were measured with 1)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (two contend badly on a busy 2-core CPU)")
    p.add_argument("--wav", nargs="?", const="", default=None, metavar="DIR",
                   help="also write the first sentence's clips, to DIR (default: OUT/NAME-wav/)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    texts = [(r.index, r.text) for r in read_heldout()][: args.limit]
    torch.set_num_threads(args.threads)
    sigmas, voice_sigmas = floats(args.sigmas), floats(args.voice_sigmas)
    tacotron2, waveglow, iterations = load_models(args.checkpoints, args.max_decoder_steps)
    asr = WhisperRecognizer(args.asr_threads)
    wav_dir = None if args.wav is None else Path(args.wav) if args.wav else args.out / f"{args.name}-wav"
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        teacher, teacher_info = teacher_for(args.teacher, [t for _, t in texts], stack, args.espeak)
        clips = model_clips(tacotron2, waveglow, teacher, sigmas, args.gl_iters, voice_sigmas)
        sentences = run(texts, clips, asr, on_first=(lambda c: write_wavs(c, wav_dir)) if wav_dir else None)
    conditions = table(sentences)
    report = {"command": "python -m training.diagnose " + " ".join(sys.argv[1:] if argv is None else argv),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "teacher": teacher_info,
              "checkpoints": str(args.checkpoints), "iterations": iterations,
              "max_decoder_steps": tacotron2.params.max_decoder_steps, "gl_iters": args.gl_iters,
              "recognizer": asr.info, "scoring": scheme(), "threads": args.threads, "sentences": len(sentences),
              "elapsed_s": round(time.perf_counter() - started, 1), "conditions": conditions,
              "per_sentence": [asdict(s) for s in sentences]}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    width = max(len(c) for c in conditions) if conditions else 9
    print(f"\n{'condition':<{width}}    WER  errors/words  median sentence WER  capped WER")
    for c, row in conditions.items():
        print(f"{c:<{width}}  {row['wer']:5.3f}  {row['errors']:>6}/{row['words']:<5}  {row['median']:19.3f}  "
              f"{row['capped']:10.3f}")
    print(f"-> {path} ({report['elapsed_s']:.0f} s; iterations {iterations})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
