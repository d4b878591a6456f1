"""Small ASGI middlewares: bearer-token auth, per-route request counting, the body deadline, framing."""

from __future__ import annotations

import asyncio
import hmac
from typing import Final

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError
from .metrics import Metrics

KNOWN_ROUTES: Final = frozenset({"/v1/audio/speech", "/v1/audio/voices", "/v1/audio/stream", "/health", "/metrics"})
OPEN_PATHS: Final = frozenset({"/health"})
"""Paths answered without a token (liveness probes)."""


def refuse(error: ApiError) -> Response:
    """The JSON response for ``error``; over a WebSocket it is sent as the handshake's answer."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def deny_websocket(scope: Scope, receive: Receive, send: Send, error: ApiError) -> None:
    """Refuse a WebSocket handshake with ``error`` as an HTTP response (close 1008 if unsupported)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        await refuse(error)(scope, receive, send)
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": error.code})


class BearerAuth:
    """Require ``Authorization: Bearer <token>`` on HTTP and WebSocket requests (but /health).

    With ``token=None`` every request passes. The comparison takes constant time.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._token = None if token is None else token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._token is None or scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self._authorized(Headers(scope=scope).get("authorization", "")):
            await self.app(scope, receive, send)
            return
        error = ApiError(401, "Missing or wrong bearer token. Hint: send 'Authorization: Bearer <token>' "
                         "with the token the server was started with.", code="invalid_api_key",
                         headers={"www-authenticate": "Bearer"})
        if scope["type"] == "http":
            await refuse(error)(scope, receive, send)
        else:
            await deny_websocket(scope, receive, send, error)

    def _authorized(self, header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        assert self._token is not None
        given = credentials.strip().encode("latin-1")  # the raw header bytes (ASGI decodes latin-1)
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self._token)


class AmbiguousFraming:
    """Refuse (400, and close) an HTTP request that has both ``Transfer-Encoding`` and ``Content-Length``.

    Such a request may be a smuggling attempt: a proxy that frames by ``Content-Length``
    and this server (by chunks) disagree on where the next request starts. RFC 9112 (6.3)
    says to close the connection after answering it; h11 would answer it and keep going.
    It runs before the token check, so even a 401 could not leave the connection open.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            names = {name.lower() for name, _ in scope["headers"]}
            if b"transfer-encoding" in names and b"content-length" in names:
                error = ApiError(400, "The request has both Transfer-Encoding and Content-Length, so where its body "
                                 "ends is ambiguous. Hint: send one of them.", code="ambiguous_framing",
                                 headers={"connection": "close"})
                await refuse(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequestMetrics:
    """Count HTTP requests by route and status code; unknown paths count as ``other``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in KNOWN_ROUTES else "other"
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self._metrics.http_requests.labels(route, str(status)).inc()


class BodyDeadline:
    """Answer 408 (and close) when an HTTP request's body is not all in ``timeout_s`` after its headers.

    It bounds the app's ``receive()`` while the body is incomplete: a client that sends
    ``Content-Length: 15`` and 5 bytes gets a 408 on time instead of holding a handler.
    Once the body is complete, ``receive()`` (which then waits for a disconnect) is not bounded.
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self._timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        complete = False

        async def bounded_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise ApiError(408, f"The request body did not arrive within {self._timeout_s:g} s. "
                               "Hint: send the whole body at once.", code="request_timeout",
                               headers={"connection": "close"}) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, bounded_receive, send)
