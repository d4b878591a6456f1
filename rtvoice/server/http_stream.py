"""A chunked HTTP response that stops synthesis the moment its client goes away.

Starlette's ``StreamingResponse`` cancels its sender when the client disconnects but
leaves the body generator to the garbage collector, so the voice's stream would only be
closed "some time later". :class:`AudioStreamResponse` closes it at once: it runs the
sender and a disconnect watcher as two named tasks, stops whichever is left when one
ends, and then ``aclose()``s the body. A client that does not take a chunk within
``send_timeout_s`` is dropped the same way, so it cannot hold a synthesis slot forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Final

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

log = logging.getLogger("rtvoice.server")
ABORT_EXTENSION: Final = "rtvoice.abort"
"""ASGI extension of :mod:`rtvoice.server.protocol`: ``scope["extensions"][ABORT_EXTENSION]["abort"]()``."""


class AudioStreamResponse(Response):
    """An ASGI response streaming ``first`` and then the rest of ``body``, chunked.

    The body is an async generator already advanced once (its first bytes are ``first``),
    so that errors a request can still be refused for surface before the status line.
    Whatever happens, the generator is closed when the response ends.
    """

    def __init__(self, first: bytes, body: AsyncGenerator[bytes, None], *, media_type: str,
                 headers: Mapping[str, str] | None = None, send_timeout_s: float = 30.0) -> None:
        self.first = first
        self.chunks = body
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers({"cache-control": "no-store", **(headers or {})})
        self.send_timeout_s = send_timeout_s
        self.outcome = "pending"
        """``complete``, ``disconnected``, ``slow_client`` or ``error`` once the response ended."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                sender = group.create_task(self._send_all(send), name="rtvoice[http].send_audio")
                watcher = group.create_task(_until_disconnect(receive), name="rtvoice[http].watch_disconnect")
                await asyncio.wait((sender, watcher), return_when=asyncio.FIRST_COMPLETED)
                if watcher.done() and not sender.done():
                    self.outcome = "disconnected"
                sender.cancel()
                watcher.cancel()
        finally:
            if self.outcome in ("slow_client", "error"):
                _abort(scope)
            # Both tasks have ended: nobody iterates the body any more, so closing it here
            # is safe, and it stops the synthesis within one chunk.
            await self.chunks.aclose()
        if self.outcome == "disconnected":
            log.info("client went away mid-stream; synthesis stopped")

    async def _send_all(self, send: Send) -> None:
        try:
            await self._send(send, {"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await self._send(send, {"type": "http.response.body", "body": self.first, "more_body": True})
            async for data in self.chunks:
                await self._send(send, {"type": "http.response.body", "body": data, "more_body": True})
            await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
            self.outcome = "complete"
        except TimeoutError as exc:  # a send timed out, or the synthesis found the client too slow (SlowClientError)
            # The connection is dropped (``_abort``) without the last body message, so the
            # client sees a cut transfer, not a short but complete one.
            self.outcome = "slow_client"
            log.warning("%s", str(exc) or f"client took over {self.send_timeout_s:.1f} s to accept audio; dropped")
        except OSError:  # the connection broke under the send
            self.outcome = "disconnected"
        except Exception:
            self.outcome = "error"
            log.exception("synthesis failed after the response had started; connection closed")

    async def _send(self, send: Send, message: dict[str, object]) -> None:
        async with asyncio.timeout(self.send_timeout_s):
            await send(message)


def _abort(scope: Scope) -> None:
    """Drop the connection of a response that cannot be completed.

    Under ``rtvoice serve`` the protocol offers ``rtvoice.abort``; another ASGI server
    closes the connection itself when the app returns with the response unfinished.
    """
    abort = scope.get("extensions", {}).get(ABORT_EXTENSION, {}).get("abort")
    if callable(abort):
        abort()


async def _until_disconnect(receive: Receive) -> None:
    """Return when the client disconnects (the request body was read before)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
