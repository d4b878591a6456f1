"""Optimization profiles from voice.json, checked against the exported ONNX graphs (no TensorRT)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rtvoice.config import GRAPH_NAMES, EngineProfile, ProfilesConfig, VoiceConfig
from rtvoice.engine.graphs import GRAPH_INPUTS, GRAPH_OUTPUTS
from rtvoice.errors import EngineError
from rtvoice.trt.build import profiles_for
from rtvoice.trt.profiles import explain_shape

onnx = pytest.importorskip("onnx")


def _graph_io(path: Path) -> tuple[dict[str, list[int | str]], list[str]]:
    """Inputs (name -> dims: int where static, the dim_param where dynamic) and output names."""
    graph = onnx.load(str(path), load_external_data=False).graph
    inputs = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    return inputs, [v.name for v in graph.output]


@pytest.mark.parametrize("voice", ["tiny_voice_dir", "tiny_r2_voice_dir"])
@pytest.mark.parametrize("graph", GRAPH_NAMES)
def test_every_graph_input_has_a_profile_that_fits_it(graph: str, voice: str, request: pytest.FixtureRequest) -> None:
    tiny_voice_dir: Path = request.getfixturevalue(voice)
    config = VoiceConfig.load(tiny_voice_dir)
    inputs, outputs = _graph_io(tiny_voice_dir / config.graphs[graph])
    profiles = profiles_for(graph, config)

    assert set(profiles) == set(inputs)  # every input, dynamic or not, and nothing else
    assert tuple(inputs) == GRAPH_INPUTS[graph] and tuple(outputs) == GRAPH_OUTPUTS[graph]
    by_param: dict[str, set[tuple[int, int, int]]] = {}
    for name, dims in inputs.items():
        lo, opt, hi = profiles[name]
        assert len(lo) == len(opt) == len(hi) == len(dims), name
        for axis, dim in enumerate(dims):
            if isinstance(dim, int):  # static in the graph: fixed in the profile
                assert lo[axis] == opt[axis] == hi[axis] == dim, (name, axis)
            else:
                assert 1 <= lo[axis] <= opt[axis] <= hi[axis], (name, axis)
                by_param.setdefault(dim, set()).add((lo[axis], opt[axis], hi[axis]))
    # The same named axis (batch, text_length, ...) gets the same range on every input.
    assert all(len(ranges) == 1 for ranges in by_param.values()), by_param


def test_profiles_follow_voice_json_ranges() -> None:
    profiles = ProfilesConfig(batch=EngineProfile(1, 2, 4), text_length=EngineProfile(3, 50, 300),
                              mel_frames=EngineProfile(2, 64, 1024))
    config = VoiceConfig(name="full", profiles=profiles)  # the published Tacotron 2 / WaveGlow sizes

    enc = profiles_for("encoder", config)
    assert enc == {"text": ((1, 3), (2, 50), (4, 300)), "text_lengths": ((1,), (2,), (4,))}
    step = profiles_for("decoder_step", config)
    assert step["memory"] == ((1, 3, 512), (2, 50, 512), (4, 300, 512))
    assert step["processed_memory"] == ((1, 3, 128), (2, 50, 128), (4, 300, 128))
    assert step["attention_weights_cum"] == ((1, 3), (2, 50), (4, 300))
    assert step["attention_hidden"] == ((1, 1024), (2, 1024), (4, 1024))
    assert step["attention_context"] == ((1, 512), (2, 512), (4, 512))
    assert step["prenet_masks"] == ((1, 2, 256), (2, 2, 256), (4, 2, 256))
    assert profiles_for("postnet", config) == {"mel_frames": ((1, 2, 80), (2, 64, 80), (4, 1024, 80))}
    wg = profiles_for("waveglow", config)
    assert wg["mel"] == ((1, 80, 2), (2, 80, 64), (4, 80, 1024))
    hop, group = config.audio.hop_length, config.vocoder.n_group
    assert wg["noise"] == ((1, group, 2 * hop // group), (2, group, 64 * hop // group), (4, group, 1024 * hop // group))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("text_length", EngineProfile(1, 600, 512), "profiles.text_length in voice.json is (1, 600, 512)"),
    ("batch", EngineProfile(0, 1, 8), "1 <= min <= opt <= max"),
])
def test_invalid_ranges_are_refused_with_the_field(field: str, value: EngineProfile, message: str) -> None:
    config = VoiceConfig(name="bad", profiles=dataclasses.replace(ProfilesConfig(), **{field: value}))
    with pytest.raises(EngineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        profiles_for("decoder_step", config)


def test_noise_length_needs_whole_samples_per_group() -> None:
    config = VoiceConfig(name="odd", audio=dataclasses.replace(VoiceConfig(name="x").audio, hop_length=250))
    with pytest.raises(EngineError, match="not a multiple of WaveGlow's n_group"):
        profiles_for("waveglow", config)


def test_unknown_graph() -> None:
    with pytest.raises(EngineError, match="Unknown graph 'vocoder'"):
        profiles_for("vocoder", VoiceConfig(name="x"))


def test_shape_notes_name_the_voice_json_field() -> None:
    config = VoiceConfig(name="full")
    memory = profiles_for("decoder_step", config)["memory"]
    text = explain_shape("decoder_step", "memory", (1, 700, 512), memory)
    assert text == ("Note: the profile allows text_length 1..512. "
                    "Hint: raise profiles.text_length.max in voice.json and rebuild the engines.")
    noise = profiles_for("waveglow", config)["noise"]
    text = explain_shape("waveglow", "noise", (1, 8, 20000), noise)
    assert "noise_length 32..16384" in text and "raise profiles.mel_frames.max" in text
    text = explain_shape("decoder_step", "memory", (9, 10, 256), memory)
    assert "batch 1..8" in text and "dimension 2 must be 512" in text
    assert "raise profiles.batch.max" in text and "rebuild the engines for this voice" in text
