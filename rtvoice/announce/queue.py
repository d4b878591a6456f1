"""The announcement queue: highest priority first, arrival order within a priority.

A heap of ``(-priority, order)`` keys; ``order`` comes from a counter, so equal
priorities keep their order (a plain heap of announcements would not). An interrupted
announcement goes back with its original ``order`` and so stays ahead of its tier.
Single consumer (the speaker), any number of producers, all on the event loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field

from .messages import Announcement


@dataclass(frozen=True, order=True)
class Queued:
    """An announcement with its place in the queue."""

    key: tuple[int, int]
    announcement: Announcement = field(compare=False)

    @property
    def order(self) -> int:
        return self.key[1]


class AnnouncementQueue:
    """Priority queue of announcements with stable order and removal by id."""

    def __init__(self) -> None:
        self._heap: list[Queued] = []
        self._counter = itertools.count()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def put(self, announcement: Announcement, *, order: int | None = None) -> Queued:
        """Queue ``announcement``; pass ``order`` to put one back in its old place."""
        entry = Queued((-int(announcement.priority), next(self._counter) if order is None else order), announcement)
        heapq.heappush(self._heap, entry)
        self._changed.set()
        return entry

    async def get(self) -> Queued:
        """Wait for and take the first announcement."""
        while not self._heap:
            self._changed.clear()
            await self._changed.wait()
        return heapq.heappop(self._heap)

    def remove(self, announcement_id: str) -> list[Announcement]:
        """Take every queued announcement with this id out of the queue."""
        gone = [q.announcement for q in sorted(self._heap) if q.announcement.id == announcement_id]
        if gone:
            self._heap = [q for q in self._heap if q.announcement.id != announcement_id]
            heapq.heapify(self._heap)
        return gone

    def drain(self) -> list[Announcement]:
        """Empty the queue; returns what was in it, in speaking order."""
        items = [q.announcement for q in sorted(self._heap)]
        self._heap.clear()
        return items
