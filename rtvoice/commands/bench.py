"""``rtvoice bench``: time to first audio, latency, RTF, per-step and per-second costs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ..cli import add_voice_options
from ..config import MAX_DECODER_STEPS_RANGE, BatchingConfig, SynthesisConfig, VoiceConfig
from ..errors import RtvoiceError
from ..text import decode_utf8
from ..voice import Voice, default_voice_path
from .options import DefaultsHelpFormatter, config_number, number

RUNS_RANGE = (1, 100_000)
WARMUP_RANGE = (0, 10_000)
CONCURRENCY_RANGE = (1, 4096)
"""Simultaneous streams: up to the most decoder rows a GPU engine can be given (BatchingConfig.max_rows)."""

DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog, while the five boxing wizards jump quickly."


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="benchmark a voice on a backend",
                       description="Warm up, run repeatedly through the streaming pipeline, report medians and the "
                                   "slow tail (p99 of times; p1 and worst of the real-time factor).",
                       formatter_class=DefaultsHelpFormatter)
    add_voice_options(p)
    p.add_argument("--text", default=DEFAULT_TEXT, metavar="TEXT|@FILE",
                   help="the text to speak, or @FILE to read it from a UTF-8 file")
    p.add_argument("--steps", type=config_number(SynthesisConfig, "force_steps"),
                   help="force each sentence to this many mel frames "
                        f"({MAX_DECODER_STEPS_RANGE[0]}-{MAX_DECODER_STEPS_RANGE[1]}; random voices never stop); "
                        "a voice of r frames per decoder step runs ceil(steps / r) decoder steps")
    p.add_argument("--runs", type=number(int, *RUNS_RANGE), default=6, help="timed runs (after --warmup)")
    p.add_argument("--warmup", type=number(int, *WARMUP_RANGE), default=2, help="untimed runs first")
    p.add_argument("--concurrency", type=number(int, *CONCURRENCY_RANGE), default=1,
                   help="simultaneous streams per run")
    p.add_argument("--chunk-frames", type=config_number(SynthesisConfig, "chunk_frames"),
                   help="mel frames per streamed chunk (default: the voice's)")
    p.add_argument("--cuda-graphs", choices=("on", "off"),
                   help="GPU engines: replay decoder steps as CUDA graphs (default: voice.json, on)")
    p.add_argument("--max-batch", type=config_number(BatchingConfig, "max_batch"),
                   help="GPU engines: most sentences stepped together (rows); 1 turns batching off")
    p.add_argument("--vocoder-batch", type=config_number(BatchingConfig, "vocoder_max"), metavar="N",
                   help="most chunks per vocoder call (default: the voice's batching.vocoder_max; "
                        "1 turns vocoder batching off)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--seams", action="store_true",
                   help="instead: sweep chunk and context sizes, SNR of streamed vs whole audio "
                        "and time to first audio")
    p.add_argument("--rate", type=config_number(SynthesisConfig, "rate", float),
                   help="with --seams: the speaking rate to measure the seams at (the mel is time-scaled); "
                        "default: the voice's")
    p.add_argument("--compare", choices=("torch",), help="also time the PyTorch reference (build extra)")
    p.add_argument("--torch-fp16", action="store_true", help="run the PyTorch reference under fp16 autocast")
    p.add_argument("--checkpoints", nargs=2, type=Path, metavar=("TACOTRON2", "WAVEGLOW"),
                   help="checkpoints for --compare torch when the voice is not a random one")
    p.set_defaults(func=run)


def read_text_arg(arg: str) -> str:
    """``--text``: the text itself, or ``@FILE`` for a UTF-8 file's contents."""
    if not arg.startswith("@"):
        text = arg
    else:
        path = Path(arg[1:])
        try:
            text = decode_utf8(path.read_bytes())
        except OSError as exc:
            raise RtvoiceError(f"Cannot read --text {arg[:200]!r}: {exc.strerror or exc}.") from exc
    if not text.strip():
        raise RtvoiceError("--text is empty: there is nothing to speak.")
    return text.strip()


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        bar = "#" * (30 * done // total)
        print(f"\r[{bar:<30}] {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def _batching(args: argparse.Namespace) -> BatchingConfig | None:
    """The voice's batching settings with --cuda-graphs, --max-batch and --vocoder-batch applied.

    None: unchanged. One place for all three, so the engine and the pipeline see the same settings.
    """
    changes: dict[str, Any] = {}
    if args.cuda_graphs is not None:
        changes["cuda_graphs"] = args.cuda_graphs == "on"
    if args.max_batch is not None:
        changes["max_batch"] = args.max_batch
    if args.vocoder_batch is not None:
        changes["vocoder_max"] = args.vocoder_batch
    if not changes:
        return None
    return dataclasses.replace(VoiceConfig.load(args.voice or default_voice_path()).batching, **changes)


def run(args: argparse.Namespace) -> int:
    from ..bench import format_table, run_bench

    text = read_text_arg(args.text)
    if args.compare == "torch":
        # Load torch (and its bundled cuDNN) before ONNX Runtime preloads CUDA libraries:
        # the other order leaves torch with a cuDNN it was not built for.
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise RtvoiceError("--compare torch needs torch. Hint: pip install '.[build]'") from exc
    with Voice.load(args.voice, backend=args.backend, device=args.device, batching=_batching(args)) as voice:
        if args.seams:
            from ..seams import format_points, sweep

            points = sweep(voice, text, args.steps or 200, rate=args.rate)
            print(json.dumps([p.__dict__ for p in points], indent=2) if args.json else format_points(points))
            return 0
        report = run_bench(voice, text, steps=args.steps, runs=args.runs, warmup=args.warmup,
                           concurrency=args.concurrency, chunk_frames=args.chunk_frames, progress=_progress)
        if args.compare == "torch":
            from ..export.torch_bench import time_torch

            steps = report.runs[0].mel_frames
            report.torch = time_torch(voice.config, text, steps, voice.choice.device, runs=args.runs,
                                      warmup=args.warmup, fp16=args.torch_fp16,
                                      checkpoints=tuple(args.checkpoints) if args.checkpoints else None)
    summary = report.summary()
    print(json.dumps(report.to_json(), indent=2) if args.json else format_table(summary))
    return 0
