"""``n_frames_per_step`` (r): r = 1 keeps NVIDIA's layout; the runtime side refuses r > 1 by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from rtvoice.errors import CheckpointError  # noqa: E402
from rtvoice.export.checkpoint import load_tacotron2, tacotron2_params  # noqa: E402
from rtvoice.export.onnx_export import export_tacotron2  # noqa: E402
from rtvoice.export.tacotron2 import Tacotron2, Tacotron2Params  # noqa: E402
from rtvoice.export.voice_builder import TINY_TACOTRON2, random_models, voice_config  # noqa: E402

R2 = dataclasses.replace(TINY_TACOTRON2, n_frames_per_step=2)
REASON = "the runtime decodes one frame per step"


def test_params_round_trip_frames_per_step_and_old_configs_mean_one() -> None:
    assert Tacotron2Params.from_config(R2.to_dict()) == R2
    old = {k: v for k, v in TINY_TACOTRON2.to_dict().items() if k != "n_frames_per_step"}
    assert Tacotron2Params.from_config(old).n_frames_per_step == 1
    one, two = Tacotron2(TINY_TACOTRON2).state_dict(), Tacotron2(R2).state_dict()
    assert one.keys() == two.keys()
    assert one["decoder.linear_projection.linear_layer.weight"].shape == (80, 64 + 32)
    assert one["decoder.gate_layer.linear_layer.bias"].shape == (1,)
    assert two["decoder.linear_projection.linear_layer.weight"].shape == (160, 64 + 32)
    assert two["decoder.gate_layer.linear_layer.weight"].shape == (2, 64 + 32)
    assert tacotron2_params(two, {}).n_frames_per_step == 2 and tacotron2_params(two, {}).n_mel_channels == 80


def test_runtime_side_refuses_more_than_one_frame_per_step(tmp_path: Path) -> None:
    model = Tacotron2(R2).eval()
    with pytest.raises(ValueError, match=f"ONNX export .* has 2: {REASON}"):
        export_tacotron2(model, tmp_path)
    assert not list(tmp_path.iterdir())  # refused before writing anything
    _, waveglow = random_models("tiny")
    with pytest.raises(ValueError, match=REASON):
        voice_config("r2", model, waveglow, {})
    with pytest.raises(ValueError, match=REASON):
        model.infer(torch.ones(1, 5, dtype=torch.long), torch.ones(4, 1, 2, R2.prenet_dim))
    for name, config in (("config.pt", R2.to_dict()), ("bare.pt", {})):  # r read from config, or from shapes
        torch.save({"state_dict": model.state_dict(), "config": config}, tmp_path / name)
        with pytest.raises(CheckpointError, match=REASON):
            load_tacotron2(tmp_path / name)
