"""Admission control: streams per client, syntheses at once, and the wait queue.

Every protocol (HTTP, WebSocket, Wyoming) goes through one :class:`Admission`, owned by
the app and used only on the event loop thread:

- :meth:`Admission.client` counts a client's running syntheses and refuses the one over
  ``max_streams_per_client`` with 429, before any work is done.
- :meth:`Admission.connection` counts a client's open Wyoming connections (HTTP ones are
  counted by :mod:`rtvoice.server.protocol`) and refuses the one over ``max_connections_per_client``,
  or over ``max_connections`` in all (clients at many addresses).
- :meth:`Admission.synthesis` holds one of ``max_active_streams`` slots while a synthesis
  runs (all of them share the voice's decoder and vocoder threads, so the cap keeps
  each stream's latency bounded); later ones wait, and beyond ``max_queued_streams``
  waiting they get 503. The counts feed the ``active``/``queued`` gauges of /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator

from .config import LimitsConfig
from .errors import ApiError


class Admission:
    """Counts of open streams per client and of running and waiting syntheses."""

    def __init__(self, limits: LimitsConfig) -> None:
        self._limits = limits
        self._per_client: Counter[str] = Counter()
        self._connections: Counter[str] = Counter()
        self._slots = asyncio.Semaphore(limits.max_active_streams)
        self._idle = asyncio.Event()
        self._idle.set()
        self.active = 0
        """Syntheses running now."""
        self.queued = 0
        """Syntheses waiting for a slot."""

    def streams_of(self, client: str) -> int:
        """Open streams of ``client`` (an address)."""
        return self._per_client[client]

    @contextlib.contextmanager
    def client(self, client: str) -> Iterator[None]:
        """Count one open stream of ``client`` for the duration of the ``with``.

        Raises:
            ApiError: 429 when ``client`` already has ``max_streams_per_client`` open.
        """
        limit = self._limits.max_streams_per_client
        if self._per_client[client] >= limit:
            raise ApiError(
                429, f"Too many concurrent streams from this client. Note: the limit is {limit}. "
                "Hint: wait for a stream to finish, or raise --max-streams-per-client.",
                code="rate_limit_exceeded", type="requests", headers={"Retry-After": "1"})
        with _counted(self._per_client, client):
            yield

    @contextlib.contextmanager
    def connection(self, client: str) -> Iterator[None]:
        """Count one open Wyoming connection of ``client`` for the duration of the ``with``.

        Raises:
            ApiError: 429 when ``client`` already has ``max_connections_per_client`` open,
                503 when ``max_connections`` are open in all.
        """
        if self._connections.total() >= self._limits.max_connections:
            raise ApiError(503, f"The server has too many open connections. Note: the limit is "
                           f"{self._limits.max_connections}. Hint: retry in a moment.", code="server_busy",
                           type="server_error")
        limit = self._limits.max_connections_per_client
        if self._connections[client] >= limit:
            raise ApiError(429, f"Too many open connections from this client. Note: the limit is {limit}. "
                           "Hint: close idle connections.", code="too_many_connections", type="requests")
        with _counted(self._connections, client):
            yield

    @contextlib.asynccontextmanager
    async def synthesis(self) -> AsyncIterator[None]:
        """Hold one synthesis slot, waiting in the queue for it if all are taken.

        Raises:
            ApiError: 503 when ``max_queued_streams`` syntheses are already waiting.
        """
        if self._slots.locked() and self.queued >= self._limits.max_queued_streams:
            raise ApiError(
                503, f"The server is busy. Note: {self.active} syntheses are running and {self.queued} waiting. "
                "Hint: retry in a moment.", code="server_busy", type="server_error", headers={"Retry-After": "1"})
        self.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        self.active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()
            self._slots.release()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no synthesis runs, at most ``timeout_s``; returns whether none does."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


@contextlib.contextmanager
def _counted(counts: Counter[str], client: str) -> Iterator[None]:
    """Count one for ``client`` during the ``with``; a count back at 0 is deleted (the map holds open clients only)."""
    counts[client] += 1
    try:
        yield
    finally:
        counts[client] -= 1
        if counts[client] <= 0:
            del counts[client]
