"""The cuda backend's host side on the CPU: KernelEngine over the fake device (issue 26).

The kernels are emulated phase by phase in numpy (numpy_launcher.py) on host memory, and
the encoder, postnet and WaveGlow run as ONNX Runtime CPU sessions (tests/engine/
fake_device.py). Everything else is the real engine: weight upload, launch parameters,
scratch buffers, rows, continuous batching, parking, CUDA-graph capture. Sentences must
come out as the CPU engine decodes them alone, within fp16 weight error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kernel_engines import IDS, FakeRunner, install_fakes, kernel_engine  # tests/cuda_backend/kernel_engines.py
from kernel_engines import masks as _masks
from numpy_launcher import NumpyLauncher  # tests/cuda_backend/numpy_launcher.py

from rtvoice.config import VoiceConfig
from rtvoice.engine import cuda_engine, cuda_step
from rtvoice.engine.cuda_engine import KernelEngine
from rtvoice.engine.step_weights import load_packed
from rtvoice.ort.cpu_engine import CpuEngine

_engine = kernel_engine
_install = install_fakes


@pytest.mark.parametrize(("mode", "voice"), [("phases", "tiny_voice_dir"), ("fused", "tiny_voice_dir"),
                                             ("phases", "tiny_r2_voice_dir"), ("persistent", "tiny_voice_dir"),
                                             ("persistent", "tiny_r2_voice_dir")])
def test_kernel_engine_decodes_batched_rows_like_the_cpu_engine_alone(
        mode: str, voice: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(voice)
    engine, launcher = _engine(folder, monkeypatch, mode, max_rows=4, max_batch=4, buckets=(1, 2, 4))
    r, prenet = engine.config.decoder.frames_per_step, engine.config.decoder.prenet_dim
    steps = 20
    masks = [_masks(i, steps, prenet) for i in range(len(IDS))]
    try:
        assert engine.name == "cuda"
        utterances = [engine.open_utterance(ids, steps * r) for ids in IDS]
        gates: list[list[np.ndarray]] = [[], [], []]
        done = [0, 0, 0]
        # rounds of 8, 8 and 4 steps; sentence 1 sits out the second round (its row is parked),
        # then makes up its 8 steps in two rounds alone
        for rnd, k in enumerate((8, 8, 4, 4, 4)):
            items = [i for i in range(3) if done[i] < steps and not (rnd == 1 and i == 1)]
            out = engine.decode_batch([(utterances[i], masks[i][done[i]:done[i] + k]) for i in items])
            for i, g in zip(items, out, strict=True):
                gates[i].append(g)
                done[i] += k
        assert done == [steps] * 3
        mels = [u.mel(0, steps * r) for u in utterances]
        for u in utterances:
            u.close()
    finally:
        engine.close()
    assert engine.kernels is None  # weights freed
    from fake_device import FakeGraph

    if mode == "phases":
        counts = {launcher.launches[k] for k in cuda_step.PHASES}
        assert len(counts) == 1 and launcher.launches["k_fused"] == 0
    else:
        assert launcher.launches["k_fused"] > 0 and not any(launcher.launches[k] for k in cuda_step.PHASES)
    if mode == "persistent":  # one cooperative launch per batch of steps, replayed as a graph from its second
        ring = engine.config.decoder.gate_check_interval
        batches = sum(-(-k // ring) for k in (8, 8, 4, 4, 4))
        assert launcher.launches["k_fused"] == launcher.cooperative["k_fused"] == batches
        # graphs: 8 steps of bucket 4 (rounds 1, 2) and 4 steps of bucket 2 (rounds 4, 5), each from its second
        assert [g.launches for g in FakeGraph.captured] == [1, 1]
    else:
        assert FakeGraph.captured and sum(g.launches for g in FakeGraph.captured) > 0  # steps replayed as graphs
    cpu = CpuEngine(folder, VoiceConfig.load(folder))
    for i, ids in enumerate(IDS):
        u = cpu.open_utterance(ids, steps * r)
        want_gates = u.decode(masks[i])
        want_mel = u.mel(0, steps * r)
        got_gates = np.concatenate(gates[i])
        assert got_gates.shape == want_gates.shape
        # fp16 weights: close to the fp32 graph, never equal to a wrong row's
        np.testing.assert_allclose(got_gates, want_gates, atol=3e-2 * np.abs(want_gates).max())
        np.testing.assert_allclose(mels[i], want_mel, atol=3e-2 * np.abs(want_mel).max() + 1e-3)


def test_step_params_match_the_kernel_struct() -> None:
    """The ctypes struct and the C struct list the same fields, in the same order."""
    import re

    source = cuda_step.KERNEL_SOURCE.read_text()
    body = source[source.index("struct StepParams {"): source.index("};", source.index("struct StepParams {"))]
    body = re.sub(r"//[^\n]*", "", body).replace("struct StepParams {", "")
    names = []
    for decl in body.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        for part in decl.split(","):
            name = re.sub(r"\[.*", "", part.strip().split()[-1].lstrip("*"))
            names.append(name)
    assert names == [name for name, _ in cuda_step.StepParams._fields_]
    assert cuda_step.StepParams.state.size == 2 * 7 * 8
    shape = cuda_step.KernelShape()  # the .cu's defaults for its -D defines are KernelShape's
    for name, value in (("THREADS", cuda_step.THREADS), ("TILE", shape.tile), ("DATA", cuda_step.DATA),
                        ("QUAD", shape.quad), ("CTX_CH", shape.ctx_channels), ("WARP_SCAN", int(shape.warp_scan)),
                        ("FOLD_QUERY", int(shape.fold_query)), ("LSTM_UNROLL", shape.lstm_unroll),
                        ("INNER_UNROLL", shape.inner_unroll)):
        assert re.search(rf"#define {name} {value}\b", source), name
    assert shape.fused_max_registers is None and "#define FUSED_MAXREG" not in source


def test_kernel_engine_runs_the_cuda_source_itself(monkeypatch: pytest.MonkeyPatch, tiny_voice_dir: Path,
                                                   tmp_path: Path) -> None:
    """The engine's rows, ring and graphs driving decoder_step.cu compiled for the CPU (kernel_emulation.cpp)."""
    from kernel_emulation import EmulatedLauncher, build

    launcher = EmulatedLauncher(build(tmp_path))
    engine, _ = _engine(tiny_voice_dir, monkeypatch, "fused", launcher, max_rows=2, max_batch=2, buckets=(1, 2))
    steps, prenet = 6, engine.config.decoder.prenet_dim
    masks = [_masks(i, steps, prenet) for i in range(2)]
    try:
        utterances = [engine.open_utterance(ids, steps) for ids in IDS[:2]]
        first = engine.decode_batch([(u, m[:3]) for u, m in zip(utterances, masks, strict=True)])
        second = engine.decode_batch([(u, m[3:]) for u, m in zip(utterances, masks, strict=True)])
        mels = [u.mel(0, steps) for u in utterances]
        for u in utterances:
            u.close()
    finally:
        engine.close()
    assert launcher.launches == {"k_fused": 6}  # three steps a batch, captured once, replayed once
    cpu = CpuEngine(tiny_voice_dir, VoiceConfig.load(tiny_voice_dir))
    for i, ids in enumerate(IDS[:2]):
        u = cpu.open_utterance(ids, steps)
        want = u.decode(masks[i])
        got = np.concatenate([first[i], second[i]])
        np.testing.assert_allclose(got, want, atol=3e-2 * np.abs(want).max())
        want_mel = u.mel(0, steps)
        np.testing.assert_allclose(mels[i], want_mel, atol=3e-2 * np.abs(want_mel).max() + 1e-3)


@pytest.mark.parametrize(("voice", "mode"), [("tiny_voice_dir", "phases"), ("default", "phases"),
                                             ("tiny_voice_dir", "persistent")])
def test_kernel_engine_speaks_like_the_gpu_engine_with_the_onnx_step(voice: str, mode: str,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     request: pytest.FixtureRequest) -> None:
    """Whole sentences through the synthesizer; only the decoder step differs (fp16 kernels vs the fp32 graph).

    Both engines run on the same fake device with the same vocoder path, so the SNR isolates
    the decoder. (Against the CPU engine the default voice agrees to only ~25 dB, kernels or
    not: the GPU engine's vocoder windows differ from the CPU engine's, see the report.)
    """
    from rtvoice import SynthesisConfig
    from rtvoice.audio import concatenate
    from rtvoice.engine.gpu_engine import GpuEngine
    from rtvoice.synthesizer import synthesize

    folder = Path(__file__).parents[2] / "rtvoice" / "voices" / "default" if voice == "default" \
        else Path(request.getfixturevalue(voice))
    text, config = "Our own kernels speak.", SynthesisConfig(seed=3, force_steps=60)
    engine, _ = _engine(folder, monkeypatch, mode, max_rows=2, max_batch=2, buckets=(1, 2))
    try:
        got = concatenate(synthesize(engine, text, config))
    finally:
        engine.close()
    onnx = GpuEngine(folder, engine.config, 0, "fake", lambda graph, path, stream: FakeRunner(path),
                     lambda rows, length: FakeRunner(folder / engine.config.graphs["decoder_step"],
                                                     {"batch": rows, "text_length": length}, enqueue_only=True))
    try:
        want = concatenate(synthesize(onnx, text, config))
    finally:
        onnx.close()
    assert len(got) == len(want) == 60 * engine.config.audio.hop_length
    err = float(np.sum((want.astype(np.float64) - got) ** 2))
    snr = 10 * np.log10(float(np.sum(want.astype(np.float64) ** 2)) / err)
    assert snr > 50.0, snr  # measured 2026-12-07: 141.8 dB tiny, 65.1 dB the previous (espeak-ng) default voice


def test_cooperative_fused_launches_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                              tiny_voice_dir: Path) -> None:
    monkeypatch.setenv("RTVOICE_CUDA_STEP", "fused")
    monkeypatch.setenv("RTVOICE_CUDA_COOPERATIVE", "1")
    _install(monkeypatch)
    launcher = NumpyLauncher(load_packed(tiny_voice_dir / "decoder_step.onnx").dims)
    engine = KernelEngine(tiny_voice_dir, VoiceConfig.load(tiny_voice_dir), 0, launcher=launcher, sm_count=2,
                          runner_factory=lambda graph, path, stream: FakeRunner(path))
    try:
        u = engine.open_utterance([5, 6, 7, 8], 4)
        u.decode(_masks(0, 4, engine.config.decoder.prenet_dim))
        u.close()
    finally:
        engine.close()
    assert launcher.launches["k_fused"] == 4 and launcher.cooperative["k_fused"] == 4


def test_an_unknown_step_mode_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from rtvoice.errors import BackendError

    monkeypatch.setenv("RTVOICE_CUDA_STEP", "turbo")
    with pytest.raises(BackendError, match="RTVOICE_CUDA_STEP='turbo'; use phases, fused, persistent"):
        cuda_engine.step_mode()
    monkeypatch.setenv("RTVOICE_CUDA_COOPERATIVE", "yes")
    with pytest.raises(BackendError, match="RTVOICE_CUDA_COOPERATIVE='yes'; use 1 or 0"):
        cuda_engine.cooperative_launch("fused")


def test_the_step_mode_comes_from_the_voice_unless_the_environment_says(monkeypatch: pytest.MonkeyPatch,
                                                                        tiny_voice_dir: Path) -> None:
    import dataclasses

    from rtvoice.config import BatchingConfig
    from rtvoice.errors import VoiceError
    from rtvoice.voice_schema import build

    monkeypatch.delenv("RTVOICE_CUDA_STEP", raising=False)
    monkeypatch.delenv("RTVOICE_CUDA_COOPERATIVE", raising=False)
    config = VoiceConfig.load(tiny_voice_dir)
    assert cuda_engine.step_mode(config) == "phases"
    persistent = dataclasses.replace(config, batching=BatchingConfig(cuda_step="persistent"))
    assert cuda_engine.step_mode(persistent) == "persistent"
    assert cuda_engine.cooperative_launch("persistent") and not cuda_engine.cooperative_launch("fused")
    monkeypatch.setenv("RTVOICE_CUDA_STEP", "fused")
    assert cuda_engine.step_mode(persistent) == "fused"
    monkeypatch.setenv("RTVOICE_CUDA_COOPERATIVE", "0")
    assert not cuda_engine.cooperative_launch("persistent")
    with pytest.raises(VoiceError, match=r"batching.cuda_step: expected one of \['phases', 'fused', 'persistent'\]"):
        build(BatchingConfig, {"cuda_step": "turbo"}, "batching")
