"""A real TensorRT ONNX parser and builder on the tiny voice's four graphs.

Runs with full TensorRT where it is installed (and a GPU, which full TensorRT needs to
build), else with TensorRT-RTX (``pip install tensorrt-rtx-cu13-libs
tensorrt-rtx-cu13-bindings``), which parses and builds on a machine with no GPU at all.
That checks that our graphs and their optimization profiles are accepted by a TensorRT
ONNX parser and builder; it runs no engine (RTX plans do not run on the H100, and there
is no GPU here). Skipped when neither module is installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtvoice.config import GRAPH_NAMES, VoiceConfig
from rtvoice.errors import EngineError
from rtvoice.trt import _tensorrt, build
from rtvoice.trt.cache import NO_GPU, gpu_identity, read_key
from rtvoice.trt.profiles import profiles_for

if not _tensorrt.is_installed(allow_rtx=True):
    pytest.skip("neither tensorrt nor tensorrt_rtx_bindings is installed", allow_module_level=True)
TRT = _tensorrt.load(allow_rtx=True)
if TRT.flavor == _tensorrt.FULL and gpu_identity() == NO_GPU:
    pytest.skip("full TensorRT needs a CUDA GPU to build engines", allow_module_level=True)


@pytest.fixture(scope="module")
def built_voice(tiny_voice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Path]]]:
    """The tiny voice with its four plans, built once for this module."""
    folder = tmp_path_factory.mktemp("trt") / "tiny"
    shutil.copytree(tiny_voice_dir, folder)
    yield folder, build.build_voice_engines(folder, allow_rtx=True)


def test_all_four_graphs_parse_and_build_with_their_profiles(built_voice: tuple[Path, list[Path]]) -> None:
    folder, plans = built_voice
    config = VoiceConfig.load(folder)
    assert plans == [folder / f"{graph}.plan" for graph in GRAPH_NAMES]
    for graph, plan in zip(GRAPH_NAMES, plans, strict=True):
        assert plan.stat().st_size > 10_000, graph
        key = read_key(plan)
        assert key is not None and key.tensorrt == TRT.label
        assert key.precision == build.effective_precision(TRT, build.DEFAULT_PRECISION[graph])
        assert key.profiles == {name: [list(s) for s in shapes]
                                for name, shapes in sorted(profiles_for(graph, config).items())}
    if TRT.flavor == _tensorrt.RTX:  # no GPU, and no timing cache in TensorRT-RTX
        assert key is not None and key.gpu == NO_GPU and not (folder / build.TIMING_CACHE_FILE).exists()
    else:
        assert (folder / build.TIMING_CACHE_FILE).stat().st_size > 0


def test_a_second_build_reuses_every_plan(built_voice: tuple[Path, list[Path]],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder, plans = built_voice

    def no_build(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("rebuilt a current plan")

    monkeypatch.setattr(build, "build_engine", no_build)
    assert build.build_voice_engines(folder, allow_rtx=True) == plans


def test_every_parser_error_is_reported_with_its_node(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    helper, float_ = onnx.helper, onnx.TensorProto.FLOAT
    nodes = [helper.make_node("FooOp", ["x"], ["y"], name="first_bad", domain="rtvoice.test"),
             helper.make_node("BarOp", ["y"], ["z"], name="second_bad", domain="rtvoice.test")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", float_, ["n", 4])],
                              [helper.make_tensor_value_info("z", float_, ["n", 4])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("rtvoice.test", 1)]), str(path))
    with pytest.raises(EngineError) as info:
        build.build_engine(path, {"x": ((1, 4), (1, 4), (2, 4))}, allow_rtx=True)
    text = str(info.value)
    assert "rejected bad.onnx with 2 error(s)" in text
    assert "node 0 'first_bad' (FooOp)" in text and "node 1 'second_bad' (BarOp)" in text
    assert "Hint:" in text and info.value.tensor == "first_bad"


def test_profiles_that_do_not_fit_the_graph(tiny_voice_dir: Path) -> None:
    config = VoiceConfig.load(tiny_voice_dir)
    encoder = tiny_voice_dir / "encoder.onnx"
    profiles = profiles_for("encoder", config)
    with pytest.raises(EngineError, match="Input 'text_lengths' of encoder.onnx has dynamic shape") as info:
        build.build_engine(encoder, {"text": profiles["text"]}, allow_rtx=True)
    assert info.value.tensor == "text_lengths"
    with pytest.raises(EngineError, match="Profile names 'mel', which is not an input of encoder.onnx"):
        build.build_engine(encoder, {**profiles, "mel": ((1,), (1,), (1,))}, allow_rtx=True)
    postnet = profiles_for("postnet", config)["mel_frames"]
    wider = tuple((*s[:2], 81) for s in postnet)
    with pytest.raises(EngineError, match=r"Profile shape \(1, 1, 81\) of input 'mel_frames' does not fit"):
        build.build_engine(tiny_voice_dir / "postnet.onnx", {"mel_frames": wider}, allow_rtx=True)  # type: ignore[dict-item]
    with pytest.raises(EngineError, match="is not min <= opt <= max"):
        build.build_engine(tiny_voice_dir / "postnet.onnx", {"mel_frames": ((1, 9, 80), (1, 5, 80), (1, 20, 80))},
                           allow_rtx=True)
    with pytest.raises(EngineError, match="does not exist"):
        build.build_engine(tiny_voice_dir / "nothing.onnx", {}, allow_rtx=True)


def test_a_decoder_step_of_two_frames_builds_with_its_profile(tiny_r2_voice_dir: Path) -> None:
    """Two frames a step: the step takes and gives (batch, 160), its profile says so, a wrong one is refused."""
    config = VoiceConfig.load(tiny_r2_voice_dir)
    profiles = profiles_for("decoder_step", config)
    assert profiles["decoder_input"][2] == (config.profiles.batch.max, 160)
    plan = build.build_engine(tiny_r2_voice_dir / "decoder_step.onnx", profiles, allow_rtx=True)
    assert len(plan) > 10_000
    one_frame = tuple((s[0], 80) for s in profiles["decoder_input"])
    with pytest.raises(EngineError, match=r"of input 'decoder_input' does not fit"):
        build.build_engine(tiny_r2_voice_dir / "decoder_step.onnx", {**profiles, "decoder_input": one_frame},
                           allow_rtx=True)  # type: ignore[dict-item]
