"""``rtvoice repl``: an interactive prompt that speaks every line (or lines piped in)."""

from __future__ import annotations

import argparse
import asyncio

from ..cli import add_synthesis_options, add_voice_options
from ..playback import resolve_output_device
from ..repl import KEYS, repl
from ..voice import Voice
from .devices import add_playback_options
from .say import synthesis_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "repl", help="speak each line typed at a prompt (or piped in)",
        description=f"Speak each line as soon as it is entered; lines typed meanwhile are queued. {KEYS}. "
                    "With stdin not a terminal (printf 'Hi.\\nBye.\\n' | rtvoice repl) the lines are read "
                    "without a prompt, blank lines are skipped, and it exits once everything has played.")
    p.add_argument("--ssml", action="store_true", help="read each line as SSML (default: when it starts with <speak>)")
    add_playback_options(p)
    add_voice_options(p)
    add_synthesis_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Check the device before loading the voice: a typo in --audio-device (or a machine with no
    # sound at all) is an immediate error, exit status 2. Later device errors keep the prompt.
    resolve_output_device(args.audio_device)
    with Voice.load(args.voice, backend=args.backend, device=args.device) as voice:
        # --volume is in the samples (synthesis_config): the player adds no second gain.
        return asyncio.run(repl(voice, device=args.audio_device, volume=1.0, config=synthesis_config(args)))
