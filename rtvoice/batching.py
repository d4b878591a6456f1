"""Continuous batching of decoder steps across the concurrent streams of one voice.

Each stream's producer asks for its next batch of decoder steps with :meth:`decode`.
Requests that arrive while the decoder thread is busy wait, and are then run together in
one ``Engine.decode_batch`` call: streams join and leave the batch between batches of
steps (``gate_check_interval`` steps, 8 by default), never in the middle of one.

Threads: everything here runs on the event loop; the one executor call per batch runs on
the voice's decoder thread. A request whose stream was cancelled before its batch formed
is dropped, so cancelled streams stop costing decoder time at once; one already in the
batch in flight finishes with it (the pipeline closes utterances only after that).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .models.engine import Engine, Utterance

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
                try:
                    results = await loop.run_in_executor(self._pool, engine.decode_batch, items)
                except Exception as exc:  # handed to each waiting stream, which raises it to its caller
                    for r in batch:
                        if not r.future.done():
                            r.future.set_exception(exc)
                    continue
                self.batches += 1
                self.largest = max(self.largest, len(batch))
                for r, gates in zip(batch, results, strict=True):
                    if not r.future.done():
                        r.future.set_result(gates)
