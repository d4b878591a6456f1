"""The shared GPU engine through ONNX Runtime CUDA, for real on a GPU (issue #3).

Buffers, streams, events, overlap and cancellation. Skipped where there is no usable CUDA
GPU.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from rtvoice import SynthesisConfig, Voice
from rtvoice.audio import concatenate

pytestmark = pytest.mark.gpu


def _cuda_voice_or_skip(folder: Path) -> Voice:
    from rtvoice.cuda import is_available
    from rtvoice.ort.sessions import available_providers

    if not is_available() or "CUDAExecutionProvider" not in available_providers():
        pytest.skip("needs a CUDA GPU and onnxruntime-gpu")
    return Voice.load(folder, backend="onnxruntime", device="cuda:0")


@pytest.fixture(scope="module")
def cuda_voice(tiny_voice_dir: Path):  # type: ignore[no-untyped-def]
    with _cuda_voice_or_skip(tiny_voice_dir) as voice:
        yield voice


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    err = np.sum((reference - other) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(reference**2) / err))


def test_cuda_engine_matches_cpu_engine(cuda_voice: Voice, tiny_voice: Voice) -> None:
    cfg = SynthesisConfig(seed=4, force_steps=120)
    gpu = concatenate(cuda_voice.synthesize("The GPU agrees with the CPU.", cfg))
    cpu = concatenate(tiny_voice.synthesize("The GPU agrees with the CPU.", cfg))
    assert cuda_voice.choice.device == "cuda:0" and cuda_voice.engine.name == "onnxruntime"
    assert len(gpu) == len(cpu) == 120 * 256
    assert snr_db(cpu, gpu) > 40.0  # TF32 convolutions on the GPU; float32 on the CPU


def test_cuda_streamed_equals_whole(cuda_voice: Voice) -> None:
    text = "Streaming on the GPU."
    whole = concatenate(cuda_voice.synthesize(text, SynthesisConfig(seed=1, whole=True)))
    streamed = concatenate(cuda_voice.synthesize(text, SynthesisConfig(seed=1, chunk_frames=16)))
    assert len(whole) == len(streamed)
    assert snr_db(whole, streamed) > 40.0


async def test_cuda_async_first_chunk_before_decoder_ends(cuda_voice: Voice) -> None:
    cfg = SynthesisConfig(seed=2, force_steps=150, chunk_frames=16)
    frames_at_first = None
    stream = cuda_voice.stream("First audio comes early.", cfg)
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            if frames_at_first is None:
                frames_at_first = chunk.timing.audio_s
    assert frames_at_first is not None and frames_at_first < 150 * 256 / 22050


async def test_cancel_200_streams_releases_gpu_memory(tiny_voice_dir: Path) -> None:
    from rtvoice.cuda import used_bytes

    async def cancel_streams(voice: Voice, count: int) -> None:
        for i in range(count):
            stream = voice.stream("Cancel me. Please cancel me.", SynthesisConfig(seed=i, force_steps=150))
            async with contextlib.aclosing(stream):
                async for _ in stream:
                    break

    with _cuda_voice_or_skip(tiny_voice_dir) as warm:  # load CUDA, cuDNN and ORT once
        await cancel_streams(warm, 5)
    baseline = used_bytes()
    with _cuda_voice_or_skip(tiny_voice_dir) as voice:
        # Warm up with the same requests: ONNX Runtime makes cuDNN/cuBLAS handles once per
        # session and thread, and its arena grows once per new tensor size; neither is a leak.
        await cancel_streams(voice, 20)
        loaded = used_bytes()
        await cancel_streams(voice, 200)
        engine = voice.engine
        assert engine.slots_allocated <= 2  # type: ignore[attr-defined]
        assert used_bytes() - loaded < 16 * 2**20  # nothing grows per cancelled stream
    assert used_bytes() - baseline < 64 * 2**20  # and closing the voice gives it back


def test_cuda_vocode_batch_equals_one_chunk_at_a_time(cuda_voice: Voice) -> None:
    """Issue #7: the batched vocoder path (window bucket x power-of-two rows) against batch 1."""
    from rtvoice.engine.protocol import VocodeItem
    from rtvoice.engine.randomness import PrenetMasks, noise

    engine = cuda_voice.engine
    utterances = [engine.open_utterance([5 + i, 6, 7] * (i + 2), 200) for i in range(3)]
    try:
        for i, u in enumerate(utterances):
            u.decode(PrenetMasks(i, 0, engine.config.decoder.prenet_dim).take(120))
        windows = [(0, 32), (16, 112), (20, 116), (60, 120), (100, 120)]
        items = [VocodeItem(u, a, b, 120, noise(i, 0, 8, a * 32, b * 32, 0.6))
                 for i, u in enumerate(utterances) for a, b in windows]
        alone = [item.vocode() for item in items]
        together = engine.vocode_batch(items)
    finally:
        for u in utterances:
            u.close()
    for a, b, item in zip(alone, together, items, strict=True):
        assert len(b) == (item.stop - item.start) * 256
        # Same padding alone or batched; cuDNN may pick other TF32 algorithms per batch size.
        assert snr_db(a, b) > 40.0


async def test_cuda_concurrent_streams_batch_the_vocoder(cuda_voice: Voice) -> None:
    import asyncio

    texts = ["One stream on the GPU.", "Another stream, a bit longer than that.", "Third.", "And a fourth."]
    configs = [SynthesisConfig(seed=i, force_steps=60 + 11 * i, chunk_frames=16) for i in range(len(texts))]
    alone = [concatenate(cuda_voice.synthesize(t, c)) for t, c in zip(texts, configs, strict=True)]

    async def one(text: str, config: SynthesisConfig) -> np.ndarray:
        stream = cuda_voice.stream(text, config)
        async with contextlib.aclosing(stream):
            return concatenate([c async for c in stream])

    together = await asyncio.gather(*(one(t, c) for t, c in zip(texts, configs, strict=True)))
    workers = cuda_voice._workers
    assert workers is not None and workers.vocode_batcher.largest >= 2
    for a, b in zip(alone, together, strict=True):
        assert len(a) == len(b)
        assert snr_db(a, b) > 40.0
