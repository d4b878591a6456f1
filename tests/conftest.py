"""Shared pytest setup for rtvoice's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rtvoice import Voice


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers, so that --strict-markers accepts them."""
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU and driver; skipped without one")
    config.addinivalue_line("markers", "network: needs network access")


@pytest.fixture(scope="session")
def tiny_voice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random voice built once per test session, shared read-only by every test.

    It goes through the real build path: PyTorch models -> ONNX export -> voice.json.
    """
    from rtvoice.export.voice_builder import build_voice, random_models

    folder = tmp_path_factory.mktemp("voices") / "tiny"
    tacotron2, waveglow = random_models("tiny", seed=0)
    build_voice(tacotron2, waveglow, folder, "tiny", {"random": "tiny", "seed": 0})
    return folder


@pytest.fixture(scope="session")
def tiny_r2_voice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random voice with two mel frames per decoder step (reduction factor r = 2)."""
    from rtvoice.export.voice_builder import build_voice, random_models

    folder = tmp_path_factory.mktemp("voices") / "tiny-r2"
    tacotron2, waveglow = random_models("tiny", seed=0, frames_per_step=2)
    build_voice(tacotron2, waveglow, folder, "tiny-r2", {"random": "tiny", "seed": 0})
    return folder


@pytest.fixture(scope="session")
def tiny_voice(tiny_voice_dir: Path) -> Iterator[Voice]:
    """The tiny voice loaded on the CPU backend, shared by the session."""
    from rtvoice import Voice

    with Voice.load(tiny_voice_dir, backend="onnxruntime", device="cpu") as voice:
        yield voice
