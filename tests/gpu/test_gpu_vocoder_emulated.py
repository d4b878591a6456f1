"""The GPU engine's batched vocoder (issue #7) on the CPU, with CUDA emulated in host memory.

No GPU here, yet the batched path's buffer offsets, strided copies, zero rows and runner
keys are plain arithmetic worth checking: an emulated CUDA runtime (device memory is host
memory, every "async" copy runs at once) stands in for ``cuda.bindings.runtime``, and each
graph runs in an ONNX Runtime CPU session reading and writing those buffers. The real GPU
runs the same code in test_gpu_engine.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from fake_device import FakeRunner  # noqa: E402  # tests/engine/fake_device.py: ORT CPU sessions on host memory

sys.path.insert(0, str(Path(__file__).parents[1] / "cuda_backend"))
from emulated_runtime import EmulatedRuntime, emulate  # noqa: E402  # tests/cuda_backend/emulated_runtime.py

from rtvoice import SynthesisConfig, Voice
from rtvoice.audio import concatenate
from rtvoice.config import BatchingConfig, VoiceConfig
from rtvoice.cuda import Stream
from rtvoice.engine.gpu_engine import GpuEngine
from rtvoice.engine.protocol import VocodeItem
from rtvoice.engine.randomness import PrenetMasks, noise


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedRuntime]:
    FakeRunner.shapes.clear()
    yield from emulate(monkeypatch)


def _engine(folder: Path, vocoder_max: int = 8) -> GpuEngine:
    import dataclasses

    config = VoiceConfig.load(folder)
    config = dataclasses.replace(config, batching=BatchingConfig(vocoder_max=vocoder_max))
    return GpuEngine(folder, config, 0, "emulated", lambda graph, path, _stream: FakeRunner(path))


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    err = np.sum((reference.astype(np.float64) - other) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / err))


def test_batched_gpu_vocoder_equals_one_chunk_at_a_time(emulated: EmulatedRuntime, tiny_voice_dir: Path) -> None:
    engine = _engine(tiny_voice_dir, vocoder_max=4)
    try:
        assert isinstance(Stream(), Stream)  # the emulation is in place
        utterances = [engine.open_utterance([5 + i, 6, 7] * (i + 2), 200) for i in range(3)]
        for i, u in enumerate(utterances):
            u.decode(PrenetMasks(i, 0, engine.config.decoder.prenet_dim).take(120))
        windows = [(0, 32), (16, 112), (20, 116), (60, 120), (100, 120), (90, 120)]
        items = [VocodeItem(u, a, b, 120, noise(i, 0, 8, a * 32, b * 32, 0.6))
                 for i, u in enumerate(utterances) for a, b in windows]
        alone = [item.vocode() for item in items]
        FakeRunner.shapes.clear()
        together = engine.vocode_batch(items)
        vocoder = engine.vocoder
        assert vocoder is not None and vocoder.max_batch == 4
        # 18 chunks, 9 in each window bucket (32 and 96 frames): runs of 4, 4 and 1 rows each.
        runs = sorted(shape for graph, shape in FakeRunner.shapes if graph == "waveglow")
        assert runs == [(1, 80, 32), (1, 80, 96)] + [(4, 80, 32)] * 2 + [(4, 80, 96)] * 2
        # Batch 1 for every bucket at open (later chunks double: 64, 128 and 256 frames + context).
        assert set(vocoder.runners) == {(32, 1), (96, 1), (160, 1), (288, 1), (32, 4), (96, 4)}
        for u in utterances:
            u.close()
    finally:
        engine.close()
    assert emulated.blocks == {}  # everything freed
    for a, b, item in zip(alone, together, items, strict=True):
        assert len(b) == (item.stop - item.start) * 256
        assert snr_db(a, b) > 100.0  # same padding alone or batched: rows are independent


def test_gpu_vocoder_batch_is_capped_by_the_tensorrt_profile(emulated: EmulatedRuntime,
                                                             tiny_voice_dir: Path) -> None:
    engine = _engine(tiny_voice_dir, vocoder_max=100)
    try:
        assert engine.vocoder is not None
        assert engine.vocoder.max_batch == 8  # profiles.batch.max, a power of two
    finally:
        engine.close()
    engine = _engine(tiny_voice_dir, vocoder_max=6)
    try:
        assert engine.vocoder is not None and engine.vocoder.max_batch == 4
    finally:
        engine.close()
    assert emulated.blocks == {}  # everything freed


@pytest.mark.parametrize("voice", ["tiny_voice_dir", "tiny_r2_voice_dir"])
async def test_emulated_gpu_engine_streams_batched_as_alone(emulated: EmulatedRuntime, voice: str,
                                                            request: pytest.FixtureRequest) -> None:
    """The r = 2 voice too: two frames a step, 59 frames ending mid-step."""
    from rtvoice import pipeline
    from rtvoice.synthesizer import synthesize

    tiny_voice_dir: Path = request.getfixturevalue(voice)
    engine = _engine(tiny_voice_dir)
    texts = ["One on the GPU.", "Two on the GPU, longer.", "Three."]
    configs = [SynthesisConfig(seed=i, force_steps=50 + 9 * i, chunk_frames=16) for i in range(len(texts))]
    workers = pipeline.Workers("emulated", engine.config.batching)
    try:
        alone = [concatenate(synthesize(engine, t, c)) for t, c in zip(texts, configs, strict=True)]

        async def one(text: str, config: SynthesisConfig) -> np.ndarray:
            return concatenate([c async for c in pipeline.stream(engine, workers, text, config)])

        together = await asyncio.gather(*(one(t, c) for t, c in zip(texts, configs, strict=True)))
    finally:
        workers.close()
        engine.close()
    assert workers.vocode_batcher.largest >= 2
    with Voice.load(tiny_voice_dir, backend="onnxruntime", device="cpu") as cpu:
        on_cpu = [concatenate(cpu.synthesize(t, c)) for t, c in zip(texts, configs, strict=True)]
    for a, b, c, config in zip(alone, together, on_cpu, configs, strict=True):
        assert len(a) == len(b) == len(c) == config.force_steps * 256  # type: ignore[operator]
        assert snr_db(a, b) > 80.0
        assert snr_db(c, a) > 60.0  # as the CPU engine decodes it (the GPU vocoder pads windows to buckets)
