"""The async shell: a decoder producer and a vocoder consumer on two worker threads.

Threads (who calls what):

- The decoder thread runs ``Engine.open_utterance`` and ``Engine.decode_batch`` (stream A
  on the GPU backends); :mod:`rtvoice.batching` batches the decoder steps of concurrent
  streams into one call. The vocoder thread runs ``Engine.vocode_batch`` (stream B), fed
  the same way with the chunks of every stream that are ready at the same moment. Each is
  a single-thread executor owned by :class:`Workers`, shared by every stream of a voice, so
  concurrent requests interleave batch by batch and engines never see a third thread.
- The event loop only moves small objects between bounded queues, cuts chunks and
  cross-fades them. Results cross from a worker thread into the loop through
  ``run_in_executor`` futures (which asyncio resolves with ``call_soon_threadsafe``).

Cancellation (``aclose()``, task cancel, or breaking out of ``async for``) cancels both
tasks; at most the one batch of steps or the one chunk in flight completes, then every
utterance of the request is closed on the worker threads, after their queued work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from .audio import AudioChunk
from .batching import DecodeBatcher, VocodeBatcher
from .config import BatchingConfig, ResolvedSynthesis, SynthesisConfig
from .engine.protocol import Engine, Utterance
from .script import Reading, prepare
from .synthesizer import ChunkVocoder, Clock, Progress, Sentence, SentenceDecoder, open_sentence

T = TypeVar("T")
_END = object()


class Workers:
    """The decoder and vocoder threads of one voice. ``close()`` is idempotent.

    Args:
        name: The voice's name, for the threads' names.
        batching: The voice's batch limits (``VoiceConfig.batching``).
    """

    def __init__(self, name: str, batching: BatchingConfig | None = None) -> None:
        limits = batching or BatchingConfig()
        decoder = ThreadPoolExecutor(1, thread_name_prefix=f"rtvoice[{name}].decoder")
        vocoder = ThreadPoolExecutor(1, thread_name_prefix=f"rtvoice[{name}].vocoder")
        self.decoder: ThreadPoolExecutor | None = decoder
        self.vocoder: ThreadPoolExecutor | None = vocoder
        self.batcher = DecodeBatcher(decoder)
        """Continuous batching of the decoder steps of every stream of the voice."""
        self.vocode_batcher = VocodeBatcher(vocoder, limits.vocoder_max)
        """Batching of the vocoder chunks of every stream that are ready together."""

    def close(self) -> None:
        for pool in (self.decoder, self.vocoder):
            if pool is not None:
                pool.shutdown(wait=True)
        self.decoder = self.vocoder = None


async def _on(pool: ThreadPoolExecutor | None, fn: Callable[..., T], *args: object) -> T:
    if pool is None:
        raise RuntimeError("voice is closed")
    return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


async def stream(engine: Engine, workers: Workers, text: str | Reading, config: SynthesisConfig | None = None,
                 ) -> AsyncGenerator[AudioChunk, None]:
    """Speak ``text`` (or a :class:`Reading` of it); yields chunks while the decoder goes on. See the module docstring.

    The two tasks are owned here rather than by an ``asyncio.TaskGroup``: a task group
    spanning a ``yield`` would cancel whatever the *caller* awaits when a task fails.
    Instead errors travel down the queues and are raised at the ``async for``, and the
    ``finally`` cancels and awaits both tasks.
    """
    settings = (config or SynthesisConfig()).resolve(engine.config)
    script = prepare(text, engine.config, settings)
    sentences = script.sentences
    clock = Clock(engine.config.audio.sample_rate)
    depth = engine.config.streaming.queue_chunks
    progress_q: asyncio.Queue[object] = asyncio.Queue(depth)
    out_q: asyncio.Queue[object] = asyncio.Queue(depth)
    opened: list[Utterance] = []
    closed: set[int] = set()
    tasks = [
        asyncio.create_task(_produce(engine, workers, sentences, settings, progress_q, opened),
                            name="rtvoice[pipeline].decoder"),
        asyncio.create_task(_consume(engine, workers, ChunkVocoder(engine.config, settings, len(sentences), clock,
                                                                  script.prosody),
                                     progress_q, out_q, closed),
                            name="rtvoice[pipeline].vocoder"),
    ]
    try:
        while (item := await out_q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, AudioChunk)
            yield item
    finally:
        interrupted = not tasks[0].done()  # then an open may still be running on the decoder thread
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.shield(_close_all(workers, opened, closed, interrupted))


async def _produce(engine: Engine, workers: Workers, sentences: list[Sentence], settings: ResolvedSynthesis,
                   progress_q: asyncio.Queue[object], opened: list[Utterance]) -> None:
    try:
        for sentence in sentences:
            utterance = await _on(workers.decoder, _open, engine, sentence, settings, opened)
            plan_ = SentenceDecoder(utterance, sentence, engine.config, settings)
            while (masks := plan_.next_masks()) is not None:
                gates = await workers.batcher.decode(engine, utterance, masks)
                await progress_q.put(plan_.accept(gates))
    except Exception as exc:  # handed to the consumer, which raises it at the caller's async for
        await progress_q.put(exc)
    else:
        await progress_q.put(_END)


def _open(engine: Engine, sentence: Sentence, settings: ResolvedSynthesis, opened: list[Utterance]) -> Utterance:
    """Open ``sentence`` and record it, both on the decoder thread.

    Cancelling the stream cancels the await of this call, not the call: the open still
    finishes, and the utterance (a GPU engine's row) is recorded here so that
    :func:`_close_all` closes it rather than leaking it.
    """
    utterance = open_sentence(engine, sentence, settings)
    opened.append(utterance)
    return utterance


async def _consume(engine: Engine, workers: Workers, vocoder: ChunkVocoder,
                   progress_q: asyncio.Queue[object], out_q: asyncio.Queue[object], closed: set[int]) -> None:
    try:
        while (item := await progress_q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Progress)
            if workers.vocoder is None:
                raise RuntimeError("voice is closed")
            windows = vocoder.windows(item)
            # Every ready chunk of this stream goes to the batcher at once (with those of
            # other streams); their audio comes back in order for the cross-fades.
            audio = await asyncio.gather(*(workers.vocode_batcher.vocode(engine, partial(vocoder.item, w))
                                           for w in windows))
            for window, samples in zip(windows, audio, strict=True):
                await out_q.put(vocoder.finish(window, samples))
            if item.final:
                await _on(workers.vocoder, item.utterance.close)
                closed.add(id(item.utterance))
    except Exception as exc:
        await out_q.put(exc)
    else:
        await out_q.put(_END)


async def _close_all(workers: Workers, opened: list[Utterance], closed: set[int], interrupted: bool) -> None:
    """Close what a cancelled request left open, after the work queued on both threads.

    ``interrupted``: the producer was cancelled mid-way, so an open it awaited may still be
    running on the decoder thread; waiting for that thread first lets it record its utterance.
    """
    if not interrupted and all(id(u) in closed for u in opened):
        return  # the usual end: nothing to wait for
    if workers.decoder is not None:  # else shut down, after all it ran: nothing to wait for
        await _on(workers.decoder, lambda: None)
    for utterance in [u for u in opened if id(u) not in closed]:
        await _on(workers.vocoder, utterance.close)
