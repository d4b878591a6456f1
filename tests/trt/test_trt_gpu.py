"""TrtEngine on a real GPU: parity with the CPU engine, profile limits, stale plans, lifecycle.

Needs full TensorRT (``import tensorrt``, 10.x or 11.x) and a CUDA GPU. No machine of this
project's workplace has both: TensorRT cannot be installed from the package registries
reachable here, and the GPU machine has none. So these tests have NEVER run; they are
written against NVIDIA's documented Python API and are skipped everywhere here. The same
runner logic is exercised against a fake TensorRT in test_trt_runner.py, and the builds
against TensorRT-RTX on the CPU in test_trt_build.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rtvoice import SynthesisConfig, Voice, cuda
from rtvoice.audio import concatenate
from rtvoice.config import GRAPH_NAMES, EngineProfile, VoiceConfig
from rtvoice.engine.gpu_runner import DeviceTensor
from rtvoice.errors import EngineError

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None or not cuda.is_available(),
                       reason="needs TensorRT (pip install 'rtvoice[tensorrt]') and a CUDA GPU"),
]
FP32: dict[str, str] = dict.fromkeys(GRAPH_NAMES, "fp32")


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    err = np.sum((reference - other) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(reference**2) / err))


def _built(source: Path, folder: Path, precision: dict[str, str] | None = None) -> Path:
    from rtvoice.trt.build import build_voice_engines

    shutil.copytree(source, folder)
    build_voice_engines(folder, precision=precision)  # type: ignore[arg-type]
    return folder


@pytest.fixture(scope="module")
def fp32_voice(tiny_voice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Voice]:
    folder = _built(tiny_voice_dir, tmp_path_factory.mktemp("trt-gpu") / "fp32", FP32)
    with Voice.load(folder, backend="tensorrt", device="cuda:0") as voice:
        yield voice


def test_trt_engine_matches_cpu_engine(fp32_voice: Voice, tiny_voice: Voice) -> None:
    cfg = SynthesisConfig(seed=4, force_steps=120)
    text = "TensorRT agrees with the CPU."
    gpu = concatenate(fp32_voice.synthesize(text, cfg))
    cpu = concatenate(tiny_voice.synthesize(text, cfg))
    assert fp32_voice.engine.name == "tensorrt" and fp32_voice.choice.device == "cuda:0"
    assert len(gpu) == len(cpu) == 120 * 256
    assert snr_db(cpu, gpu) > 40.0  # all four graphs strict FP32 (TF32 off)


def test_trt_streamed_equals_whole(fp32_voice: Voice) -> None:
    text = "Streaming through TensorRT."
    whole = concatenate(fp32_voice.synthesize(text, SynthesisConfig(seed=1, whole=True)))
    streamed = concatenate(fp32_voice.synthesize(text, SynthesisConfig(seed=1, chunk_frames=16)))
    assert len(whole) == len(streamed) and snr_db(whole, streamed) > 40.0


def test_default_precision_policy_stays_close(tiny_voice_dir: Path, tmp_path: Path, tiny_voice: Voice) -> None:
    folder = _built(tiny_voice_dir, tmp_path / "default")  # FP16 postnet and WaveGlow where TensorRT 10 allows
    cfg = SynthesisConfig(seed=5, force_steps=100)
    with Voice.load(folder, backend="tensorrt", device="cuda:0") as voice:
        gpu = concatenate(voice.synthesize("Half precision vocoder.", cfg))
    cpu = concatenate(tiny_voice.synthesize("Half precision vocoder.", cfg))
    assert len(gpu) == len(cpu) and np.isfinite(gpu).all()
    assert snr_db(cpu, gpu) > 20.0  # a first guess, not a measured bound: adjust when this has run


def test_text_longer_than_the_profile_says_which_field_to_raise(tiny_voice_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "short"
    shutil.copytree(tiny_voice_dir, folder)
    config = VoiceConfig.load(folder)
    short = dataclasses.replace(config.profiles, text_length=EngineProfile(1, 8, 16))
    dataclasses.replace(config, profiles=short).save(folder)
    from rtvoice.trt.build import build_voice_engines

    build_voice_engines(folder, precision=FP32)  # type: ignore[arg-type]
    with Voice.load(folder, backend="tensorrt", device="cuda:0") as voice:
        with pytest.raises(EngineError, match=r"text_length 1\.\.16.*raise profiles\.text_length\.max") as info:
            concatenate(voice.synthesize("This sentence is much longer than sixteen symbols.",
                                         SynthesisConfig(force_steps=10)))
    assert info.value.tensor in ("text", "memory")


def test_a_stale_plan_is_refused(tiny_voice_dir: Path, tmp_path: Path) -> None:
    folder = _built(tiny_voice_dir, tmp_path / "stale", FP32)
    config = VoiceConfig.load(folder)
    longer = dataclasses.replace(config.profiles, mel_frames=EngineProfile(1, 96, 1024))
    dataclasses.replace(config, profiles=longer).save(folder)
    with pytest.raises(EngineError, match=r"postnet\.plan is stale\. Note: profiles.*python -m rtvoice\.trt\.build"):
        Voice.load(folder, backend="tensorrt", device="cuda:0")


def test_runner_lifecycle_on_a_real_engine(fp32_voice: Voice) -> None:
    from rtvoice.trt.runner import TrtRunner

    cuda.set_device(0)
    m = fp32_voice.config.decoder.n_mel_channels
    with cuda.Stream() as stream, cuda.DeviceBuffer(4 * m * 32) as mel, cuda.DeviceBuffer(4 * m * 32) as out:
        runner = TrtRunner("postnet", fp32_voice.folder / "postnet.plan", stream)
        before = dict(vars(runner))
        with runner:
            for frames in (32, 32, 12):
                runner.run({"mel_frames": DeviceTensor(mel.ptr, (1, frames, m))},
                           {"mel_postnet": DeviceTensor(out.ptr, (1, m, frames))})
            stream.synchronize()
        assert vars(runner) == before
