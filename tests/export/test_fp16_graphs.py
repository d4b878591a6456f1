"""fp16 graphs (issue 26, part 2): each fp16 stage held to its fp32 twin, on ONNX Runtime CPU.

ONNX Runtime's CPU provider opens these graphs and runs them; where it has no float16
kernel for an op it casts around a float32 one, so on the CPU the arithmetic is float32 on
float16-rounded weights and activations between ops. A GPU adds float16 accumulation in
cuDNN's kernels; that is checked on the GPU machine, not here (docs/gpu.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxconverter_common")
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from rtvoice import SynthesisConfig, Voice  # noqa: E402
from rtvoice.audio import concatenate  # noqa: E402
from rtvoice.errors import VoiceError  # noqa: E402
from rtvoice.export.fp16_graphs import GRAPHS, convert_voice  # noqa: E402
from rtvoice.export.weight_storage import float32_weights  # noqa: E402
from rtvoice.seams import snr_db  # noqa: E402
from rtvoice.text import text_to_ids  # noqa: E402

DEFAULT = Path(__file__).parents[2] / "rtvoice" / "voices" / "default"
TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def fp16_voice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fp16") / "default-fp16"
    sizes = convert_voice(DEFAULT, out, GRAPHS)  # all three, to test each; the default leaves the encoder
    assert set(sizes) == set(GRAPHS)
    for graph, (_, after) in sizes.items():  # against the weights' float32 bytes, however the voice stores them
        model = onnx.load(str(DEFAULT / f"{graph}.onnx"))
        float32_weights(model)
        assert after < 0.6 * model.ByteSize(), graph
    return out


def _session(folder: Path, graph: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(folder / f"{graph}.onnx"), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def decoded_mel() -> np.ndarray:
    """A real mel of the default voice (the CPU engine's decoder), (1, frames, n_mel)."""
    from rtvoice.synthesizer import decode_sentence, plan

    with Voice.load(DEFAULT, backend="onnxruntime", device="cpu") as voice:
        engine = voice._engine
        settings = SynthesisConfig(seed=0, force_steps=240).resolve(engine.config)
        sentence = plan(TEXT, engine.config)[0]
        utterance = engine.open_utterance(sentence.ids, settings.max_decoder_steps)
        for _ in decode_sentence(utterance, sentence, engine.config, settings):
            pass
        mel = utterance.mel(0, 240)
        utterance.close()
    return np.ascontiguousarray(mel.T[None])


def test_fp16_graphs_compute_in_fp16_behind_fp32_inputs_and_outputs(fp16_voice: Path) -> None:
    for graph in GRAPHS:
        model = onnx.load(str(fp16_voice / f"{graph}.onnx"))
        weights = sorted(model.graph.initializer, key=lambda t: -int(np.prod(t.dims)))[0]
        assert weights.data_type == onnx.TensorProto.FLOAT16, graph  # the largest weight is fp16
        session = _session(fp16_voice, graph)
        assert {v.type for v in (*session.get_inputs(), *session.get_outputs())} <= \
            {"tensor(float)", "tensor(int64)", "tensor(bool)"}, graph  # what the engines bind
    # never converted: copied as the voice stores it
    assert (fp16_voice / "decoder_step.onnx").read_bytes() == (DEFAULT / "decoder_step.onnx").read_bytes()
    decoder = onnx.load(str(fp16_voice / "decoder_step.onnx"))
    assert not [n for n in decoder.graph.node if n.op_type == "Cast" and any(
        a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in n.attribute)]  # nothing computes in fp16


def test_fp16_encoder_against_fp32(fp16_voice: Path) -> None:
    ids = np.asarray([text_to_ids(TEXT, Voice.load(DEFAULT, device="cpu").config.text.symbols)], np.int64)
    feeds = {"text": ids, "text_lengths": np.asarray([ids.shape[1]], np.int64)}
    ref = _session(DEFAULT, "encoder").run(None, feeds)
    half = _session(fp16_voice, "encoder").run(None, feeds)
    memory_err = np.abs(ref[0] - half[0]).max()
    assert 0 < memory_err < 5e-3  # measured 5.2e-4 (peak 1.0): fp16, and close
    assert np.abs(ref[1] - half[1]).max() < 1e-2 * np.abs(ref[1]).max()  # measured 9.9e-4 of 12.3
    assert np.array_equal(ref[2], half[2])  # the mask


def test_fp16_postnet_against_fp32(fp16_voice: Path, decoded_mel: np.ndarray) -> None:
    ref = _session(DEFAULT, "postnet").run(None, {"mel_frames": decoded_mel})[0]
    half = _session(fp16_voice, "postnet").run(None, {"mel_frames": decoded_mel})[0]
    err = np.abs(ref - half).max()
    assert 0 < err < 2e-2  # measured 5.7e-3 on a peak of 12.1


def test_fp16_waveglow_against_fp32(fp16_voice: Path, decoded_mel: np.ndarray) -> None:
    mel = _session(DEFAULT, "postnet").run(None, {"mel_frames": decoded_mel})[0]
    noise = (np.random.default_rng(0).standard_normal((1, 256, mel.shape[2])) * 0.6).astype(np.float32)
    ref = _session(DEFAULT, "waveglow").run(None, {"mel": mel, "noise": noise})[0]
    half = _session(fp16_voice, "waveglow").run(None, {"mel": mel, "noise": noise})[0]
    assert np.isfinite(half).all()
    assert 55.0 < snr_db(ref, half) < 120.0  # measured 64.9 dB; float32 rounding alone would be > 120


def test_the_default_fp16_voice_speaks_as_fp32(tmp_path: Path) -> None:
    """Postnet and WaveGlow in fp16 (the default): the whole voice through the CPU engine."""
    out = tmp_path / "fp16"
    assert set(convert_voice(DEFAULT, out)) == {"postnet", "waveglow"}
    with Voice.load(DEFAULT, device="cpu") as ref, Voice.load(out, device="cpu") as half:
        for text, steps in ((TEXT, None), ("Turn on the kitchen lights.", 300)):
            config = SynthesisConfig(seed=0, force_steps=steps)
            a, b = concatenate(ref.synthesize(text, config)), concatenate(half.synthesize(text, config))
            assert len(a) == len(b)
            assert snr_db(a, b) > 55.0  # measured 59.7-62.6 dB


def test_bad_requests_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(VoiceError, match="decoder_step"):
        convert_voice(DEFAULT, tmp_path / "x", ["decoder_step"])
    with pytest.raises(VoiceError, match="no voice.json"):
        convert_voice(tmp_path, tmp_path / "y")
    with pytest.raises(VoiceError, match="another folder"):
        convert_voice(DEFAULT, DEFAULT)
    run = subprocess.run([sys.executable, "-m", "rtvoice.export.fp16_graphs", str(tmp_path), str(tmp_path / "z")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0 and "no voice.json" in run.stderr


def test_the_gpu_engine_runs_the_fp16_voice(tmp_path: Path) -> None:
    """The GPU engine's code on the fake device (tests/engine/fake_device.py) binds the fp16 graphs' fp32 edges."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
    import fake_device
    from fake_device import FakeRunner

    from rtvoice.config import VoiceConfig
    from rtvoice.engine.gpu_engine import GpuEngine
    from rtvoice.synthesizer import synthesize

    out = tmp_path / "fp16"
    convert_voice(DEFAULT, out)
    monkeypatch = pytest.MonkeyPatch()
    fake_device.install(monkeypatch)
    engine = GpuEngine(out, VoiceConfig.load(out), 0, "fake", lambda graph, path, _s: FakeRunner(path))
    try:
        config = SynthesisConfig(seed=1, force_steps=120)
        on_gpu = concatenate(synthesize(engine, TEXT, config))
    finally:
        engine.close()
        monkeypatch.undo()
    with Voice.load(out, device="cpu") as cpu:
        assert snr_db(concatenate(cpu.synthesize(TEXT, config)), on_gpu) > 60.0


def test_the_cuda_provider_searches_fp16_convolutions_exhaustively(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime CUDA's options follow voice.json's ``fp16_graphs``: on an H100 the heuristic
    search found no cuDNN engine for fp16 WaveGlow's dilated convolutions, the exhaustive one ran."""
    from rtvoice.config import VoiceConfig
    from rtvoice.ort.cuda_engine import fp16_graphs, provider_options

    out = tmp_path / "fp16"
    convert_voice(DEFAULT, out)
    half = fp16_graphs(VoiceConfig.load(out))
    assert half == {"postnet", "waveglow"} and fp16_graphs(VoiceConfig.load(DEFAULT)) == frozenset()
    for graph in ("encoder", "decoder_step", "postnet", "waveglow"):
        options = provider_options(3, fp16=graph in half, overrides={})
        assert options["cudnn_conv_algo_search"] == ("EXHAUSTIVE" if graph in half else "HEURISTIC"), graph
        assert options["cudnn_conv1d_pad_to_nc1d"] == "1" and options["device_id"] == "3"
        assert "enable_cuda_graph" not in options
    assert provider_options(0, cuda_graph=True, overrides={})["enable_cuda_graph"] == "1"
    # RTVOICE_ORT_CUDA_OPTIONS still has the last word, fp16 or not.
    monkeypatch.setenv("RTVOICE_ORT_CUDA_OPTIONS", '{"cudnn_conv_algo_search": "DEFAULT"}')
    assert provider_options(0, fp16=True)["cudnn_conv_algo_search"] == "DEFAULT"
    assert provider_options(0)["cudnn_conv_algo_search"] == "DEFAULT"
