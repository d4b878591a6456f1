"""The cuda backend's kernel modes are named once (rtvoice/config.py's CudaStep) and used everywhere.

voice.json's ``batching.cuda_step`` check, the engine's ``RTVOICE_CUDA_STEP`` check and the
kernels' own check all read that one list, so a mode added there is accepted by all three,
and one named nowhere else is refused by all three. Found in review (2026-12-07): the names
were written out three times.
"""

from __future__ import annotations

import typing

import pytest

from rtvoice.config import CUDA_STEPS, BatchingConfig, CudaStep
from rtvoice.engine import cuda_engine, cuda_step
from rtvoice.errors import BackendError, VoiceError
from rtvoice.voice_schema import build


def test_one_list_of_modes() -> None:
    assert CUDA_STEPS == ("phases", "fused", "persistent") and BatchingConfig().cuda_step == CUDA_STEPS[0]
    assert typing.get_type_hints(BatchingConfig)["cuda_step"] == CudaStep
    assert cuda_step.MODES is CUDA_STEPS and cuda_step.Mode == CudaStep


def test_every_check_accepts_the_modes_and_refuses_another(monkeypatch: pytest.MonkeyPatch) -> None:
    for mode in CUDA_STEPS:
        assert build(BatchingConfig, {"cuda_step": mode}, "batching").cuda_step == mode
        monkeypatch.setenv("RTVOICE_CUDA_STEP", mode)
        assert cuda_engine.step_mode() == mode
    with pytest.raises(VoiceError, match=r"expected one of \['phases', 'fused', 'persistent'\]"):
        build(BatchingConfig, {"cuda_step": "turbo"}, "batching")
    monkeypatch.setenv("RTVOICE_CUDA_STEP", "turbo")
    with pytest.raises(BackendError, match="use phases, fused, persistent"):
        cuda_engine.step_mode()
