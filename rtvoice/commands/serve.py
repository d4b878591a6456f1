"""``rtvoice serve``: the voice-assistant backend (OpenAI HTTP, WebSocket, Wyoming, metrics)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..cli import add_synthesis_options, add_voice_options
from ..config import SynthesisConfig
from ..errors import RtvoiceError
from ..server.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MAX_ACTIVE_STREAMS,
    MAX_INPUT_CHARS,
    MAX_STREAMS_PER_CLIENT,
    LimitsConfig,
    ServerConfig,
)

TOKEN_ENV = "RTVOICE_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve", help="serve voices over HTTP (OpenAI API), WebSocket and Wyoming",
        description="Serve voices: POST /v1/audio/speech (OpenAI-compatible), GET /v1/audio/voices, "
                    "WebSocket /v1/audio/stream, GET /health, GET /metrics, and Wyoming on --wyoming-port.")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP/WebSocket port (default {DEFAULT_PORT})")
    p.add_argument("--wyoming-port", type=int, help="also serve the Wyoming protocol on this port (e.g. 10200)")
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                   help=f"require 'Authorization: Bearer TOKEN' on HTTP and WebSocket (default: ${TOKEN_ENV})")
    p.add_argument("--voices-dir", type=Path, help="serve every voice folder in DIR, each by its folder name")
    p.add_argument("--max-input-chars", type=int, default=MAX_INPUT_CHARS, help="longest text of one request")
    p.add_argument("--max-streams-per-client", type=int, default=MAX_STREAMS_PER_CLIENT,
                   help="open streams per client address; more get 429")
    p.add_argument("--max-active-streams", type=int, default=MAX_ACTIVE_STREAMS,
                   help="syntheses running at once; more wait in a queue")
    add_voice_options(p)
    add_synthesis_options(p)
    p.set_defaults(func=run)


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The server settings named on the command line."""
    return ServerConfig(
        voice=Path(args.voice) if args.voice else None, voices_dir=args.voices_dir, backend=args.backend,
        device=args.device, host=args.host, port=args.port, wyoming_port=args.wyoming_port, token=args.token or None,
        synthesis=SynthesisConfig(seed=args.seed, chunk_frames=args.chunk_frames, sigma=args.sigma,
                                  max_decoder_steps=args.max_steps),
        limits=LimitsConfig(max_input_chars=args.max_input_chars, max_streams_per_client=args.max_streams_per_client,
                            max_active_streams=args.max_active_streams),
    )


def run(args: argparse.Namespace) -> int:
    try:
        from ..server.runner import serve
    except ModuleNotFoundError as exc:
        raise RtvoiceError(f"rtvoice serve needs {exc.name}, which is not installed. "
                           "Hint: pip install 'rtvoice[server]'.") from exc
    serve(server_config(args), log_level="warning" if args.verbose == 0 else "info")
    return 0
