"""``rtvoice say``: speak a text to an audio file (and/or the sound card with ``--play``).

The file's format comes from its extension (``.wav``, ``.mp3``, ``.ogg``/``.opus``, ``.aac``,
``.m4a``, ``.flac``, ``.pcm``/``.raw``). It is checked and opened before the voice loads and
written atomically: a failure leaves no partial or empty file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Iterator

import numpy as np

from ..audio import AudioChunk
from ..cli import add_synthesis_options, add_voice_options, synthesis_options
from ..config import SynthesisConfig
from ..encode import FORMATS, AudioFormat, Encoder, format_for_path
from ..errors import RtvoiceError
from ..output import AtomicOutput
from ..text import decode_utf8
from ..voice import Voice
from .devices import add_playback_options
from .options import output_file


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("say", help="speak TEXT to an audio file or the sound card",
                       description="Speak TEXT ('-' reads it from stdin) to --out FILE and/or --play.")
    p.add_argument("text", help="the text to speak, or - to read UTF-8 text from stdin")
    p.add_argument("--out", type=output_file, metavar="FILE",
                   help="audio file to write, its format from the extension: .wav (16-bit mono), .mp3, "
                        ".ogg/.opus (Ogg Opus), .aac (ADTS), .m4a, .flac, .pcm/.raw (16-bit little-endian "
                        "mono at the voice's rate); no extension: WAV")
    p.add_argument("--format", choices=tuple(FORMATS), help="write this format whatever --out's extension")
    p.add_argument("--play", action="store_true", help="play through the default (or --audio-device) output")
    p.add_argument("--ssml", action="store_true", help="read TEXT as SSML (default: when it starts with <speak>)")
    add_playback_options(p)
    add_voice_options(p)
    add_synthesis_options(p)
    p.set_defaults(func=run)


def synthesis_config(args: argparse.Namespace) -> SynthesisConfig:
    """The per-request settings named on the command line: the synthesis flags, ``--volume`` and ``--ssml``."""
    return dataclasses.replace(synthesis_options(args), volume=args.volume, ssml=True if args.ssml else None)


def read_text(arg: str) -> str:
    return decode_utf8(sys.stdin.buffer.read()) if arg == "-" else arg


def run(args: argparse.Namespace) -> int:
    if args.out is None and not args.play:
        raise RtvoiceError("Nothing to do: give --out FILE and/or --play.")
    fmt = format_for_path(args.out, args.format) if args.out is not None else None
    text = read_text(args.text)
    with contextlib.ExitStack() as stack:
        # The file first: a folder we cannot write to is an error before the voice loads.
        out = stack.enter_context(AtomicOutput(args.out)) if args.out is not None else None
        voice = stack.enter_context(Voice.load(args.voice, backend=args.backend, device=args.device))
        chunks = voice.synthesize(text, synthesis_config(args))
        if sys.stderr.isatty() and len(text) >= PROGRESS_MIN_CHARS:
            from ..script import prepare

            config = synthesis_config(args)
            chunks = _progress(chunks, len(prepare(text, voice.config, config.resolve(voice.config)).sentences))
        if args.play:
            from ..playback import play_chunks

            chunks = play_chunks(chunks, voice.sample_rate, device=args.audio_device, volume=1.0,  # in the samples
                                 passthrough=out is not None)
        if out is None or fmt is None:
            for _ in chunks:
                pass
            return 0
        seconds = _write(out, fmt, chunks, voice.sample_rate)
        print(f"wrote {args.out} ({fmt.name}, {seconds:.2f} s, {voice.sample_rate} Hz, "
              f"{voice.choice.backend} on {voice.choice.device})", file=sys.stderr if out.in_place else sys.stdout)
    return 0


_EMPTY = np.zeros(0, np.float32)
PROGRESS_MIN_CHARS = 200
"""Texts at least this long get a progress line on a terminal's stderr."""


def _write(out: AtomicOutput, fmt: AudioFormat, chunks: Iterator[AudioChunk], sample_rate: int) -> float:
    """Encode ``chunks`` into ``out`` as they come and commit it; returns the seconds of audio."""
    samples = 0
    with Encoder(fmt, sample_rate) as encoder:
        out.write(encoder.encode(_EMPTY))  # the header now: a target that takes no bytes fails before synthesis
        for chunk in chunks:
            out.write(encoder.encode(chunk.samples))
            samples += len(chunk.samples)
        out.write(encoder.finish())
    if fmt.name == "wav":
        out.patch_wav_header(sample_rate, samples)
    out.commit()
    return samples / sample_rate


def _progress(chunks: Iterator[AudioChunk], sentences: int) -> Iterator[AudioChunk]:
    """Pass ``chunks`` through, drawing sentence progress on stderr (a terminal: checked by the caller)."""
    width = 30
    try:
        for chunk in chunks:
            done = sentences if chunk.is_last else min(chunk.sentence_index, sentences)
            bar = "#" * (width * done // max(sentences, 1))
            print(f"\r[{bar:<{width}}] sentence {min(chunk.sentence_index + 1, sentences)}/{sentences}, "
                  f"{chunk.timing.audio_s:.1f} s of audio, {chunk.timing.rtf:.1f}x real time",
                  end="", file=sys.stderr, flush=True)
            yield chunk
    finally:
        print(file=sys.stderr, flush=True)
