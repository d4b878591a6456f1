"""TrtRunner's lifecycle and checks against the fake TensorRT of trt_fakes.py (no GPU).

The same calls on a real engine are exercised by test_trt_gpu.py, which needs TensorRT and
a GPU and has never run in this project's workplace.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from trt_fakes import FakeStream, FakeTensorRT  # tests/trt/trt_fakes.py

from rtvoice.config import VoiceConfig
from rtvoice.cuda import Stream
from rtvoice.engine.gpu_runner import DeviceTensor
from rtvoice.engine.graphs import GRAPH_OUTPUTS, STATE_NAMES
from rtvoice.errors import EngineError, InternalError
from rtvoice.trt.profiles import profiles_for
from rtvoice.trt.runner import TrtRunner

MEL = 0x7000_0000


def _runner(tmp_path: Path, graph: str = "postnet", data: bytes | None = None) -> TrtRunner:
    plan = tmp_path / f"{graph}.plan"
    plan.write_bytes(f"plan:{graph}".encode() if data is None else data)
    return TrtRunner(graph, plan, cast(Stream, FakeStream()))


def _postnet_io(frames: int, *, mel: int = MEL, out: int = MEL + 0x10_0000) -> tuple[dict[str, DeviceTensor], ...]:
    return ({"mel_frames": DeviceTensor(mel, (1, frames, 80))},
            {"mel_postnet": DeviceTensor(out, (1, 80, frames))})


def test_close_restores_the_state_before_open(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    runner = _runner(tmp_path)
    before = dict(vars(runner))
    assert runner.open() is runner and runner.is_open
    runner.run(*_postnet_io(12))
    runner.close()
    assert vars(runner) == before and not runner.is_open
    runner.close()  # idempotent
    assert vars(runner) == before
    with runner:  # and it opens again
        runner.run(*_postnet_io(12))
    assert vars(runner) == before


def test_misuse_is_an_internal_error(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    runner = _runner(tmp_path)
    with pytest.raises(InternalError, match=r"not open; use `with runner:`"):
        runner.run(*_postnet_io(12))
    with runner:
        with pytest.raises(InternalError, match="already open"):
            runner.open()
        with pytest.raises(InternalError, match="exactly the graph's IO tensors"):
            runner.run({"mel": DeviceTensor(MEL, (1, 80, 12))}, _postnet_io(12)[1])


def test_shapes_and_addresses_are_set_only_when_they_change(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    with _runner(tmp_path) as runner:
        for _ in range(3):
            runner.run(*_postnet_io(12))
        calls = fake_trt.engines[0].calls
        assert calls.shapes == [("mel_frames", (1, 12, 80))]
        assert [name for name, _ in calls.addresses] == ["mel_frames", "mel_postnet"]
        assert calls.executes == [0x5EED] * 3  # the stream's handle

        runner.run(*_postnet_io(12, out=MEL + 0x20_0000))  # a new output buffer only
        assert calls.addresses[-1] == ("mel_postnet", MEL + 0x20_0000) and len(calls.addresses) == 3
        runner.run(*_postnet_io(40, out=MEL + 0x20_0000))  # a new length only
        assert calls.shapes[-1] == ("mel_frames", (1, 40, 80)) and len(calls.addresses) == 3


def test_shape_outside_the_profile_names_tensor_range_and_fix(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    with _runner(tmp_path) as runner:
        with pytest.raises(EngineError) as info:
            runner.run(*_postnet_io(700))
        assert str(info.value) == (
            "set_input_shape('mel_frames', (1, 700, 80)) failed for postnet. Note: the profile allows mel_frames "
            "1..512. Hint: raise profiles.mel_frames.max in voice.json and rebuild the engines.")
        assert info.value.tensor == "mel_frames"
        runner.run(*_postnet_io(12))  # still usable afterwards


def test_decoder_step_memory_longer_than_the_profile(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    profiles = profiles_for("decoder_step", VoiceConfig(name="full"))
    inputs = {name: DeviceTensor(MEL, opt, np.bool_ if name == "mask" else np.float32)
              for name, (_, opt, _) in profiles.items()}
    inputs["memory"] = DeviceTensor(MEL, (1, 700, 512))
    outputs = {name: DeviceTensor(MEL, (1, 1)) for name in GRAPH_OUTPUTS["decoder_step"]}
    with _runner(tmp_path, "decoder_step") as runner, pytest.raises(EngineError) as info:
        runner.run(inputs, outputs)
    assert str(info.value) == (
        "set_input_shape('memory', (1, 700, 512)) failed for decoder_step. Note: the profile allows text_length "
        "1..512. Hint: raise profiles.text_length.max in voice.json and rebuild the engines.")


def test_wrong_dtype_and_wrong_output_buffer(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    with _runner(tmp_path) as runner:
        with pytest.raises(EngineError, match="'mel_frames' of postnet is float16 but the plan wants float32"):
            runner.run({"mel_frames": DeviceTensor(MEL, (1, 12, 80), np.float16)}, _postnet_io(12)[1])
        with pytest.raises(EngineError, match="'mel_postnet' of postnet is float16 but the plan wants float32"):
            runner.run(_postnet_io(12)[0], {"mel_postnet": DeviceTensor(MEL, (1, 80, 12), np.float16)})
        with pytest.raises(EngineError, match="'mel_postnet' of postnet is float16"):  # checked again, not cached
            runner.run(_postnet_io(12)[0], {"mel_postnet": DeviceTensor(MEL, (1, 80, 12), np.float16)})
        with pytest.raises(EngineError, match=r"Output 'mel_postnet' of postnet has shape \(1, 80, 12\) .* "
                                              r"buffer is \(1, 80, 13\)") as info:
            runner.run(_postnet_io(12)[0], {"mel_postnet": DeviceTensor(MEL, (1, 80, 13))})
        assert info.value.tensor == "mel_postnet"


def test_refused_address_and_failed_execute(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    with _runner(tmp_path) as runner:
        with pytest.raises(EngineError, match=r"set_tensor_address\('mel_frames', 0x0\) failed"):
            runner.run(*_postnet_io(12, mel=0))
        fake_trt.engines[0].fail_execute = True
        with pytest.raises(EngineError, match="execute_async_v3 for postnet failed. Note: TensorRT said: "
                                              "enqueueV3: illegal memory access"):
            runner.run(*_postnet_io(12))


def test_plan_problems_at_open(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    missing = TrtRunner("postnet", tmp_path / "nope.plan", cast(Stream, FakeStream()))
    with pytest.raises(EngineError, match=r"does not exist\. Hint: build it with `python -m rtvoice.trt.build"):
        missing.open()
    corrupt = _runner(tmp_path, data=b"garbage")
    before = dict(vars(corrupt))
    with pytest.raises(EngineError, match="cannot load .*TensorRT said: Serialization assertion.*--force"):
        corrupt.open()
    assert vars(corrupt) == before  # a failed open leaves nothing behind

    fake_trt.rename = {"mel_postnet": "output"}  # a plan built from some other graph
    with pytest.raises(EngineError, match=r"missing \['mel_postnet'\], unexpected \['output'\]") as info:
        _runner(tmp_path).open()
    assert info.value.tensor == "mel_postnet"


def test_a_runner_dropped_while_open_warns(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    runner = _runner(tmp_path).open()
    with pytest.warns(ResourceWarning, match="garbage-collected while open"):
        del runner
        gc.collect()


def _step_io(cur: int, base: int = MEL) -> tuple[dict[str, DeviceTensor], dict[str, DeviceTensor]]:
    """Decoder-step IO of one ping-pong direction: state set ``cur`` in, the other out."""
    profiles = profiles_for("decoder_step", VoiceConfig(name="full"))
    inputs = {name: DeviceTensor(base + 0x1000 * i + 0x100_0000 * cur, opt, np.bool_ if name == "mask" else np.float32)
              for i, (name, (_, opt, _)) in enumerate(profiles.items())}
    outputs: dict[str, DeviceTensor] = {
        "mel_frame": DeviceTensor(base + 0x900_0000, (1, 80)), "gate": DeviceTensor(base + 0x910_0000, (1, 1))}
    for name in STATE_NAMES:
        src = inputs[name]
        outputs[f"next_{name}"] = DeviceTensor(src.ptr + 0x100_0000 * (1 - 2 * cur), src.shape)
    return inputs, outputs


def test_bound_runs_only_execute(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    runner = _runner(tmp_path, "decoder_step")
    before = dict(vars(runner))
    with runner:
        calls = fake_trt.engines[0].calls
        steps = [runner.bind(*_step_io(0)), runner.bind(*_step_io(1))]
        set_at_bind = (len(calls.shapes), len(calls.addresses))
        assert set_at_bind == (2 * 12, 2 * 21)  # every shape and address, once per binding
        for i in range(6):
            steps[i % 2].run()
        assert (len(calls.shapes), len(calls.addresses)) == set_at_bind  # a step sets nothing
        assert len(calls.executes) == 6
        for i, addresses in enumerate(calls.executed_with):
            inputs, outputs = _step_io(i % 2)
            assert addresses == {name: t.ptr for name, t in {**inputs, **outputs}.items()}
    assert vars(runner) == before
    with pytest.raises(InternalError, match="not open"):
        steps[0].run()  # a binding dies with its runner


def test_more_bindings_than_contexts_stay_correct(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    plan = tmp_path / "decoder_step.plan"
    plan.write_bytes(b"plan:decoder_step")
    with TrtRunner("decoder_step", plan, cast(Stream, FakeStream()), bound_contexts=2) as runner:
        io = [_step_io(0), _step_io(1), _step_io(0, base=MEL + 0x4000_0000)]
        bindings = [runner.bind(*pair) for pair in io]  # the third takes the first one's context
        assert len(fake_trt.engines[0].contexts) == 1 + 2  # the main context and two bound ones
        for i in (0, 2, 1, 0, 2):
            bindings[i].run()
        calls = fake_trt.engines[0].calls
        for i, addresses in zip((0, 2, 1, 0, 2), calls.executed_with, strict=True):
            inputs, outputs = io[i]
            assert addresses == {name: t.ptr for name, t in {**inputs, **outputs}.items()}, i


def test_bind_checks_like_run(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    with _runner(tmp_path, "decoder_step") as runner:
        inputs, outputs = _step_io(0)
        inputs["memory"] = DeviceTensor(MEL, (1, 700, 512))
        with pytest.raises(EngineError, match=r"set_input_shape\('memory', \(1, 700, 512\)\).*text_length\.max"):
            runner.bind(inputs, outputs)
        with pytest.raises(InternalError, match="exactly the graph's IO tensors"):
            runner.bind(*_postnet_io(12))
        binding = runner.bind(*_step_io(0))  # the refused binding left nothing half-set behind
        binding.run()
        fake_trt.engines[0].fail_execute = True
        with pytest.raises(EngineError, match="execute_async_v3 for decoder_step failed"):
            binding.run()


def test_an_output_shape_tensorrt_cannot_infer(tmp_path: Path, fake_trt: FakeTensorRT) -> None:
    profiles = profiles_for("encoder", VoiceConfig(name="full"))
    inputs = {name: DeviceTensor(MEL, opt, np.int64) for name, (_, opt, _) in profiles.items()}
    outputs = {name: DeviceTensor(MEL, (1, 128, 512)) for name in GRAPH_OUTPUTS["encoder"]}
    with _runner(tmp_path, "encoder") as runner, pytest.raises(EngineError, match="cannot infer the shape of "
                                                               "output 'memory' of encoder"):
        runner.run(inputs, outputs)
