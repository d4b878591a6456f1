"""``rtvoice devices``: the output devices ``--audio-device`` can name."""

from __future__ import annotations

import argparse

from ..errors import AudioDeviceError
from ..playback import MAX_VOLUME, list_output_devices


def add_playback_options(p: argparse.ArgumentParser) -> None:
    """``--audio-device`` and ``--volume``, shared by every command that plays (say, repl)."""
    p.add_argument("--audio-device", metavar="NAME|INDEX",
                   help="output device: an index or (part of) a name from `rtvoice devices`; default: the system's")
    p.add_argument("--volume", type=volume, default=1.0,
                   help=f"gain on the audio written, streamed and played, 0.0-{MAX_VOLUME:.1f} (default 1.0)")


def volume(text: str) -> float:
    """Parse ``--volume`` so that a bad value is a usage error, not a traceback."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= MAX_VOLUME:
        raise argparse.ArgumentTypeError(f"must be between 0.0 and {MAX_VOLUME:.1f}, got {value:g}")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("devices", help="list the audio output devices",
                       description="List the devices PortAudio can play on. Pass an index or a name "
                                   "(or a unique part of one) to --audio-device; * marks the default.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    devices = list_output_devices()
    if not devices:  # scripts check `rtvoice devices` before --play: no device is a failure
        raise AudioDeviceError("No audio output device found. Hint: check that PortAudio sees a sound card "
                               "(ALSA: aplay -l), or write files with --out instead of --play.")
    width = max(len(d.name) for d in devices)
    for d in devices:
        mark = "*" if d.is_default else " "
        print(f"{mark} {d.index:>3}  {d.name:<{width}}  {d.hostapi:<12} {d.max_channels:>3} ch  "
              f"{d.default_rate / 1000:g} kHz")
    return 0
