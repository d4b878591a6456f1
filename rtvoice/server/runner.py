"""Run the app with uvicorn, its own limits set from :class:`ServerConfig`."""

from __future__ import annotations

import ipaddress
import logging

import uvicorn

from ..errors import RtvoiceError
from .app import create_app
from .config import ServerConfig
from .protocol import protocol_class
from .voices import discover

log = logging.getLogger("rtvoice.server")


def uvicorn_config(config: ServerConfig, *, log_level: str = "warning") -> uvicorn.Config:
    """The uvicorn settings ``rtvoice serve`` uses (the tests run the same).

    WebSocket messages are capped at ``limits.max_message_bytes``, open connections at
    ``limits.max_connections`` (503 beyond); ``X-Forwarded-For`` is not trusted, so
    per-client limits count the peer address. HTTP runs on :class:`~rtvoice.server.protocol.DeadlineH11Protocol`,
    which times out slow request heads and bodies and idle keep-alive connections.
    """
    return uvicorn.Config(
        create_app(config), host=config.host, port=config.port, lifespan="on", log_level=log_level,
        http=protocol_class(config.limits), ws="websockets-sansio", ws_max_size=config.limits.max_message_bytes,
        limit_concurrency=config.limits.max_connections, timeout_graceful_shutdown=5,
        proxy_headers=False, server_header=False,
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config: ServerConfig, *, log_level: str = "warning") -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM): HTTP/WebSocket on ``port``, Wyoming on ``wyoming_port``.

    Raises:
        VoiceError: a voice folder is missing or two voices share a name (checked before
            anything starts).
        RtvoiceError: the server did not start (a voice failed to load, a port is taken);
            the log says why.
    """
    discover(config)  # wrong folders fail here, as one line, not as a lifespan traceback
    if not is_loopback(config.host) and config.token is None:
        log.warning("listening on %s without --token: anyone who can reach this address can use the server",
                    config.host)
    if (config.wyoming_port is not None and config.token is not None and config.wyoming_allow is None
            and not is_loopback(config.host)):
        log.warning("Wyoming serves this machine only: it has no authentication and --token is set. "
                    "Hint: --wyoming-allow NET lets Home Assistant (or others on NET) in.")
    server = uvicorn.Server(uvicorn_config(config, log_level=log_level))
    server.run()
    if not server.started:
        raise RtvoiceError(f"The server did not start on {config.host}:{config.port}; the log above says why.")
