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
