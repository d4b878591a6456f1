"""``rtvoice mqtt``: the announcement daemon (a thin shell over :class:`rtvoice.announce.Announcer`).

``rtvoice.announce`` (and so aiomqtt) is imported when the command runs, not when the CLI
builds its parser, so the other commands work without the ``mqtt`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import math
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cli import add_synthesis_options, add_voice_options, synthesis_options
from ..errors import RtvoiceError
from ..voice import Voice
from .options import number

SESSION_EXPIRY_RANGE = (0, 2**32 - 1)
"""MQTT 5's Session Expiry Interval is a four-byte count of seconds."""

if TYPE_CHECKING:
    from ..announce import AnnouncerConfig, Sink


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "mqtt", help="speak announcements received over MQTT",
        description="Announcement daemon: speaks text published to <prefix>say (and Hermes hermes/tts/say), "
                    "one at a time by priority, and publishes status events and audio. "
                    "SIGTERM/SIGINT shut it down gracefully; a second signal stops it at once.")
    broker = p.add_argument_group("broker")
    broker.add_argument("--broker", default="mqtt://localhost:1883",
                        help="mqtt://[USER[:PASSWORD]@]HOST[:PORT] or mqtts:// for TLS (default: %(default)s)")
    broker.add_argument("--username", help="MQTT user name (overrides the URL)")
    broker.add_argument("--password", help="MQTT password (overrides the URL; "
                                           "default: $RTVOICE_MQTT_PASSWORD, which keeps it out of ps)")
    broker.add_argument("--tls", action="store_true", help="use TLS (implied by mqtts://)")
    broker.add_argument("--tls-ca", help="CA bundle to verify the broker with (default: the system CAs)")
    broker.add_argument("--client-id", help="MQTT client id; a fixed one keeps the session across restarts: "
                                            "announcements published while the daemon is stopped are spoken "
                                            "when it is back (default: rtvoice-<host>-<pid>, a fresh session)")
    broker.add_argument("--protocol", choices=("5", "3.1.1"), default="5", help="MQTT version (default: 5)")
    broker.add_argument("--session-expiry", type=number(int, *SESSION_EXPIRY_RANGE), default=3600, metavar="S",
                        help="MQTT 5: seconds the broker keeps the session (and queues messages) "
                             "while disconnected (default: %(default)s)")
    api = p.add_argument_group("topics")
    api.add_argument("--prefix", help="topic prefix, ending in / (default: rtvoice/)")
    api.add_argument("--group", help="share <prefix>say with other workers of this group "
                                     "(MQTT shared subscription $share/GROUP/...): each announcement is spoken once")
    api.add_argument("--hermes", action="store_true", help="also serve Rhasspy Hermes hermes/tts/say")
    api.add_argument("--site-id", action="append", default=[], metavar="SITE",
                     help="serve Hermes requests for this siteId only (repeatable; default: every site, "
                          "as Rhasspy's own services do)")
    out = p.add_argument_group("output")
    out.add_argument("--no-play", action="store_true",
                     help="do not play locally: publish WAV to <prefix>audio/<id> and Hermes playBytes")
    out.add_argument("--publish-audio", action="store_true",
                     help="publish <prefix>audio/<id> WAV even when playing locally")
    out.add_argument("--audio-format", choices=("wav", "parts"), default="wav",
                     help="published audio: one WAV on <prefix>audio/<id> (longer than --max-wav-mb: parts "
                          "instead), or parts: WAVs on <prefix>audio/<id>/<n> as they are synthesized, then "
                          "<prefix>audio/<id>/end (default: %(default)s)")
    out.add_argument("--max-wav-mb", type=float, default=8.0, metavar="MB",
                     help="largest single WAV message in MiB (default: %(default)s, about 190 s at 22.05 kHz)")
    out.add_argument("--audio-device", help="output device name or index (see: rtvoice devices)")
    p.add_argument("--max-queued", type=number(int, -math.inf, math.inf), metavar="N",
                   help="announcements waiting to be spoken (besides the one being spoken); more are refused "
                        "with queue_full (default: 256, AnnouncerConfig.max_queued)")
    out.add_argument("--shutdown-grace", type=number(float, 0.0, math.inf), default=10.0, metavar="S",
                     help="on shutdown, seconds the current announcement may take to finish (default: %(default)s)")
    add_voice_options(p)
    p.add_argument("--add-voice", action="append", default=[], metavar="NAME=DIR",
                   help="another voice (a folder or an installed voice's name) that announcements may name with "
                        "\"voice\": NAME (repeatable)")
    add_synthesis_options(p)
    p.set_defaults(func=run)


def announcer_config(args: argparse.Namespace) -> AnnouncerConfig:
    """The daemon's settings named on the command line."""
    from ..announce import AnnouncerConfig, BrokerSettings

    broker = BrokerSettings.from_url(
        args.broker, username=args.username, password=args.password or os.environ.get("RTVOICE_MQTT_PASSWORD"),
        tls=True if args.tls else None, tls_ca_file=args.tls_ca, client_id=args.client_id,
        protocol=args.protocol, session_expiry_s=args.session_expiry)
    optional: dict[str, Any] = {"prefix": args.prefix} if args.prefix is not None else {}
    if args.max_queued is not None:  # checked by AnnouncerConfig (at least 1): one line, exit 2
        optional["max_queued"] = args.max_queued
    return AnnouncerConfig(
        broker, **optional, group=args.group, hermes=args.hermes, site_ids=tuple(dict.fromkeys(args.site_id)),
        publish_audio=args.publish_audio, audio_format=args.audio_format,
        max_wav_bytes=_mib(args.max_wav_mb), shutdown_grace_s=args.shutdown_grace,
        keep_session=args.client_id is not None,
        synthesis=synthesis_options(args))


def _mib(value: float) -> int:
    from ..announce import ConfigError

    if not 0.01 <= value <= 256:
        raise ConfigError(f"--max-wav-mb {value} is out of range (0.01 to 256).", option="--max-wav-mb")
    return int(value * 1024 * 1024)


def _extra_voices(specs: list[str]) -> dict[str, Path]:
    from ..announce import ConfigError
    from ..errors import VoiceError
    from ..voices_dir import resolve_voice

    voices: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise ConfigError(f"--add-voice {spec!r} is not NAME=DIR.", option="--add-voice")
        try:
            voices[name] = resolve_voice(folder)  # a folder, or an installed voice's name
        except VoiceError as exc:
            raise ConfigError(f"--add-voice {spec!r}: {exc}", option="--add-voice") from exc
    return voices


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("aiomqtt") is None:
        raise RtvoiceError("rtvoice mqtt needs the aiomqtt package. Hint: pip install 'rtvoice[mqtt]' "
                           "(or: pip install 'aiomqtt>=2.5,<3').")
    from ..announce import NullSink, local_playback

    config = announcer_config(args)
    extra = _extra_voices(args.add_voice)
    with contextlib.ExitStack() as stack:
        default = stack.enter_context(Voice.load(args.voice, backend=args.backend, device=args.device))
        voices = {default.config.name: default}
        for name, folder in extra.items():
            voices[name] = stack.enter_context(Voice.load(folder, backend=args.backend, device=args.device))
        sink: Sink = NullSink() if args.no_play else local_playback(args.audio_device)
        try:
            asyncio.run(serve(voices, config, sink))
        except asyncio.CancelledError:  # a second signal: stopped without finishing
            return 130
    return 0


async def serve(voices: dict[str, Voice], config: AnnouncerConfig, sink: Sink) -> None:
    """Run the announcer until SIGTERM or SIGINT, then shut it down gracefully; closes ``sink``."""
    from ..announce import Announcer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set() and main is not None:
            print(f"rtvoice mqtt: second {name}, stopping now", file=sys.stderr, flush=True)
            main.cancel()
        else:
            print(f"rtvoice mqtt: {name}, finishing the current announcement, then exiting",
                  file=sys.stderr, flush=True)
            stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        async with Announcer(voices, config, sink=sink) as announcer:
            print(f"rtvoice mqtt: serving {announcer.topics.say} on {config.broker.describe()} "
                  f"as {config.broker.client_id} (voices: {', '.join(voices)})", file=sys.stderr, flush=True)
            await stop.wait()
    finally:
        await sink.aclose()
