"""KernelEngine over the fake device (tests/engine/fake_device.py), shared by the engine tests.

The decoder kernels run through a given launcher (numpy phases, or decoder_step.cu compiled
for the CPU); the encoder, postnet and WaveGlow as ONNX Runtime CPU sessions.
"""

from __future__ import annotations

import ctypes
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy_launcher import NumpyLauncher, view

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from fake_device import FakeBuffer, FakeGraph, FakeRunner, FakeStream, install  # noqa: E402

from rtvoice.config import BatchingConfig, EngineProfile, VoiceConfig  # noqa: E402
from rtvoice.engine import cuda_engine, cuda_step  # noqa: E402
from rtvoice.engine.cuda_engine import KernelEngine  # noqa: E402
from rtvoice.engine.step_weights import load_packed  # noqa: E402

IDS = [list(range(3, 3 + n)) for n in (11, 5, 23)]
__all__ = ["IDS", "FakeGraph", "FakeRunner", "Recording", "install_fakes", "kernel_engine", "masks"]


def install_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)
    from fake_device import copy_async, memset_async

    for module in (cuda_step, cuda_engine):
        for name, fake in {"DeviceBuffer": FakeBuffer, "Stream": FakeStream, "CudaGraph": FakeGraph,
                           "copy_async": copy_async, "memset_async": memset_async,
                           "set_device": lambda index: None}.items():
            if hasattr(module, name):
                monkeypatch.setattr(module, name, fake)


def kernel_engine(folder: Path, monkeypatch: pytest.MonkeyPatch, mode: str, launcher: Any = None,
                  decoder: dict[str, Any] | None = None, **batching: Any) -> tuple[KernelEngine, Any]:
    """A KernelEngine in ``mode`` on rows of 48 symbols; ``decoder`` replaces DecoderConfig fields."""
    install_fakes(monkeypatch)
    config = VoiceConfig.load(folder)
    profiles = dataclasses.replace(config.profiles, text_length=EngineProfile(1, 48, 48))
    config = dataclasses.replace(config, profiles=profiles, batching=BatchingConfig(**batching),
                                 decoder=dataclasses.replace(config.decoder, **(decoder or {})))
    launcher = launcher or NumpyLauncher(load_packed(folder / "decoder_step.onnx").dims)
    engine = KernelEngine(folder, config, 0, runner_factory=lambda graph, path, stream: FakeRunner(path),
                          launcher=launcher, sm_count=4, mode=mode)  # type: ignore[arg-type]
    return engine, launcher


def masks(seed: int, steps: int, prenet: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((steps, 1, 2, prenet)) > 0.5).astype(np.float32) * 2.0


class Recording:
    """A launcher that records each launch's (kernel, steps, stop_on_gate, steps the kernel reports)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.log: list[tuple[str, int, int, int]] = []
        self.cooperative = 0

    def max_blocks_per_sm(self, kernel: str, threads: int, smem: int) -> int:
        return int(self.inner.max_blocks_per_sm(kernel, threads, smem))

    def launch(self, kernel: str, grid: int, threads: int, smem: int, stream: int, params: ctypes.Structure,
               *, cooperative: bool = False) -> None:
        self.inner.launch(kernel, grid, threads, smem, stream, params, cooperative=cooperative)
        self.cooperative += cooperative
        p: Any = params
        ran = int(view(p.steps_done, (1,), np.int32)[0]) if kernel == "k_fused" and p.steps_done else -1
        self.log.append((kernel, int(p.steps), int(p.stop_on_gate), ran))
