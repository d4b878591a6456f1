"""Fixtures of the rtvoice.trt tests: the fake TensorRT of trt_fakes.py, and a writable tiny voice."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from trt_fakes import FakeTensorRT  # tests/trt/trt_fakes.py (tests/ is not a package)

from rtvoice.trt import _tensorrt


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTensorRT]:
    """Replace ``rtvoice.trt._tensorrt.load`` by the fake for one test."""
    fake = FakeTensorRT()
    monkeypatch.setattr(_tensorrt, "load", fake.load)
    yield fake


@pytest.fixture
def voice_copy(tiny_voice_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny voice (the session fixture is shared read-only)."""
    folder = tmp_path / "voice"
    shutil.copytree(tiny_voice_dir, folder)
    return folder
