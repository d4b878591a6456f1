"""Command line of build_engines.py (torch needed: the build extra)."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

from ..errors import RtvoiceError

log = logging.getLogger("rtvoice.build")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build_engines.py",
        description="Build an rtvoice voice folder (voice.json + ONNX graphs, and TensorRT engines "
        "where TensorRT is installed) from NVIDIA Tacotron 2/WaveGlow checkpoints or random weights.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--tacotron2", type=Path, help="Tacotron 2 checkpoint (.pt, NGC/DeepLearningExamples format)")
    source.add_argument("--random", choices=("tiny", "full"),
                        help="seeded random weights: 'tiny' for tests, 'full' for the published sizes")
    p.add_argument("--waveglow", type=Path, help="WaveGlow checkpoint (with --tacotron2)")
    p.add_argument("--out", type=Path, required=True, help="voice folder to write")
    p.add_argument("--name", help="voice name (default: the folder name)")
    p.add_argument("--seed", type=int, default=0, help="seed of --random weights")
    p.add_argument("--waveglow-channels", type=int, default=256, choices=(256, 512),
                   help="WaveGlow width for --random full (NGC publishes 256; training defaults to 512)")
    p.add_argument("--frames-per-step", type=int, default=1, choices=(1, 2, 3, 4), metavar="R",
                   help="mel frames per decoder step of --random weights (Tacotron 2's reduction factor; "
                        "a checkpoint's own is read from it)")
    p.add_argument("--sigma", type=float, default=0.6, help="WaveGlow noise scale stored in voice.json")
    p.add_argument("--no-engines", action="store_true", help="write ONNX only, even if TensorRT is installed")
    p.add_argument("--no-parity", action="store_true",
                   help="skip the check that ONNX Runtime reproduces the PyTorch models")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if args.tacotron2 is not None and args.waveglow is None:
        print("error: --tacotron2 needs --waveglow too", file=sys.stderr)
        return 2
    try:
        import torch  # noqa: F401
    except ImportError:
        print("error: build_engines.py needs torch. Hint: pip install '.[build]'", file=sys.stderr)
        return 2
    from .checkpoint import load_tacotron2, load_waveglow
    from .voice_builder import build_voice, random_models

    try:
        if args.random:
            tacotron2, waveglow = random_models(args.random, args.seed, args.waveglow_channels,
                                               args.frames_per_step)
            source = {"random": args.random, "seed": args.seed}
        else:
            tacotron2, waveglow = load_tacotron2(args.tacotron2), load_waveglow(args.waveglow)
            source = {"tacotron2_checkpoint": args.tacotron2.name, "waveglow_checkpoint": args.waveglow.name}
        config = build_voice(tacotron2, waveglow, args.out, args.name, source, args.sigma)
    except (RtvoiceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"voice {config.name!r}: ONNX graphs and voice.json written to {args.out}")
    if not args.no_parity and not _parity(args.out, tacotron2, waveglow):
        return 1
    return _engines(args.out, skip=args.no_engines)


PARITY_TOLERANCE = 1e-3
"""Largest |ONNX Runtime - PyTorch| accepted, relative to the reference's peak (float32 both)."""


def _parity(folder: Path, tacotron2: object, waveglow: object) -> bool:
    from .parity import compare

    report = compare(folder, tacotron2, waveglow, "The quick brown fox jumps over the lazy dog.",  # type: ignore[arg-type]
                     seed=0, steps=40)
    ok = (report.mel_max_abs <= PARITY_TOLERANCE * max(1.0, report.mel_peak)
          and report.audio_max_abs <= PARITY_TOLERANCE * max(1.0, report.audio_peak))
    print(f"parity with PyTorch: {'ok' if ok else 'FAILED'}: {report}")
    return ok


def _engines(folder: Path, skip: bool) -> int:
    """Build TensorRT engines beside the ONNX graphs when TensorRT is importable."""
    if skip:
        print("TensorRT engines: skipped (--no-engines)")
        return 0
    if importlib.util.find_spec("tensorrt") is None:
        print("TensorRT engines: skipped, because the tensorrt package is not installed here; "
              "the voice runs on ONNX Runtime. Install TensorRT (pip install 'rtvoice[tensorrt]') and rerun "
              "to build them.")
        return 0
    from ..trt.build import build_voice_engines

    try:
        for path in build_voice_engines(folder):
            print(f"TensorRT engine: {path}")
    except RtvoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
