"""What the running server owns, stored on ``app.state.rtvoice`` by the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from ..errors import InternalError
from .config import ServerConfig
from .limits import Admission
from .metrics import Metrics
from .voices import VoiceSet


@dataclass(frozen=True)
class ServerState:
    """The long-lived objects of one server; every handler reaches them through :func:`state_of`."""

    config: ServerConfig
    voices: VoiceSet
    admission: Admission
    metrics: Metrics


def state_of(connection: HTTPConnection) -> ServerState:
    """The server state of a request or WebSocket (the handlers' one dependency)."""
    state = getattr(connection.app.state, "rtvoice", None)
    if not isinstance(state, ServerState):
        raise InternalError("rtvoice server state is missing: was the app started through its lifespan?")
    return state


def client_id(connection: HTTPConnection) -> str:
    """The address per-client limits count by (the peer's IP; behind a proxy, the proxy's)."""
    return connection.client.host if connection.client is not None else "unknown"
