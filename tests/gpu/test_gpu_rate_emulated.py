"""A time-scaled sentence on the GPU engine, CUDA emulated in host memory.

As in test_gpu_vocoder_emulated.py: its host frames reach the postnet, batched or alone,
and the audio equals the CPU engine's.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))  # fake_device, for the module below
from test_gpu_vocoder_emulated import EmulatedRuntime, _engine, emulated, snr_db  # noqa: E402, F401

from rtvoice import SynthesisConfig, Voice  # noqa: E402
from rtvoice.audio import concatenate  # noqa: E402


def test_emulated_gpu_engine_speaks_at_other_rates_as_the_cpu(emulated: EmulatedRuntime,  # noqa: F811
                                                               tiny_voice_dir: Path) -> None:
    from rtvoice import pipeline
    from rtvoice.synthesizer import synthesize

    engine = _engine(tiny_voice_dir)
    texts = ["One on the GPU.", "Two on the GPU.", '<speak>Three <break time="100ms"/> four.</speak>']
    configs = [SynthesisConfig(seed=i, force_steps=60, chunk_frames=16, rate=rate)
               for i, rate in enumerate((0.5, 1.7, 1.3))]
    workers = pipeline.Workers("emulated", engine.config.batching)
    try:
        alone = [concatenate(synthesize(engine, t, c)) for t, c in zip(texts, configs, strict=True)]

        async def one(text: str, config: SynthesisConfig) -> np.ndarray:
            return concatenate([c async for c in pipeline.stream(engine, workers, text, config)])

        async def all_at_once() -> list[np.ndarray]:
            return await asyncio.gather(*(one(t, c) for t, c in zip(texts, configs, strict=True)))

        together = asyncio.run(all_at_once())
    finally:
        workers.close()
        engine.close()
    assert emulated.blocks == {}
    with Voice.load(tiny_voice_dir, backend="onnxruntime", device="cpu") as cpu:
        on_cpu = [concatenate(cpu.synthesize(t, c)) for t, c in zip(texts, configs, strict=True)]
    assert len(on_cpu[0]) == 120 * 256 and len(on_cpu[1]) == round(60 / 1.7) * 256
    for a, b, c in zip(alone, together, on_cpu, strict=True):
        assert len(a) == len(b) == len(c)
        assert snr_db(c, a) > 60.0 and snr_db(c, b) > 60.0
