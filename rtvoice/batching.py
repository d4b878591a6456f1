"""Batching the work of the concurrent streams of one voice: decoder steps and vocoder chunks.

Each stream's producer asks for its next batch of decoder steps with :meth:`decode`.
Requests that arrive while the decoder thread is busy wait, and are then run together in
one ``Engine.decode_batch`` call: streams join and leave the batch between batches of
steps (``gate_check_interval`` steps, 8 by default), never in the middle of one.

Threads: everything here runs on the event loop; the one executor call per batch runs on
the voice's decoder thread. A request whose stream was cancelled before its batch formed
is dropped, so cancelled streams stop costing decoder time at once; one already in the
batch in flight finishes with it (the pipeline closes utterances only after that).

:class:`VocodeBatcher` does the same for vocoder chunks on the vocoder thread: chunks that
are ready while a vocoder call runs go together in the next ``Engine.vocode_batch`` call,
at most ``BatchingConfig.vocoder_max`` of them; a chunk that finds the thread idle runs at
once, alone, so a lone stream waits for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from .engine.protocol import Engine, Utterance, VocodeItem

R = TypeVar("R")

Gates = npt.NDArray[np.float32]


@dataclass
class _Request:
    engine: Engine
    utterance: Utterance
    masks: npt.NDArray[np.float32]
    future: asyncio.Future[Gates]


class DecodeBatcher:
    """Collects decode requests and runs them in batches on the decoder thread.

    The batching task is started on demand (on the running loop) and ends when no request
    is waiting, so the batcher belongs to no particular event loop.
    """

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._pending: list[_Request] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches run so far (for tests and metrics)."""
        self.largest = 0
        """The most utterances seen in one batch."""

    async def decode(self, engine: Engine, utterance: Utterance, masks: npt.NDArray[np.float32]) -> Gates:
        """Decode ``len(masks)`` steps of ``utterance``, batched with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        request = _Request(engine, utterance, masks, loop.create_future())
        self._pending.append(request)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="rtvoice[pipeline].decode_batcher")
        return await request.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            waiting, self._pending = self._pending, []
            live = [r for r in waiting if not r.future.done()]
            for engine in {id(r.engine): r.engine for r in live}.values():
                batch = [r for r in live if r.engine is engine]
                items: Sequence[tuple[Utterance, npt.NDArray[np.float32]]] = [(r.utterance, r.masks) for r in batch]
                call = loop.run_in_executor(self._pool, engine.decode_batch, items)
                if await _resolve([r.future for r in batch], call):
                    self.batches += 1
                    self.largest = max(self.largest, len(batch))


Audio = npt.NDArray[np.float32]


@dataclass
class _Chunk:
    engine: Engine
    make: Callable[[], VocodeItem]
    future: asyncio.Future[Audio]


class VocodeBatcher:
    """Collects chunks to vocode and runs them in batches on the vocoder thread.

    Like :class:`DecodeBatcher`, its task starts on demand and ends when nothing waits.
    Chunks go in arrival order; a batch holds chunks of one engine only.

    Args:
        pool: The vocoder thread.
        max_batch: Most chunks per ``vocode_batch`` call (1: no batching).
    """

    def __init__(self, pool: ThreadPoolExecutor, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}.")
        self._pool = pool
        self.max_batch = max_batch
        self._pending: list[_Chunk] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches run so far (for tests and metrics)."""
        self.chunks = 0
        """Chunks vocoded in them."""
        self.largest = 0
        """The most chunks seen in one batch."""

    async def vocode(self, engine: Engine, make: Callable[[], VocodeItem]) -> Audio:
        """The audio of the chunk ``make()`` describes, batched with whatever else is waiting.

        ``make`` runs on the vocoder thread (it draws the chunk's noise: too much work for
        the event loop at hundreds of streams); it must only read immutable state.
        """
        loop = asyncio.get_running_loop()
        chunk = _Chunk(engine, make, loop.create_future())
        self._pending.append(chunk)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="rtvoice[pipeline].vocode_batcher")
        return await chunk.future

    def _take(self) -> list[_Chunk]:
        """The next batch: the oldest live chunk and up to ``max_batch - 1`` later ones of its engine."""
        self._pending = [c for c in self._pending if not c.future.done()]  # drop cancelled streams' chunks
        if not self._pending:
            return []
        engine = self._pending[0].engine
        batch = [c for c in self._pending if c.engine is engine][: self.max_batch]
        taken = {id(c) for c in batch}
        self._pending = [c for c in self._pending if id(c) not in taken]
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while batch := self._take():
            engine = batch[0].engine
            makers = [c.make for c in batch]
            if await _resolve([c.future for c in batch], loop.run_in_executor(self._pool, _vocode, engine, makers)):
                self.batches += 1
                self.chunks += len(batch)
                self.largest = max(self.largest, len(batch))


async def _resolve(futures: Sequence[asyncio.Future[R]], call: Awaitable[list[R]]) -> bool:
    """Await one batched call and hand each waiting stream its result, or the call's error.

    A stream cancelled meanwhile just drops its result. False when the call failed.
    """
    try:
        results = await call
    except Exception as exc:  # handed to each waiting stream, which raises it to its caller
        for future in futures:
            if not future.done():
                future.set_exception(exc)
        return False
    for future, result in zip(futures, results, strict=True):
        if not future.done():
            future.set_result(result)
    return True


def _vocode(engine: Engine, makers: Sequence[Callable[[], VocodeItem]]) -> list[Audio]:
    """On the vocoder thread: draw each chunk's inputs, then one ``vocode_batch`` call."""
    return engine.vocode_batch([make() for make in makers])
