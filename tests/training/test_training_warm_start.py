"""Warm starts by matching tensors (training/warm_start.py) and the guided-attention fade-out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from rtvoice.export.tacotron2 import Tacotron2  # noqa: E402
from training import checkpoint, warm_start  # noqa: E402
from training.tacotron2_steps import free_run  # noqa: E402
from training.train_tacotron2 import PRESETS, guide_scale  # noqa: E402


def test_a_grown_decoder_keeps_the_old_encoder_and_starts_the_rest_fresh(tmp_path: Path) -> None:
    torch.manual_seed(0)
    small = PRESETS["tiny"]
    old = Tacotron2(dataclasses.replace(small, n_frames_per_step=3))
    grown = dataclasses.replace(small, attention_rnn_dim=96, decoder_rnn_dim=80, n_frames_per_step=3)
    new = Tacotron2(grown)
    before = {k: v.clone() for k, v in new.state_dict().items()}
    checkpoint.save({"state_dict": old.state_dict(), "config": {}}, tmp_path / "tacotron2.pt")
    assert warm_start.main(["--checkpoint", str(tmp_path), "--model", "tacotron2", "--preset", "tiny",
                            "--out", str(tmp_path / "warm.pt")]) == 0
    stored = torch.load(tmp_path / "warm.pt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())

    got = warm_start.apply(new, tmp_path / "warm.pt")
    state = new.state_dict()
    for name, value in old.state_dict().items():
        if name.startswith(("embedding.", "encoder.")):
            want = value.half().float() if value.is_floating_point() else value
            assert torch.equal(state[name], want), name  # copied (through float16)
    for name in ("decoder.attention_rnn.weight_hh", "decoder.decoder_rnn.weight_ih",
                 "decoder.linear_projection.linear_layer.weight"):
        assert torch.equal(state[name], before[name]), name  # another shape: left as initialized
    assert 0 < got["parameters"] < got["of"]
    # The grown model still decodes: nothing half-copied broke its shapes.
    mel, *_ = free_run(new.eval(), torch.randint(1, 40, (9,)), max_steps=12, seed=0)
    assert mel.shape[0] == grown.n_mel_channels and mel.shape[1] >= 1


def test_guided_attention_fades_out_after_its_iteration() -> None:
    assert [guide_scale(i, 0) for i in (0, 10, 10**6)] == [1.0, 1.0, 1.0]  # 0: kept for good
    assert guide_scale(1000, 1000) == 1.0
    assert guide_scale(1500, 1000) == pytest.approx(0.5)
    assert guide_scale(2000, 1000) == 0.0 and guide_scale(5000, 1000) == 0.0
