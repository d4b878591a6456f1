"""Server settings as data: where the voices are, where to listen, and every limit.

Two frozen dataclasses, like the library's own configs: :class:`LimitsConfig` (what one
client may ask of the server) and :class:`ServerConfig` (everything ``rtvoice serve``
takes). Defaults live in ``Final`` module constants so the CLI and the README quote the
same numbers.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ..config import RATE_RANGE, SynthesisConfig

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
MAX_INPUT_CHARS: Final = 4096
"""OpenAI's limit on ``input``; longer text is refused with 400, never truncated."""
MAX_BODY_BYTES: Final = 64 * 1024
MAX_STREAMS_PER_CLIENT: Final = 8
MAX_ACTIVE_STREAMS: Final = 16
MAX_QUEUED_STREAMS: Final = 64
MAX_PENDING_CHARS: Final = 16 * 1024
MAX_QUEUED_TURNS: Final = 256
MAX_MESSAGE_BYTES: Final = 64 * 1024
SEND_TIMEOUT_S: Final = 30.0
MIN_CLIENT_SPEED: Final = 1.0
"""Real time: a player takes audio as fast as it plays it."""
MAX_CONNECTIONS: Final = 256
MAX_CONNECTIONS_PER_CLIENT: Final = 32
HEADER_TIMEOUT_S: Final = 10.0
BODY_TIMEOUT_S: Final = 10.0
KEEP_ALIVE_TIMEOUT_S: Final = 5.0
IDLE_TIMEOUT_S: Final = 60.0
SPEED_RANGE: Final = RATE_RANGE
"""``speed`` is the speaking rate (the mel is time-scaled, the pitch stays): rtvoice's range,
narrower than OpenAI's 0.25-4, where phonemes would lose their frames or smear."""


@dataclass(frozen=True)
class LimitsConfig:
    """What one request, connection or client may ask of the server."""

    max_input_chars: int = MAX_INPUT_CHARS
    """Longest text of one HTTP request or one Wyoming ``synthesize`` event (characters)."""
    max_body_bytes: int = MAX_BODY_BYTES
    """Largest HTTP request body; larger ones get 413 before they are read."""
    max_streams_per_client: int = MAX_STREAMS_PER_CLIENT
    """Syntheses running at once for one client address (HTTP, WebSocket and Wyoming together);
    more get 429. Idle WebSocket and Wyoming connections do not count."""
    max_active_streams: int = MAX_ACTIVE_STREAMS
    """Syntheses running at once over all clients; later ones wait in a queue."""
    max_queued_streams: int = MAX_QUEUED_STREAMS
    """Syntheses allowed to wait for a free slot; beyond that a request gets 503."""
    max_pending_chars: int = MAX_PENDING_CHARS
    """Text a WebSocket or streaming Wyoming client may have buffered but not yet spoken."""
    max_queued_turns: int = MAX_QUEUED_TURNS
    """Sentences and ends a WebSocket session may have waiting to be spoken; an ``end`` beyond
    gets ``backlog_full``. Text is bounded by ``max_pending_chars``; this bounds the queue
    itself, which a client sending ``end`` alone would grow without any text."""
    max_message_bytes: int = MAX_MESSAGE_BYTES
    """Largest WebSocket message and largest Wyoming event (header, data and payload)."""
    send_timeout_s: float = SEND_TIMEOUT_S
    """A client that takes longer than this to accept one chunk of audio is dropped."""
    min_client_speed: float = MIN_CLIENT_SPEED
    """How fast, against real time, a client must accept a synthesis's audio: one that falls
    more than ``send_timeout_s`` behind is dropped, so a reader that takes each chunk just in
    time cannot hold a synthesis slot for many times the audio's length."""
    max_connections: int = MAX_CONNECTIONS
    """Open HTTP and WebSocket connections, and apart open Wyoming connections; 503 beyond
    (for plain HTTP, uvicorn's ``limit_concurrency``)."""
    max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT
    """Open connections from one address to the HTTP/WebSocket port, and apart to the Wyoming
    port; more are closed at once, so one address cannot take all ``max_connections``."""
    header_timeout_s: float = HEADER_TIMEOUT_S
    """An HTTP request's line and headers must arrive within this of the connection opening
    (or of the previous response); else the connection is closed."""
    body_timeout_s: float = BODY_TIMEOUT_S
    """An HTTP request's whole body must arrive within this of its headers; else 408 and close."""
    keep_alive_timeout_s: float = KEEP_ALIVE_TIMEOUT_S
    """An HTTP connection idle this long after a response is closed (uvicorn's ``timeout_keep_alive``)."""
    idle_timeout_s: float = IDLE_TIMEOUT_S
    """A WebSocket or Wyoming connection that sends nothing this long while nothing is being
    spoken for it is closed (a Wyoming event must also arrive whole within it)."""

    def __post_init__(self) -> None:
        for name in ("max_input_chars", "max_body_bytes", "max_streams_per_client", "max_active_streams",
                     "max_pending_chars", "max_queued_turns", "max_message_bytes", "max_connections",
                     "max_connections_per_client"):
            if getattr(self, name) < 1:
                raise ValueError(f"LimitsConfig.{name} must be at least 1, got {getattr(self, name)}.")
        if self.max_queued_streams < 0:
            raise ValueError(f"LimitsConfig.max_queued_streams must be >= 0, got {self.max_queued_streams}.")
        for name in ("send_timeout_s", "header_timeout_s", "body_timeout_s", "keep_alive_timeout_s", "idle_timeout_s",
                     "min_client_speed"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"LimitsConfig.{name} must be a positive number, got {value}.")


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``rtvoice serve`` needs: voices, backend, addresses, token and limits.

    Voices: ``voice`` (one folder) and every voice folder inside ``voices_dir`` are served,
    each under its folder name; with neither, the voice shipped with rtvoice is served.
    The first voice (``voice`` if given, else the first name in ``voices_dir``) is the
    default for requests that name none.
    """

    voice: Path | None = None
    """One voice folder, served under its folder name."""
    voices_dir: Path | None = None
    """A folder of voice folders, each served under its own folder name."""
    backend: str = "auto"
    """Backend of every voice: ``auto``, ``tensorrt`` or ``onnxruntime`` (see ``Voice.load``)."""
    device: str = "auto"
    """Device of every voice: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    host: str = DEFAULT_HOST
    """Address of the HTTP/WebSocket and Wyoming listeners; loopback unless asked otherwise."""
    port: int = DEFAULT_PORT
    wyoming_port: int | None = None
    """Port of the Wyoming listener on ``host``; ``None`` runs none."""
    token: str | None = None
    """When set, every HTTP and WebSocket request but ``/health`` needs ``Authorization: Bearer <token>``."""
    synthesis: SynthesisConfig = SynthesisConfig()
    """Per-request settings every request starts from (seed, chunking, step limit)."""
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    wyoming_allow: tuple[str, ...] | None = None
    """Networks (``192.168.1.0/24``, ``10.0.0.5``) whose clients may use Wyoming, which has no
    authentication. ``None``: everyone without ``token``, only this machine (loopback) with it,
    so a token-protected server is not open to anyone through its Wyoming port."""
    voice_aliases: tuple[tuple[str, str], ...] = ()
    """``(alias, voice)`` pairs: requests naming ``alias`` get ``voice``. OpenAI's voice names
    (:data:`rtvoice.server.voices.OPENAI_VOICES`) are aliases of the default voice unless named here."""

    def __post_init__(self) -> None:
        for network in self.wyoming_allow or ():
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"ServerConfig.wyoming_allow: {network!r} is not an address or network "
                                 "(e.g. 192.168.1.0/24).") from None

    def wyoming_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The networks Wyoming clients must come from, after applying the default."""
        if self.wyoming_allow is not None:
            return tuple(ipaddress.ip_network(n, strict=False) for n in self.wyoming_allow)
        if self.token is None:
            return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
        return (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
