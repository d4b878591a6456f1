"""Continuous batching and CUDA graphs of the GPU decoder, for real on a GPU (issue #7).

Never run in the workplace that wrote them (no GPU there); tests/engine/test_gpu_decoder.py
checks the same logic on the CPU over a fake device. Skipped where there is no usable CUDA GPU.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import numpy as np
import pytest

from rtvoice import SynthesisConfig, Voice
from rtvoice.audio import concatenate
from rtvoice.config import BatchingConfig

pytestmark = pytest.mark.gpu

IDS = [list(range(3, 3 + n)) for n in (11, 5, 23, 8, 17, 30)]
STEPS = 40


def _voice(folder: Path, **batching: object) -> Voice:
    from rtvoice.cuda import is_available
    from rtvoice.ort.sessions import available_providers

    if not is_available() or "CUDAExecutionProvider" not in available_providers():
        pytest.skip("needs a CUDA GPU and onnxruntime-gpu")
    return Voice.load(folder, backend="onnxruntime", device="cuda:0",
                      batching=BatchingConfig(**batching))  # type: ignore[arg-type]


def _masks(seed: int, prenet: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((STEPS, 1, 2, prenet)) > 0.5).astype(np.float32) * 2.0


def _decode_staggered(voice: Voice) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sentence i joins at round i // 2; sentence 0 sits out round 1; each leaves when done."""
    engine = voice.engine
    prenet = voice.config.decoder.prenet_dim
    masks = [_masks(i, prenet) for i in range(len(IDS))]
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    gates: dict[int, list[np.ndarray]] = {i: [] for i in range(len(IDS))}
    open_, done = {}, dict.fromkeys(range(len(IDS)), 0)
    for rnd in range(20):
        for i in (2 * rnd, 2 * rnd + 1):
            if i < len(IDS):
                open_[i] = engine.open_utterance(IDS[i], STEPS)
        items = [(i, u, masks[i][done[i]:done[i] + min(8, STEPS - done[i])]) for i, u in sorted(open_.items())
                 if not (rnd == 1 and i == 0)]
        if not items:
            break
        for (i, u, m), g in zip(items, engine.decode_batch([(u, m) for _, u, m in items]), strict=True):
            gates[i].append(g)
            done[i] += len(m)
            if done[i] == STEPS:
                out[i] = (np.concatenate(gates[i]), u.mel(0, STEPS))
                u.close()
                del open_[i]
    return [out[i] for i in range(len(IDS))]


def _alone(voice: Voice) -> list[tuple[np.ndarray, np.ndarray]]:
    prenet = voice.config.decoder.prenet_dim
    out = []
    for i, ids in enumerate(IDS):
        u = voice.engine.open_utterance(ids, STEPS)
        gates = u.decode(_masks(i, prenet))
        out.append((gates, u.mel(0, STEPS)))
        u.close()
    return out


@pytest.mark.parametrize("graphs", [True, False])
def test_batched_equals_alone_and_cpu(tiny_voice_dir: Path, tiny_voice: Voice, graphs: bool) -> None:
    with _voice(tiny_voice_dir, cuda_graphs=graphs) as voice:
        batched = _decode_staggered(voice)
        alone = _alone(voice)
    cpu = _alone(tiny_voice)
    for (bg, bm), (ag, am), (_cg, cm) in zip(batched, alone, cpu, strict=True):
        np.testing.assert_allclose(bg, ag, rtol=1e-3, atol=1e-3)  # batch sizes may pick other GEMM kernels
        np.testing.assert_allclose(bm, am, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(bm, cm, rtol=1e-2, atol=1e-2)  # TF32 on the GPU


def test_cuda_graphs_on_equals_off(tiny_voice_dir: Path) -> None:
    with _voice(tiny_voice_dir, cuda_graphs=True) as on:
        with_graphs = _decode_staggered(on)
    with _voice(tiny_voice_dir, cuda_graphs=False) as off:
        without = _decode_staggered(off)
    for (g1, m1), (g2, m2) in zip(with_graphs, without, strict=True):
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(m1, m2, rtol=1e-5, atol=1e-5)


def test_batching_off_equals_on(tiny_voice_dir: Path) -> None:
    with _voice(tiny_voice_dir, max_batch=1) as off:
        unbatched = _decode_staggered(off)
    with _voice(tiny_voice_dir) as on:
        batched = _decode_staggered(on)
    for (g1, m1), (g2, m2) in zip(unbatched, batched, strict=True):
        np.testing.assert_allclose(g1, g2, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(m1, m2, rtol=1e-3, atol=1e-3)


async def test_concurrent_streams_equal_each_alone(tiny_voice_dir: Path) -> None:
    texts = [f"Stream number {i} speaks {'at length ' * i}now." for i in range(8)]
    cfg = [SynthesisConfig(seed=i, force_steps=60 + 7 * i) for i in range(8)]
    with _voice(tiny_voice_dir) as voice:
        alone = [concatenate(voice.synthesize(t, c)) for t, c in zip(texts, cfg, strict=True)]

        async def one(t: str, c: SynthesisConfig) -> np.ndarray:
            return concatenate([chunk async for chunk in voice.stream(t, c)])

        together = await asyncio.gather(*(one(t, c) for t, c in zip(texts, cfg, strict=True)))
        assert voice._workers is not None and voice._workers.batcher.largest > 1  # they did batch
    for a, b in zip(alone, together, strict=True):
        assert len(a) == len(b)
        err = np.sum((a - b) ** 2)
        assert err == 0 or 10 * np.log10(np.sum(a**2) / err) > 40.0


async def test_cancelled_batched_streams_leak_nothing_and_close_frees(tiny_voice_dir: Path) -> None:
    from rtvoice.cuda import used_bytes

    async def cancel_many(voice: Voice, count: int) -> None:
        async def one(i: int) -> None:
            stream = voice.stream("Cancel me. Please cancel me.", SynthesisConfig(seed=i, force_steps=150))
            async with contextlib.aclosing(stream):
                async for _ in stream:
                    break
        for start in range(0, count, 16):  # 16 at a time, so they batch
            await asyncio.gather(*(one(i) for i in range(start, start + 16)))

    with _voice(tiny_voice_dir) as warm:  # skips without a GPU; loads CUDA, cuDNN and ORT once
        await cancel_many(warm, 16)
    baseline = used_bytes()
    with _voice(tiny_voice_dir) as voice:
        await cancel_many(voice, 32)  # warm: sessions per bucket, graphs, arenas
        loaded = used_bytes()
        await cancel_many(voice, 320)
        assert voice.engine.decoder.active == 0  # type: ignore[attr-defined]
        assert used_bytes() - loaded < 16 * 2**20
    assert used_bytes() - baseline < 64 * 2**20
