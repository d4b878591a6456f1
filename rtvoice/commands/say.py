"""``rtvoice say``: speak a text to a WAV file (and/or the sound card with ``--play``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..audio import write_wav
from ..cli import add_synthesis_options, add_voice_options
from ..config import SynthesisConfig
from ..errors import RtvoiceError
from ..text import decode_utf8
from ..voice import Voice
from .devices import add_playback_options


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("say", help="speak TEXT to a WAV file or the sound card",
                       description="Speak TEXT ('-' reads it from stdin) to --out FILE.wav and/or --play.")
    p.add_argument("text", help="the text to speak, or - to read UTF-8 text from stdin")
    p.add_argument("--out", type=Path, help="WAV file to write (22.05 kHz, 16-bit mono)")
    p.add_argument("--play", action="store_true", help="play through the default (or --audio-device) output")
    add_playback_options(p)
    add_voice_options(p)
    add_synthesis_options(p)
    p.set_defaults(func=run)


def synthesis_config(args: argparse.Namespace) -> SynthesisConfig:
    """The per-request settings named on the command line."""
    return SynthesisConfig(seed=args.seed, chunk_frames=args.chunk_frames, sigma=args.sigma,
                           max_decoder_steps=args.max_steps)


def read_text(arg: str) -> str:
    return decode_utf8(sys.stdin.buffer.read()) if arg == "-" else arg


def run(args: argparse.Namespace) -> int:
    if args.out is None and not args.play:
        raise RtvoiceError("Nothing to do: give --out FILE.wav and/or --play.")
    text = read_text(args.text)
    with Voice.load(args.voice, backend=args.backend, device=args.device) as voice:
        chunks = voice.synthesize(text, synthesis_config(args))
        if args.play:
            from ..playback import play_chunks

            chunks = play_chunks(chunks, voice.sample_rate, device=args.audio_device, volume=args.volume,
                                 passthrough=args.out is not None)
        if args.out is not None:
            n = write_wav(args.out, chunks, voice.sample_rate)
            print(f"wrote {args.out} ({n / voice.sample_rate:.2f} s, {voice.sample_rate} Hz, "
                  f"{voice.choice.backend} on {voice.choice.device})")
        else:
            for _ in chunks:
                pass
    return 0
