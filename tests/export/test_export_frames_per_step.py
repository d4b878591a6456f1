"""``n_frames_per_step`` (r): r = 1 keeps NVIDIA's layout; r > 1 exports and runs, frame for frame."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from rtvoice.config import VoiceConfig  # noqa: E402
from rtvoice.export.checkpoint import load_tacotron2, tacotron2_params  # noqa: E402
from rtvoice.export.cli import main as build_main  # noqa: E402
from rtvoice.export.parity import compare  # noqa: E402
from rtvoice.export.tacotron2 import Tacotron2, Tacotron2Params  # noqa: E402
from rtvoice.export.voice_builder import TINY_TACOTRON2, random_models  # noqa: E402

R2 = dataclasses.replace(TINY_TACOTRON2, n_frames_per_step=2)


def _dims(path: Path) -> dict[str, list[int | str]]:
    graph = onnx.load(str(path)).graph
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*graph.input, *graph.output]}


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


def test_the_decoder_step_graph_takes_and_gives_r_frames(tiny_voice_dir: Path, tiny_r2_voice_dir: Path) -> None:
    one, two = _dims(tiny_voice_dir / "decoder_step.onnx"), _dims(tiny_r2_voice_dir / "decoder_step.onnx")
    assert (one["decoder_input"], one["mel_frame"], one["gate"]) == (["batch", 80], ["batch", 80], ["batch", 1])
    assert (two["decoder_input"], two["mel_frame"], two["gate"]) == (["batch", 160], ["batch", 160], ["batch", 2])
    assert VoiceConfig.load(tiny_voice_dir).decoder.frames_per_step == 1
    assert VoiceConfig.load(tiny_r2_voice_dir).decoder.frames_per_step == 2
    # r = 1 is NVIDIA's graph as before: the fed-back frame goes to the prenet unsliced.
    ops = {node.op_type for node in onnx.load(str(tiny_voice_dir / "decoder_step.onnx")).graph.node}
    assert "Slice" not in ops


@pytest.mark.parametrize("frames", [41, 40])
def test_an_r2_voice_speaks_as_pytorch_decodes_it(tiny_r2_voice_dir: Path, frames: int) -> None:
    """ONNX Runtime against PyTorch; an odd frame count drops the last step's second frame."""
    tacotron2, waveglow = random_models("tiny", seed=0, frames_per_step=2)
    report = compare(tiny_r2_voice_dir, tacotron2, waveglow, "Two frames at a time.", seed=5, steps=frames)
    assert report.mel_peak > 0.1 and report.audio_peak > 1e-3  # something was decoded
    assert report.mel_max_abs <= 1e-4 * max(1.0, report.mel_peak), report
    assert report.audio_max_abs <= 1e-3 * max(1.0, report.audio_peak), report


def test_an_r2_checkpoint_builds_a_voice(tmp_path: Path) -> None:
    """The frames per step come from the config, or from the tensor shapes; build_engines.py exports them."""
    tacotron2, waveglow = random_models("tiny", seed=1, frames_per_step=2)
    torch.save({"state_dict": waveglow.state_dict(), "config": dataclasses.asdict(waveglow.params)},
               tmp_path / "waveglow.pt")
    for name, config in (("config.pt", R2.to_dict()), ("bare.pt", {})):
        torch.save({"state_dict": tacotron2.state_dict(), "config": config}, tmp_path / name)
        assert load_tacotron2(tmp_path / name).params.n_frames_per_step == 2
    out = tmp_path / "voice"
    assert build_main(["--tacotron2", str(tmp_path / "config.pt"), "--waveglow", str(tmp_path / "waveglow.pt"),
                       "--out", str(out), "--no-engines"]) == 0  # includes the parity check
    assert json.loads((out / "voice.json").read_text())["decoder"]["frames_per_step"] == 2


def test_reference_inference_stops_mid_step_where_the_gate_fires() -> None:
    model = Tacotron2(R2).eval()
    with torch.no_grad():
        model.decoder.gate_layer.linear_layer.bias.copy_(torch.tensor([-30.0, -30.0]))
        masks = torch.ones(20, 1, 2, R2.prenet_dim)
        text = torch.ones(1, 5, dtype=torch.long)
        mel, post, gate = model.infer(text, masks)
        assert mel.shape == (1, 80, 40) and gate.shape == (1, 40)  # never fired: every mask used
        model.decoder.gate_layer.linear_layer.bias.copy_(torch.tensor([30.0, -30.0]))
        mel, post, gate = model.infer(text, masks)
        assert mel.shape == post.shape == (1, 80, 1)  # fired on the first frame of the first step
        forced, _, _ = model.infer(text, masks, n_steps=7)
    assert forced.shape == (1, 80, 7)
    np.testing.assert_allclose(forced[..., :1].numpy(), mel.numpy())
