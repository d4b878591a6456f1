"""uvicorn's h11 HTTP protocol with the read deadlines it lacks, and a way to cut a response.

uvicorn bounds only the idle time *between* requests (``timeout_keep_alive``), and any
byte cancels even that. A client could open a connection and send nothing, send half a
request line, or declare ``Content-Length: 15`` and send 5 bytes, and hold the
connection (and one of ``limit_concurrency`` places) for ever. :class:`DeadlineH11Protocol`
adds one deadline per phase of a request:

- *head*: the request line and headers must be complete ``header_timeout_s`` after the
  connection opened or the previous response ended; else the connection is closed.
- *body*: the whole body must be in ``body_timeout_s`` (plus a grace second) after the
  headers; else the connection is closed. The app answers 408 itself at
  ``body_timeout_s`` when it is reading the body (:class:`~rtvoice.server.middleware.BodyDeadline`);
  this deadline catches bodies nobody reads.

It also caps the connections one address holds open (``max_connections_per_client``,
WebSocket connections included until they close): more are closed at once, so one
address cannot take all of uvicorn's ``limit_concurrency`` places. And it holds WebSocket
upgrades to ``max_connections`` in all: uvicorn's own 503 beyond ``limit_concurrency``
is only for plain HTTP requests, so WebSockets from many addresses were not bounded.

And it gives each request the ASGI extension ``rtvoice.abort``: a callable that drops
the connection at once (without flushing). A response that cannot be completed (its
client stopped reading) calls it instead of returning half-sent, which uvicorn would
log as ``ASGI callable returned without completing response``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any, Final

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from .config import LimitsConfig
from .errors import error_body
from .http_stream import ABORT_EXTENSION

BODY_GRACE_S: Final = 1.0
"""The connection deadline trails the app's 408 by this, so the 408 goes out first."""


class DeadlineH11Protocol(H11Protocol):
    """:class:`H11Protocol` with head and body read deadlines (see the module)."""

    limits: LimitsConfig = LimitsConfig()
    """Set on a subclass by :func:`protocol_class`."""
    open_by_client: Counter[str] = Counter()
    """Open connections per address, of the server this subclass serves (see :func:`protocol_class`)."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.logger = _ClientFaults(self.logger)  # type: ignore[assignment]
        self.timeout_keep_alive = self.limits.keep_alive_timeout_s  # type: ignore[assignment]  # call_later takes float
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = "head"
        self._counted: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else "unknown"
        self._counted = host
        self.open_by_client[host] += 1
        if self.open_by_client[host] > self.limits.max_connections_per_client:
            self.logger.info("closing a connection from %s: it has %d open", host,
                             self.limits.max_connections_per_client)
            transport.close()
            return
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._release()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Hand the connection to the WebSocket protocol; it stays counted until that one ends.

        Beyond ``max_connections`` open connections (this one included) the upgrade is
        refused with 503 ``server_busy`` and the connection closed.
        """
        if len(self.connections) > self.limits.max_connections:
            self.logger.info("refused a WebSocket: %d connections are open", len(self.connections) - 1)
            body = json.dumps(error_body("The server has too many open connections. Hint: retry in a moment.",
                                         type="server_error", code="server_busy")).encode()
            headers = [("content-type", "application/json"), ("content-length", str(len(body))),
                       ("connection", "close"), ("retry-after", "1")]
            self.transport.write(b"".join((self.conn.send(h11.Response(status_code=503, headers=headers)) or b"",
                                           self.conn.send(h11.Data(data=body)) or b"",
                                           self.conn.send(h11.EndOfMessage()) or b"")))
            self.transport.close()
            return
        super().handle_websocket_upgrade(event)
        websocket = self.transport.get_protocol()
        if websocket is self:
            return
        ws_connection_lost = websocket.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            self._release()
            ws_connection_lost(exc)

        websocket.connection_lost = connection_lost  # type: ignore[method-assign]

    def _release(self) -> None:
        """Stop counting this connection against its address (once)."""
        host, self._counted = self._counted, None
        if host is not None:
            self.open_by_client[host] -= 1
            if self.open_by_client[host] <= 0:
                del self.open_by_client[host]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def handle_events(self) -> None:
        super().handle_events()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            extensions = cycle.scope.setdefault("extensions", {})
            if ABORT_EXTENSION not in extensions:
                extensions[ABORT_EXTENSION] = {"abort": lambda: self._abort(cycle)}

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._watch()

    # -- deadlines -----------------------------------------------------------------------

    def _watch(self) -> None:
        """Arm the deadline of the phase the client is in, or disarm it when it owes nothing."""
        if self.transport.is_closing() or self.transport.get_protocol() is not self:  # closed, or now a WebSocket
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            phase, delay = "head", self.limits.header_timeout_s
        elif state is h11.SEND_BODY:
            phase, delay = "body", self.limits.body_timeout_s + BODY_GRACE_S
        else:
            self._disarm()
            return
        if self._deadline is None or phase != self._phase:
            self._disarm()
            self._phase = phase
            self._deadline = self.loop.call_later(delay, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        self.logger.info("closing a connection that sent no whole request %s in time", self._phase)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def _abort(self, cycle: Any) -> None:
        """Drop the connection now: the response of ``cycle`` cannot be completed."""
        if cycle is self.cycle:
            cycle.disconnected = True
            cycle.message_event.set()
        self._disarm()
        self.transport.abort()


class _ClientFaults(logging.LoggerAdapter):  # type: ignore[type-arg]
    """uvicorn's logger, with a client's malformed request logged at INFO, not WARNING.

    A broken request is the client's fault and is answered (400); at WARNING any client
    could write a line to the server's log per connection.
    """

    CLIENT_FAULTS: Final = frozenset({"Invalid HTTP request received."})

    @property
    def level(self) -> int:  # H11Protocol reads ``logger.level``
        return int(self.logger.level)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        if msg in self.CLIENT_FAULTS:
            self.logger.info(msg, *args, **kwargs)
        else:
            self.logger.warning(msg, *args, **kwargs)


def protocol_class(limits: LimitsConfig) -> type[DeadlineH11Protocol]:
    """A :class:`DeadlineH11Protocol` bound to ``limits`` (uvicorn takes a class, not an instance)."""
    return type("RtvoiceH11Protocol", (DeadlineH11Protocol,), {"limits": limits, "open_by_client": Counter()})
