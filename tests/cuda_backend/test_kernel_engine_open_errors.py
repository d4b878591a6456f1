"""KernelEngine gives back the kernel module it loaded when opening fails after the load.

The engine loads (NVRTC-compiles or takes from the cache) its CUDA module first; a bad
``RTVOICE_CUDA_COOPERATIVE`` or ``RTVOICE_CUDA_STEP``, or a failed weight upload, then
raised with the module loaded and nobody to unload it. Found in review (2026-12-07).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kernel_engines import FakeRunner, install_fakes  # tests/cuda_backend/kernel_engines.py
from numpy_launcher import NumpyLauncher

from rtvoice.config import VoiceConfig
from rtvoice.engine import cuda_engine
from rtvoice.engine.cuda_engine import KernelEngine
from rtvoice.engine.step_weights import load_packed
from rtvoice.errors import BackendError


class Module(NumpyLauncher):
    """What load_module returns (the numpy kernels), counting loads and closes."""

    loaded = closed = 0

    def __init__(self, dims: Any) -> None:
        super().__init__(dims)
        Module.loaded += 1

    def close(self) -> None:
        Module.closed += 1


def _open(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Module.loaded = Module.closed = 0
    install_fakes(monkeypatch)
    dims = load_packed(folder / "decoder_step.onnx").dims
    monkeypatch.setattr(cuda_engine, "load_module", lambda index, shape=None: (Module(dims), 4))
    KernelEngine(folder, VoiceConfig.load(folder), 0, runner_factory=lambda graph, path, stream: FakeRunner(path))


@pytest.mark.parametrize(("variable", "value"), [("RTVOICE_CUDA_COOPERATIVE", "yes"),
                                                 ("RTVOICE_CUDA_STEP", "fastest")])
def test_a_bad_setting_leaves_no_module_loaded(variable: str, value: str, tiny_voice_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(BackendError, match=variable):
        _open(tiny_voice_dir, monkeypatch)
    assert Module.loaded == Module.closed, "a module was loaded and never closed"


def test_a_failed_weight_upload_closes_the_module(tiny_voice_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def upload_fails(*args: Any, **kwargs: Any) -> None:
        raise BackendError("upload failed", backend="cuda")

    monkeypatch.setattr(cuda_engine, "StepKernels", upload_fails)
    with pytest.raises(BackendError, match="upload failed"):
        _open(tiny_voice_dir, monkeypatch)
    assert Module.loaded == Module.closed, "a module was loaded and never closed"
