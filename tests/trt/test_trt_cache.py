"""Cache keys and rebuild rules of the TensorRT plans, on the CPU: TensorRT and the build are faked."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import pytest
from trt_fakes import FakeTensorRT  # tests/trt/trt_fakes.py

from rtvoice.config import GRAPH_NAMES, EngineProfile, VoiceConfig
from rtvoice.errors import EngineError
from rtvoice.trt import build, engine
from rtvoice.trt.cache import PlanKey, plan_key, read_key, sidecar_path, write_key
from rtvoice.trt.profiles import ShapeRange

GPU = "Fake GPU (sm_90)"


def _key(**changes: object) -> PlanKey:
    base = PlanKey("ab" * 32, "tensorrt 10.13.0", GPU, "fp32", {"x": [[1, 1], [1, 4], [2, 8]]})
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_keys_differ_in_exactly_the_changed_fields() -> None:
    key = _key()
    assert key == _key() and key.differences(_key()) == []
    assert key.differences(None) == ["onnx_sha256", "tensorrt", "gpu", "precision", "profiles"]
    assert _key(tensorrt="tensorrt 10.14.1").differences(key) == ["tensorrt"]
    assert _key(gpu="NVIDIA L4 (sm_89)", precision="fp16").differences(key) == ["gpu", "precision"]
    assert _key(profiles={"x": [[1, 1], [1, 4], [2, 9]]}).differences(key) == ["profiles"]
    assert _key(precision="fp16").differences(key, ignore=("precision",)) == []


def test_plan_key_hashes_the_onnx_file(tmp_path: Path) -> None:
    onnx = tmp_path / "g.onnx"
    onnx.write_bytes(b"graph one")
    profiles: Mapping[str, ShapeRange] = {"b": ((1,), (1,), (2,)), "a": ((1, 2), (1, 2), (1, 2))}
    first = plan_key(onnx, "tensorrt 10.13.0", GPU, "fp32", profiles)
    assert list(first.profiles) == ["a", "b"]  # sorted: the key does not depend on dict order
    assert first == plan_key(onnx, "tensorrt 10.13.0", GPU, "fp32", dict(reversed(list(profiles.items()))))
    onnx.write_bytes(b"graph two")
    assert plan_key(onnx, "tensorrt 10.13.0", GPU, "fp32", profiles).differences(first) == ["onnx_sha256"]


def test_sidecar_round_trip_and_bad_sidecars(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plan = tmp_path / "encoder.plan"
    assert read_key(plan) is None  # no sidecar: no key
    path = write_key(plan, _key())
    assert path == sidecar_path(plan) == tmp_path / "encoder.plan.json"
    assert read_key(plan) == _key()
    assert json.loads(path.read_text())["format"] == 1
    for bad in ("{not json", json.dumps({"format": 99}), json.dumps([1, 2]),
                json.dumps({**_key().to_json(), "extra": 1}), json.dumps({**_key().to_json(), "gpu": 3})):
        path.write_text(bad)
        with caplog.at_level(logging.WARNING, "rtvoice.trt"):
            assert read_key(plan) is None
    assert "Ignoring" in caplog.text


class FakeBuild:
    """Stands in for build_engine: records which graphs were built."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.fail = False

    def __call__(self, onnx_path: Path, profiles: Mapping[str, ShapeRange], precision: str,
                 timing_cache_path: Path | None, *, allow_rtx: bool = False) -> bytes:
        if self.fail:
            raise EngineError("build failed")
        self.built.append(onnx_path.stem)
        assert timing_cache_path is not None and timing_cache_path.name == "timing.cache"
        return f"plan:{onnx_path.stem}:{precision}".encode()

    def take(self) -> list[str]:
        built, self.built = self.built, []
        return built


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch, fake_trt: FakeTensorRT) -> FakeBuild:
    fake = FakeBuild()
    monkeypatch.setattr(build, "build_engine", fake)
    monkeypatch.setattr(build, "gpu_identity", lambda index=0: GPU)
    monkeypatch.setattr("rtvoice.cuda.set_device", lambda index: None)
    return fake


def test_rebuild_rules(voice_copy: Path, fake_trt: FakeTensorRT, fake_build: FakeBuild) -> None:
    folder = voice_copy
    paths = build.build_voice_engines(folder)
    assert paths == [folder / f"{g}.plan" for g in GRAPH_NAMES]
    assert fake_build.take() == list(GRAPH_NAMES)
    keys = {g: read_key(folder / f"{g}.plan") for g in GRAPH_NAMES}
    assert {g: k.precision for g, k in keys.items() if k} == dict(build.DEFAULT_PRECISION)
    assert all(k is not None and k.tensorrt == "tensorrt 10.99.0" and k.gpu == GPU for k in keys.values())

    assert build.build_voice_engines(folder) == paths and fake_build.take() == []  # all current

    with (folder / "postnet.onnx").open("ab") as f:  # the ONNX graph changed
        f.write(b"\0")
    build.build_voice_engines(folder)
    assert fake_build.take() == ["postnet"]

    config = VoiceConfig.load(folder)  # longer text: the two graphs that see text_length
    profiles = dataclasses.replace(config.profiles, text_length=EngineProfile(1, 128, 1024))
    dataclasses.replace(config, profiles=profiles).save(folder)
    build.build_voice_engines(folder)
    assert fake_build.take() == ["encoder", "decoder_step"]

    build.build_voice_engines(folder, precision={"decoder_step": "fp16"})
    assert fake_build.take() == ["decoder_step"]
    assert (folder / "decoder_step.plan").read_bytes() == b"plan:decoder_step:fp16"

    fake_trt.version = "10.99.1"  # another TensorRT: everything
    build.build_voice_engines(folder, precision={"decoder_step": "fp16"})
    assert fake_build.take() == list(GRAPH_NAMES)

    sidecar_path(folder / "waveglow.plan").unlink()  # no record: rebuild that one
    (folder / "encoder.plan").unlink()  # no plan: rebuild that one
    build.build_voice_engines(folder, precision={"decoder_step": "fp16"})
    assert fake_build.take() == ["encoder", "waveglow"]

    build.build_voice_engines(folder, precision={"decoder_step": "fp16"}, force=True)
    assert fake_build.take() == list(GRAPH_NAMES)


def test_gpu_change_rebuilds_and_failed_build_keeps_old_plan(
        voice_copy: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch) -> None:
    build.build_voice_engines(voice_copy)
    fake_build.take()
    monkeypatch.setattr(build, "gpu_identity", lambda index=0: "NVIDIA L4 (sm_89)")
    build.build_voice_engines(voice_copy)
    assert fake_build.take() == list(GRAPH_NAMES)

    monkeypatch.setattr(build, "gpu_identity", lambda index=0: GPU)
    fake_build.fail = True
    with pytest.raises(EngineError, match="build failed"):
        build.build_voice_engines(voice_copy)
    plan = voice_copy / "encoder.plan"  # the old plan and its matching record are untouched
    key = read_key(plan)
    assert plan.read_bytes() == b"plan:encoder:fp32" and key is not None and key.gpu == "NVIDIA L4 (sm_89)"


def test_bad_precision_and_no_gpu(voice_copy: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EngineError, match="Unknown precision 'int8' for postnet"):
        build.build_voice_engines(voice_copy, precision={"postnet": "int8"})  # type: ignore[dict-item]
    with pytest.raises(EngineError, match="Unknown graph 'vocoder'"):
        build.build_voice_engines(voice_copy, precision={"vocoder": "fp16"})
    monkeypatch.setattr(build, "gpu_identity", lambda index=0: "none")
    with pytest.raises(EngineError, match="no CUDA GPU is visible"):
        build.build_voice_engines(voice_copy)
    assert fake_build.take() == []


def test_command_line(voice_copy: Path, fake_build: FakeBuild, capsys: pytest.CaptureFixture[str]) -> None:
    assert build.main([str(voice_copy), "--precision", "decoder_step=fp16"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"TensorRT engine: {voice_copy / g}.plan" for g in GRAPH_NAMES]
    assert (voice_copy / "decoder_step.plan").read_bytes() == b"plan:decoder_step:fp16"
    assert build.main([str(voice_copy), "--precision", "fp16"]) == 2
    assert "GRAPH=PRECISION" in capsys.readouterr().err
    assert build.main([str(voice_copy / "nope")]) == 2
    assert "error: Voice folder" in capsys.readouterr().err


def test_effective_precision_follows_the_builder_flags(fake_trt: FakeTensorRT) -> None:
    trt = fake_trt.load()
    assert [build.effective_precision(trt, p) for p in ("fp32", "tf32", "fp16")] == ["fp32", "tf32", "fp16"]
    del fake_trt.module.BuilderFlag.FP16  # TensorRT 11 and TensorRT-RTX
    assert build.effective_precision(trt, "fp16") == "tf32"
    del fake_trt.module.BuilderFlag.TF32
    assert build.effective_precision(trt, "fp32") == "tf32"


def test_runtime_refuses_missing_and_stale_plans(voice_copy: Path, fake_build: FakeBuild,
                                                 fake_trt: FakeTensorRT, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "gpu_identity", lambda index=0: GPU)
    config = VoiceConfig.load(voice_copy)
    onnx = voice_copy / "postnet.onnx"
    with pytest.raises(EngineError, match=r"postnet.plan is missing\. Hint: rebuild the engines with "
                                          r"`python -m rtvoice.trt.build .*voice`"):
        engine.check_plan("postnet", onnx, config, 0)

    build.build_voice_engines(voice_copy)
    assert engine.check_plan("postnet", onnx, config, 0) == voice_copy / "postnet.plan"

    monkeypatch.setattr(engine, "gpu_identity", lambda index=0: "NVIDIA L4 (sm_89)")
    with pytest.raises(EngineError, match=r"stale\. Note: gpu: built for Fake GPU \(sm_90\), now NVIDIA L4"):
        engine.check_plan("postnet", onnx, config, 0)
    monkeypatch.setattr(engine, "gpu_identity", lambda index=0: GPU)

    fake_trt.version = "10.99.1"
    with pytest.raises(EngineError, match="tensorrt: built for tensorrt 10.99.0, now tensorrt 10.99.1"):
        engine.check_plan("postnet", onnx, config, 0)
    fake_trt.version = "10.99.0"

    longer = dataclasses.replace(config.profiles, mel_frames=EngineProfile(1, 96, 2048))
    with pytest.raises(EngineError, match="stale. Note: profiles"):
        engine.check_plan("postnet", onnx, dataclasses.replace(config, profiles=longer), 0)

    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(EngineError, match="stale. Note: onnx_sha256"):
        engine.check_plan("postnet", onnx, config, 0)

    sidecar_path(voice_copy / "waveglow.plan").write_text("{}")
    with pytest.raises(EngineError, match="has no valid build record"):
        engine.check_plan("waveglow", voice_copy / "waveglow.onnx", config, 0)
