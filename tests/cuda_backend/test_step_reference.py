"""The fused decoder step's numpy reference and weight packing against ONNX Runtime (issue 26).

The reference reads the packed layouts the CUDA kernel reads, so these tests check the
packing and the algorithm on the CPU: float32 packing must reproduce decoder_step.onnx to
float32 rounding, float16 packing within the error fp16 weights bring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from step_cases import step_cases  # tests/cuda_backend/step_cases.py

from rtvoice.config import VoiceConfig
from rtvoice.engine.graphs import GRAPH_OUTPUTS, STATE_NAMES
from rtvoice.engine.step_reference import reference_step
from rtvoice.engine.step_weights import load_packed
from rtvoice.errors import VoiceError

DEFAULT_VOICE = Path(__file__).parents[2] / "rtvoice" / "voices" / "default"


def _voice(request: pytest.FixtureRequest, name: str) -> Path:
    return DEFAULT_VOICE if name == "default" else Path(request.getfixturevalue(name))


@pytest.mark.parametrize("voice", ["tiny_voice_dir", "tiny_r2_voice_dir", "default"])
def test_float32_packing_matches_onnx_runtime_step_by_step(voice: str, request: pytest.FixtureRequest) -> None:
    folder = _voice(request, voice)
    packed = load_packed(folder / "decoder_step.onnx", np.float32)
    config = VoiceConfig.load(folder)
    assert packed.dims.r == config.decoder.frames_per_step
    assert packed.dims.prenet == config.decoder.prenet_dim
    for case in step_cases(folder, [7, 3, 12], steps=6):
        got = reference_step(packed, case.inputs)
        assert set(got) == set(GRAPH_OUTPUTS["decoder_step"])
        for name, want in case.outputs.items():
            np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=2e-5, err_msg=name)
        # padded positions get exactly zero attention, as in ONNX Runtime
        assert np.all(got["next_attention_weights"][case.inputs["mask"]] == 0)


@pytest.mark.parametrize("voice", ["tiny_voice_dir", "default"])
def test_float16_packing_stays_within_fp16_error_over_a_trajectory(voice: str, request: pytest.FixtureRequest) -> None:
    """fp16 weights, fp32 accumulation, fed its own outputs for 24 steps: close to the fp32 graph."""
    folder = _voice(request, voice)
    half = load_packed(folder / "decoder_step.onnx", np.float16)
    assert half.att_w.dtype == np.float16 and half.att_b.dtype == np.float32
    cases = step_cases(folder, [9, 4], steps=24)
    got: dict[str, np.ndarray] = {}
    worst = 0.0
    for case in cases:
        # ONNX Runtime's masks and encoder output, but the state this reference made itself
        inputs = {**case.inputs, **({"decoder_input": got["mel_frame"], **{k: got[f"next_{k}"] for k in STATE_NAMES}}
                                    if got else {})}
        got = reference_step(half, inputs)
        scale = float(np.abs(case.outputs["mel_frame"]).max()) + 1e-3
        worst = max(worst, float(np.abs(got["mel_frame"] - case.outputs["mel_frame"]).max()) / scale)
        # one step from ONNX Runtime's own inputs: fp16 weight rounding alone
        one = reference_step(half, case.inputs)
        for name in ("mel_frame", "gate", "next_attention_context"):
            want = case.outputs[name]
            assert np.abs(one[name] - want).max() <= 2e-2 * (np.abs(want).max() + 1e-2), name
    assert worst < 1e-2, worst


def test_fp16_packing_is_not_exact(request: pytest.FixtureRequest) -> None:
    """The fp16 test above can fail: rounding the weights does change the output."""
    folder = DEFAULT_VOICE
    case = step_cases(folder, [9], steps=2)[1]
    half = reference_step(load_packed(folder / "decoder_step.onnx", np.float16), case.inputs)
    full = reference_step(load_packed(folder / "decoder_step.onnx", np.float32), case.inputs)
    assert np.abs(half["mel_frame"] - full["mel_frame"]).max() > 1e-6


def test_a_graph_without_the_expected_nodes_is_a_clear_voice_error(tmp_path: Path, tiny_voice_dir: Path) -> None:
    import onnx

    model = onnx.load(str(tiny_voice_dir / "decoder_step.onnx"))
    for node in model.graph.node:
        if node.name == "/attention_layer/query_layer/linear_layer/MatMul":
            node.name = "renamed"
    onnx.save(model, str(tmp_path / "decoder_step.onnx"))
    with pytest.raises(VoiceError, match="query_layer"):
        load_packed(tmp_path / "decoder_step.onnx")
    with pytest.raises(VoiceError, match="missing"):
        load_packed(tmp_path / "nothing.onnx")


def test_a_voice_stored_in_float16_packs_the_same_weights(tmp_path: Path, tiny_voice_dir: Path) -> None:
    """training/fp16_voice.py stores weights as float16 initializers behind Casts: followed through."""
    from training.fp16_voice import convert_folder

    convert_folder(tiny_voice_dir, tmp_path / "half", min_elements=16)
    half = load_packed(tmp_path / "half" / "decoder_step.onnx", np.float32)
    full = load_packed(tiny_voice_dir / "decoder_step.onnx", np.float32)
    assert half.dims == full.dims
    assert not np.array_equal(half.att_w, full.att_w)  # rounded: the Cast was followed to the float16 values
    np.testing.assert_allclose(half.att_w, full.att_w, rtol=1e-3, atol=1e-4)
    for case in step_cases(tmp_path / "half", [7, 3], steps=3):
        got = reference_step(half, case.inputs)
        for name, want in case.outputs.items():
            np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=2e-5, err_msg=name)
