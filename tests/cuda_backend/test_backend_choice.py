"""Choosing the cuda backend (issue 26): explicit, by auto on a GPU, and auto's fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtvoice import backends
from rtvoice.config import VoiceConfig
from rtvoice.errors import BackendError


def test_cuda_backend_on_this_gpu_less_machine_is_a_clear_error(tiny_voice_dir: Path) -> None:
    with pytest.raises(BackendError, match="cuda backend unavailable"):
        backends.choose(tiny_voice_dir, "cuda", "auto")
    assert backends.choose(tiny_voice_dir, "auto", "auto").device == "cpu"


def test_auto_takes_cuda_when_kernels_can_run_and_no_tensorrt_engines(
        tiny_voice_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "_kernel_ready", lambda: (True, "CUDA GPU and NVRTC 13.0 found"))
    choice = backends.choose(tiny_voice_dir, "auto", "auto")
    assert (choice.backend, choice.device, choice.auto) == ("cuda", "cuda:0", True)
    explicit = backends.choose(tiny_voice_dir, "cuda", "cuda:1")
    assert (explicit.backend, explicit.device, explicit.auto) == ("cuda", "cuda:1", False)
    with pytest.raises(BackendError, match="needs a CUDA device"):
        backends.choose(tiny_voice_dir, "cuda", "cpu")
    assert backends.choose(tiny_voice_dir, "auto", "cpu").backend == "onnxruntime"


def test_auto_falls_back_to_onnx_runtime_cuda_when_the_kernels_cannot_open(
        tiny_voice_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rtvoice.engine import cuda_engine
    from rtvoice.ort import cuda_engine as ort_cuda

    def no_kernels(*args: object, **kwargs: object) -> None:
        raise BackendError("NVRTC could not compile decoder_step.cu for sm_90", backend="cuda")

    opened: list[str] = []
    monkeypatch.setattr(cuda_engine, "KernelEngine", no_kernels)
    monkeypatch.setattr(ort_cuda, "CudaEngine", lambda folder, config, index: opened.append(f"ort:{index}"))
    config = VoiceConfig.load(tiny_voice_dir)
    backends.open_engine(tiny_voice_dir, config, backends.Choice("cuda", "cuda:0", "auto", auto=True))
    assert opened == ["ort:0"]
    with pytest.raises(BackendError, match="NVRTC"):  # asked for by name: the error is the answer
        backends.open_engine(tiny_voice_dir, config, backends.Choice("cuda", "cuda:0", "requested"))
