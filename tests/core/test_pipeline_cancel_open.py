"""A stream cancelled while its sentence is still being opened on the decoder thread closes it.

The open runs on the decoder thread; cancelling the stream cancels the await, not the open,
which finishes afterwards. The utterance it returns holds a row of a GPU engine (a limited
``batching.max_rows``), so if nobody closes it every such cancel leaks a row until the
engine refuses new sentences. Found in review (2026-12-07).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from engine_wrappers import TrackingEngine

from rtvoice import SynthesisConfig, Voice, pipeline
from rtvoice.engine.protocol import Engine, Utterance


class SlowOpenEngine(TrackingEngine):
    """The real CPU engine whose ``open_utterance`` waits for ``release``; tracks open utterances."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner)
        self.entered, self.release = threading.Event(), threading.Event()

    def open_utterance(self, ids: Sequence[int], max_steps: int) -> Utterance:
        self.entered.set()
        assert self.release.wait(30), "the test never released the open"
        return super().open_utterance(ids, max_steps)


async def test_a_stream_cancelled_while_its_sentence_opens_closes_that_sentence(tiny_voice: Voice) -> None:
    engine = SlowOpenEngine(tiny_voice.engine)
    workers = pipeline.Workers("cancel-open")

    async def listen() -> None:
        async for _chunk in pipeline.stream(engine, workers, "One.", SynthesisConfig(force_steps=40)):
            pass

    task = asyncio.create_task(listen())
    try:
        assert await asyncio.to_thread(engine.entered.wait, 30)
        task.cancel()  # while the decoder thread is inside open_utterance
        threading.Timer(0.2, engine.release.set).start()  # the open finishes after the cancel
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        engine.release.set()
        await asyncio.to_thread(workers.close)  # everything queued on both threads has run
    assert not engine.open, "the sentence opened for a cancelled stream was never closed"
