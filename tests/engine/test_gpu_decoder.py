"""The batched GPU decoder's logic on the CPU, over a fake device (issue #7).

Rows padded to the text-length limit, buckets, the frame ring, parking of rows a run
covers but must not advance, compaction when sentences leave, and CUDA-graph capture
are all exercised for real; only the memory is host memory and the graph runs are ONNX
Runtime CPU sessions (fake_device.py). Each sentence must come out exactly as the CPU
engine decodes it alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fake_device import FakeBuffer, FakeGraph, FakeRunner, install  # tests/engine/fake_device.py

from rtvoice.config import BatchingConfig, EngineProfile, VoiceConfig
from rtvoice.engine.gpu_engine import GpuEngine, GpuUtterance
from rtvoice.ort.cpu_engine import CpuEngine

TOL = dict(rtol=1e-5, atol=1e-5)


def _config(folder: Path, **batching: object) -> VoiceConfig:
    config = VoiceConfig.load(folder)
    profiles = dataclasses.replace(config.profiles, text_length=EngineProfile(1, 64, 64))
    return dataclasses.replace(config, profiles=profiles, batching=BatchingConfig(**batching))  # type: ignore[arg-type]


def _engine(folder: Path, config: VoiceConfig, monkeypatch: pytest.MonkeyPatch, *, capture: bool = False
            ) -> GpuEngine:
    install(monkeypatch)
    return GpuEngine(folder, config, 0, "fake", lambda graph, path, stream: FakeRunner(path),
                     lambda rows, length: FakeRunner(folder / config.graphs["decoder_step"],
                                                     {"batch": rows, "text_length": length}, enqueue_only=True),
                     capture=capture)


def _masks(seed: int, steps: int, config: VoiceConfig) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = config.decoder.prenet_dim
    return (rng.random((steps, 1, 2, p)) > 0.5).astype(np.float32) * 2.0


IDS = [list(range(3, 3 + n)) for n in (11, 5, 23, 8, 17)]


def _alone(folder: Path, ids: list[int], masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cpu = CpuEngine(folder, VoiceConfig.load(folder))
    frames = len(masks) * cpu.config.decoder.frames_per_step
    u = cpu.open_utterance(ids, frames)
    gates = u.decode(masks)
    return gates, u.mel(0, frames)


@pytest.mark.parametrize(("capture", "max_batch", "voice"),
                         [(False, 8, "tiny_voice_dir"), (True, 8, "tiny_voice_dir"), (False, 1, "tiny_voice_dir"),
                          (True, 2, "tiny_voice_dir"), (False, 8, "tiny_r2_voice_dir"), (True, 2, "tiny_r2_voice_dir")])
def test_batched_rows_join_and_leave_match_each_sentence_alone(capture: bool, max_batch: int, voice: str,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              request: pytest.FixtureRequest) -> None:
    """max_batch 1: batching off (each row alone); 2: rows beyond the top bucket step one by one.

    The r = 2 voice makes two frames and two gate logits a step, through the same rows.
    """
    tiny_voice_dir: Path = request.getfixturevalue(voice)
    config = _config(tiny_voice_dir, max_rows=8, max_batch=max_batch, buckets=(1, 2, 4, 8))
    r = config.decoder.frames_per_step
    steps = 24
    masks = [_masks(i, steps, config) for i in range(len(IDS))]
    engine = _engine(tiny_voice_dir, config, monkeypatch, capture=capture)
    got_gates: dict[int, list[np.ndarray]] = {i: [] for i in range(len(IDS))}
    mels: dict[int, np.ndarray] = {}
    try:
        open_: dict[int, GpuUtterance] = {}
        # Sentence i joins at round i // 2; a round of 8 steps; some rounds leave one out
        # (a row inside the run that must not advance); 3 asks fewer steps once (odd k).
        plan = {0: [0, 1], 1: [2], 2: [3, 4]}
        done_steps = dict.fromkeys(range(len(IDS)), 0)
        for rnd in range(8):
            for i in plan.get(rnd, []):
                open_[i] = engine.open_utterance(IDS[i], steps * r)
            items = []
            for i, u in sorted(open_.items()):
                if rnd == 1 and i == 0:
                    continue  # sits out a round: row 0 is covered by the run but parked
                k = 3 if (rnd == 2 and i == 3) else min(8, steps - done_steps[i])
                if k == 0:
                    continue
                items.append((i, u, masks[i][done_steps[i]:done_steps[i] + k]))
            if not items:
                break
            gates = engine.decode_batch([(u, m) for _, u, m in items])
            for (i, u, m), g in zip(items, gates, strict=True):
                got_gates[i].append(g)
                done_steps[i] += len(m)
                if done_steps[i] == steps:
                    assert u.frames == steps * r
                    mels[i] = u.mel(0, steps * r)
                    u.close()  # leaves: the last row moves into its place
                    del open_[i]
        assert not open_ and engine.decoder.active == 0
    finally:
        engine.close()
    for i, ids in enumerate(IDS):
        gates, mel = _alone(tiny_voice_dir, ids, masks[i])
        np.testing.assert_allclose(np.concatenate(got_gates[i]), gates, **TOL)
        np.testing.assert_allclose(mels[i], mel, **TOL)
    if capture:
        assert FakeGraph.captured and all(g.closed for g in FakeGraph.captured)
        assert sum(g.launches for g in FakeGraph.captured) > 0
    else:
        assert not FakeGraph.captured


def test_one_utterance_decode_is_a_batch_of_one(tiny_voice_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tiny_voice_dir, max_rows=4, buckets=(1, 2, 4))
    masks = _masks(7, 20, config)
    engine = _engine(tiny_voice_dir, config, monkeypatch)
    try:
        u = engine.open_utterance(IDS[2], 20)
        gates = np.concatenate([u.decode(masks[:5]), u.decode(masks[5:])])  # 15 > ring: two batches
        mel = u.mel(0, 20)
        u.close()
    finally:
        engine.close()
    ref_gates, ref_mel = _alone(tiny_voice_dir, IDS[2], masks)
    np.testing.assert_allclose(gates, ref_gates, **TOL)
    np.testing.assert_allclose(mel, ref_mel, **TOL)
    assert [r.session for r in FakeRunner.opened] == [None] * len(FakeRunner.opened)  # close closed them all


def test_too_many_rows_and_too_long_text_are_clear_errors(tiny_voice_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from rtvoice.errors import BackendError

    config = _config(tiny_voice_dir, max_rows=2, buckets=(1, 2))
    engine = _engine(tiny_voice_dir, config, monkeypatch)
    try:
        first, second = engine.open_utterance(IDS[0], 8), engine.open_utterance(IDS[1], 8)
        with pytest.raises(BackendError, match="batching.max_rows"):
            engine.open_utterance(IDS[2], 8)
        first.close()  # a row comes free
        engine.open_utterance(IDS[2], 8).close()
        second.close()
        with pytest.raises(BackendError, match="profiles.text_length.max"):
            engine.open_utterance(list(range(3, 3 + 65)), 8)
    finally:
        engine.close()
    assert FakeBuffer.live == 0  # close freed every buffer


def test_static_shapes_leave_no_shape_ops(tiny_voice_dir: Path, tmp_path: Path) -> None:
    """With the free-dimension overrides, ORT folds the shape arithmetic away (CUDA graph prerequisite)."""
    options = ort.SessionOptions()
    options.add_free_dimension_override_by_name("batch", 8)
    options.add_free_dimension_override_by_name("text_length", 64)
    options.optimized_model_filepath = str(tmp_path / "step.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    ort.InferenceSession(str(tiny_voice_dir / "decoder_step.onnx"), options, providers=["CPUExecutionProvider"])
    ops = {node.op_type for node in onnx.load(str(tmp_path / "step.onnx")).graph.node}
    assert not ops & {"Shape", "Size", "If", "Loop"}, sorted(ops)
