"""Vocoder chunks of concurrent streams batched into one WaveGlow call (issue #7), on the CPU."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rtvoice import SynthesisConfig, Voice
from rtvoice.audio import concatenate
from rtvoice.batching import VocodeBatcher
from rtvoice.config import BatchingConfig
from rtvoice.engine.protocol import Engine, Utterance, VocodeItem
from rtvoice.engine.randomness import PrenetMasks, noise
from rtvoice.ort.cpu_engine import CpuUtterance


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    err = np.sum((reference.astype(np.float64) - other) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / err))


class TrackingEngine:
    """The real CPU engine (so batches really stack), remembering every utterance it opened."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.config, self.name, self.device = inner.config, inner.name, inner.device
        self.opened: list[Utterance] = []
        self.batch_sizes: list[int] = []

    def open_utterance(self, ids: Sequence[int], max_steps: int) -> Utterance:
        utterance = self.inner.open_utterance(ids, max_steps)
        self.opened.append(utterance)
        return utterance

    def decode_batch(self, items: Sequence[tuple[Utterance, np.ndarray]]) -> list[np.ndarray]:
        return self.inner.decode_batch(items)

    def vocode_batch(self, items: Sequence[VocodeItem]) -> list[np.ndarray]:
        self.batch_sizes.append(len(items))
        return self.inner.vocode_batch(items)

    def close(self) -> None:
        pass

    def all_closed(self) -> bool:
        return all(isinstance(u, CpuUtterance) and u._closed for u in self.opened)


def test_vocode_batch_equals_one_chunk_at_a_time(tiny_voice: Voice) -> None:
    engine = tiny_voice.engine
    utterances = [engine.open_utterance([5 + i, 6, 7, 8] * (i + 1), 200) for i in range(3)]
    try:
        for i, u in enumerate(utterances):
            u.decode(PrenetMasks(i, 0, engine.config.decoder.prenet_dim).take(100 + 10 * i))
        # First chunks, middle chunks (equal sizes: stacked) and last chunks (odd sizes).
        windows = [(0, 32, 100), (16, 112, 120), (48, 96, 96), (60, 100, 100), (84, 100, 100)]
        items = [VocodeItem(u, a, b, limit, noise(i, 0, 8, a * 32, b * 32, 0.6))
                 for i, u in enumerate(utterances) for a, b, limit in windows if b <= u.frames]
        alone = [item.vocode() for item in items]
        together = engine.vocode_batch(items)
    finally:
        for u in utterances:
            u.close()
    assert len(items) >= 12
    for a, b, item in zip(alone, together, items, strict=True):
        assert len(b) == (item.stop - item.start) * 256
        assert snr_db(a, b) > 100.0  # rows are independent: only float summation order may differ


async def test_concurrent_streams_are_vocoded_together_and_sound_as_alone(tiny_voice: Voice) -> None:
    from rtvoice import pipeline

    texts = ["First stream, a short one.", "The second stream has rather more words in it.",
             "Third.", "A fourth, different again."]
    configs = [SynthesisConfig(seed=i, force_steps=60 + 11 * i, chunk_frames=16) for i in range(len(texts))]
    alone = [concatenate(tiny_voice.synthesize(t, c)) for t, c in zip(texts, configs, strict=True)]
    engine = TrackingEngine(tiny_voice.engine)
    workers = pipeline.Workers("vocbatch", BatchingConfig(vocoder_max=3))
    try:
        async def one(text: str, config: SynthesisConfig) -> np.ndarray:
            return concatenate([c async for c in pipeline.stream(engine, workers, text, config)])

        together = await asyncio.gather(*(one(t, c) for t, c in zip(texts, configs, strict=True)))
    finally:
        workers.close()
    assert workers.vocode_batcher.largest >= 2  # really batched
    assert max(engine.batch_sizes) <= 3  # and never past the limit
    assert workers.vocode_batcher.chunks == sum(engine.batch_sizes)
    for a, b in zip(alone, together, strict=True):
        assert len(a) == len(b)
        assert snr_db(a, b) > 80.0
    assert engine.all_closed()


async def test_one_stream_sounds_the_same_with_and_without_vocoder_batching(tiny_voice: Voice) -> None:
    from rtvoice import pipeline

    config = SynthesisConfig(seed=3, force_steps=90, chunk_frames=16)
    sync = concatenate(tiny_voice.synthesize("Alone on the line.", config))
    for limit in (1, 8):
        workers = pipeline.Workers("alone", BatchingConfig(vocoder_max=limit))
        try:
            chunks = [c async for c in pipeline.stream(tiny_voice.engine, workers, "Alone on the line.", config)]
        finally:
            workers.close()
        assert np.array_equal(concatenate(chunks), sync)
        if limit == 1:
            assert workers.vocode_batcher.largest == 1


class GatedEngine:
    """Records each vocode_batch call; a call blocks until the test opens the gate."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.started = threading.Event()
        self.gate = threading.Event()

    def vocode_batch(self, items: Sequence[VocodeItem]) -> list[np.ndarray]:
        self.calls.append([item.start for item in items])
        self.started.set()
        assert self.gate.wait(10)
        return [np.full(4, item.start, np.float32) for item in items]


def _item(n: int) -> VocodeItem:
    return VocodeItem(None, n, n + 1, n + 1, np.zeros((1, 8, 32), np.float32))  # type: ignore[arg-type]


async def _until(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, 10)


async def test_batcher_runs_a_lone_chunk_at_once_and_batches_what_waits() -> None:
    engine = GatedEngine()
    with ThreadPoolExecutor(1) as pool:
        batcher = VocodeBatcher(pool, max_batch=2)
        first = asyncio.ensure_future(batcher.vocode(engine, lambda: _item(0)))  # type: ignore[arg-type]
        await _until(engine.started)
        assert engine.calls == [[0]]  # alone, without waiting for company
        later = [asyncio.ensure_future(batcher.vocode(engine, lambda n=n: _item(n)))  # type: ignore[arg-type]
                 for n in (1, 2, 3)]
        await asyncio.sleep(0.05)
        engine.gate.set()
        results = await asyncio.gather(first, *later)
    assert engine.calls == [[0], [1, 2], [3]]  # those that waited go together, at most 2 a call
    assert [int(r[0]) for r in results] == [0, 1, 2, 3]
    assert (batcher.batches, batcher.chunks, batcher.largest) == (3, 4, 2)


async def test_batcher_cancelled_chunk_does_not_disturb_its_batch() -> None:
    engine = GatedEngine()
    with ThreadPoolExecutor(1) as pool:
        batcher = VocodeBatcher(pool, max_batch=8)
        busy = asyncio.ensure_future(batcher.vocode(engine, lambda: _item(0)))  # type: ignore[arg-type]
        await _until(engine.started)
        waiting = [asyncio.ensure_future(batcher.vocode(engine, lambda n=n: _item(n)))  # type: ignore[arg-type]
                   for n in (1, 2)]
        await asyncio.sleep(0)
        waiting[0].cancel()  # cancelled before its batch formed: dropped
        await asyncio.sleep(0.01)
        busy.cancel()  # cancelled mid-batch: the batch runs on, its audio is dropped
        engine.gate.set()
        assert int((await waiting[1])[0]) == 2
        for task in (busy, waiting[0]):
            with pytest.raises(asyncio.CancelledError):
                await task
    assert engine.calls == [[0], [2]]
    assert batcher._pending == []


async def test_cancelling_one_stream_leaves_the_others_whole(tiny_voice: Voice) -> None:
    from rtvoice import pipeline

    texts = ["Keep going, first.", "Stop me early, please.", "Keep going, third.", "And the fourth."]
    configs = [SynthesisConfig(seed=10 + i, force_steps=70, chunk_frames=16) for i in range(len(texts))]
    alone = [concatenate(tiny_voice.synthesize(t, c)) for t, c in zip(texts, configs, strict=True)]
    engine = TrackingEngine(tiny_voice.engine)
    workers = pipeline.Workers("cancel", BatchingConfig(vocoder_max=4))
    try:
        async def one(text: str, config: SynthesisConfig, stop_after: int | None) -> np.ndarray:
            chunks = []
            async with contextlib.aclosing(pipeline.stream(engine, workers, text, config)) as stream:
                async for chunk in stream:
                    chunks.append(chunk)
                    if stop_after is not None and len(chunks) >= stop_after:
                        break
            return concatenate(chunks)

        together = await asyncio.gather(*(one(t, c, 2 if i == 1 else None)
                                          for i, (t, c) in enumerate(zip(texts, configs, strict=True))))
    finally:
        workers.close()
    assert workers.vocode_batcher.largest >= 2
    for i in (0, 2, 3):
        assert len(together[i]) == len(alone[i])
        assert snr_db(alone[i], together[i]) > 80.0
    assert len(together[1]) < len(alone[1])
    assert engine.all_closed()  # nothing left open by the cancelled stream
