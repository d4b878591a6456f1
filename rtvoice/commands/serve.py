"""``rtvoice serve``: the voice-assistant backend (OpenAI HTTP, WebSocket, Wyoming, metrics)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from ..cli import add_synthesis_options, add_voice_options, synthesis_options
from ..errors import RtvoiceError
from ..server.config import (
    BODY_TIMEOUT_S,
    DEFAULT_HOST,
    DEFAULT_PORT,
    HEADER_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    KEEP_ALIVE_TIMEOUT_S,
    MAX_ACTIVE_STREAMS,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
    MAX_INPUT_CHARS,
    MAX_QUEUED_TURNS,
    MAX_STREAMS_PER_CLIENT,
    MIN_CLIENT_SPEED,
    SEND_TIMEOUT_S,
    LimitsConfig,
    ServerConfig,
)
from .options import DefaultsHelpFormatter, config_number, port

TOKEN_ENV = "RTVOICE_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve", help="serve voices over HTTP (OpenAI API), WebSocket and Wyoming",
        description="Serve voices: POST /v1/audio/speech (OpenAI-compatible), GET /v1/audio/voices, "
                    "WebSocket /v1/audio/stream, GET /health, GET /metrics, and Wyoming on --wyoming-port.",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=port, default=DEFAULT_PORT, help="HTTP/WebSocket port")
    p.add_argument("--wyoming-port", type=port, help="also serve the Wyoming protocol on this port (e.g. 10200)")
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                   help=f"require 'Authorization: Bearer TOKEN' on HTTP and WebSocket (default: ${TOKEN_ENV})")
    p.add_argument("--voices-dir", type=Path, help="serve every voice folder in DIR, each by its folder name")
    p.add_argument("--max-input-chars", type=config_number(LimitsConfig, "max_input_chars"), default=MAX_INPUT_CHARS,
                   help="longest text of one request")
    p.add_argument("--max-streams-per-client", type=config_number(LimitsConfig, "max_streams_per_client"),
                   default=MAX_STREAMS_PER_CLIENT, help="open streams per client address; more get 429")
    p.add_argument("--max-active-streams", type=config_number(LimitsConfig, "max_active_streams"),
                   default=MAX_ACTIVE_STREAMS,
                   help="syntheses running at once; more wait in a queue")
    p.add_argument("--max-connections-per-client", type=config_number(LimitsConfig, "max_connections_per_client"),
                   default=MAX_CONNECTIONS_PER_CLIENT, metavar="N",
                   help="open connections per client address (HTTP port and Wyoming port each); more are closed")
    p.add_argument("--max-connections", type=config_number(LimitsConfig, "max_connections"),
                   default=MAX_CONNECTIONS, metavar="N",
                   help="open connections over all clients (HTTP/WebSocket port and Wyoming port each); more get 503")
    p.add_argument("--max-queued-turns", type=config_number(LimitsConfig, "max_queued_turns"),
                   default=MAX_QUEUED_TURNS, metavar="N",
                   help="sentences and ends one WebSocket session may have waiting to be spoken; "
                        "an end beyond gets backlog_full")
    add_timeout_options(p)
    add_voice_options(p)
    p.add_argument("--voice-alias", action="append", default=[], type=voice_alias, metavar="NAME=VOICE",
                   help="requests naming NAME get VOICE (repeatable); OpenAI's voice names (alloy, echo, nova...) "
                        "are aliases of the default voice unless given here")
    add_synthesis_options(p)
    p.set_defaults(func=run)


def voice_alias(text: str) -> tuple[str, str]:
    """``--voice-alias NAME=VOICE``, both parts non-empty."""
    name, sep, target = text.partition("=")
    if not sep or not name.strip() or not target.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VOICE, got {text[:60]!r}")
    return name.strip(), target.strip()


def add_timeout_options(p: argparse.ArgumentParser) -> None:
    """The timeouts of slow and idle clients, and who may use Wyoming (which has no token)."""
    seconds = {name: config_number(LimitsConfig, name, float) for name in TIMEOUTS.values()}
    p.add_argument("--header-timeout", type=seconds["header_timeout_s"], default=HEADER_TIMEOUT_S, metavar="S",
                   help="an HTTP request's headers must arrive within S seconds, else the connection is closed")
    p.add_argument("--body-timeout", type=seconds["body_timeout_s"], default=BODY_TIMEOUT_S, metavar="S",
                   help="an HTTP request's body must arrive within S seconds of its headers, else 408")
    p.add_argument("--keep-alive-timeout", type=seconds["keep_alive_timeout_s"], default=KEEP_ALIVE_TIMEOUT_S,
                   metavar="S", help="close an HTTP connection idle for S seconds between requests")
    p.add_argument("--idle-timeout", type=seconds["idle_timeout_s"], default=IDLE_TIMEOUT_S, metavar="S",
                   help="close a WebSocket or Wyoming connection that sends nothing for S seconds while "
                        "nothing is spoken for it")
    p.add_argument("--send-timeout", type=seconds["send_timeout_s"], default=SEND_TIMEOUT_S, metavar="S",
                   help="drop a client that takes over S seconds to accept a chunk of audio")
    p.add_argument("--min-client-speed", type=config_number(LimitsConfig, "min_client_speed", float),
                   default=MIN_CLIENT_SPEED, metavar="X",
                   help="how fast, against real time, a client must take a synthesis's audio: one that falls "
                        "over --send-timeout behind is dropped")
    p.add_argument("--wyoming-allow", action="append", type=network, metavar="NET",
                   help="let Wyoming clients from NET (e.g. 192.168.1.0/24) in, repeatable; default: everyone, "
                        "but only this machine when --token is set (Wyoming has no authentication)")


TIMEOUTS = {"header_timeout": "header_timeout_s", "body_timeout": "body_timeout_s",
            "keep_alive_timeout": "keep_alive_timeout_s", "idle_timeout": "idle_timeout_s",
            "send_timeout": "send_timeout_s"}
"""Command-line option (as argparse names it) -> :class:`LimitsConfig` field."""


def network(text: str) -> str:
    """``--wyoming-allow``: an address or network, as ``ipaddress`` reads it."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address or network (e.g. 192.168.1.0/24): {text[:60]!r}") from None
    return text


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The server settings named on the command line."""
    return ServerConfig(
        voice=Path(args.voice) if args.voice else None, voices_dir=args.voices_dir, backend=args.backend,
        device=args.device, host=args.host, port=args.port, wyoming_port=args.wyoming_port, token=args.token or None,
        synthesis=synthesis_options(args),
        limits=LimitsConfig(max_input_chars=args.max_input_chars, max_streams_per_client=args.max_streams_per_client,
                            max_active_streams=args.max_active_streams,
                            max_connections_per_client=args.max_connections_per_client,
                            max_connections=args.max_connections, max_queued_turns=args.max_queued_turns,
                            min_client_speed=args.min_client_speed,
                            **{field: getattr(args, option) for option, field in TIMEOUTS.items()}),
        wyoming_allow=tuple(args.wyoming_allow) if args.wyoming_allow else None,
        voice_aliases=tuple(args.voice_alias),
    )


def run(args: argparse.Namespace) -> int:
    try:
        from ..server.runner import serve
    except ModuleNotFoundError as exc:
        raise RtvoiceError(f"rtvoice serve needs {exc.name}, which is not installed. "
                           "Hint: pip install 'rtvoice[server]'.") from exc
    config = server_config(args)
    print(banner(config), file=sys.stderr, flush=True)
    serve(config, log_level="warning" if args.verbose == 0 else "info")
    return 0


def banner(config: ServerConfig) -> str:
    """What ``rtvoice serve`` is about to listen on, and with which voices and backend, for the log."""
    from ..backends import choose
    from ..server.voices import aliases_for, discover

    host = f"[{config.host}]" if ":" in config.host else config.host
    voices = discover(config)
    aliases = aliases_for([name for name, _ in voices], voices[0][0], config.voice_aliases)  # a bad one: exit 2 now
    choice = choose(voices[0][1], config.backend, config.device)
    lines = [f"rtvoice serve: HTTP      http://{host}:{config.port}/v1/audio/speech",
             f"rtvoice serve: WebSocket ws://{host}:{config.port}/v1/audio/stream"]
    if config.wyoming_port is not None:
        lines.append(f"rtvoice serve: Wyoming   tcp://{host}:{config.wyoming_port}")
    lines.append(f"rtvoice serve: voices    {', '.join(name for name, _ in voices)} (default {voices[0][0]}; "
                 f"{len(aliases)} aliases such as {next(iter(aliases), '-')}); "
                 f"backend {choice.backend} on {choice.device}{'; token required' if config.token else ''}")
    return "\n".join(lines)
