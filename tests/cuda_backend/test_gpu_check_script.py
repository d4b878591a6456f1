"""tools/gpu/cuda_backend_check: its CPU parts, and its kernel harness on an emulated device (issue 26).

The harness lays out the engine's ring and both state parities, and drives the three
kernel modes; here its launches go to the numpy launcher over host memory, so the ring
strides, parities and the persistent kernel's per-step offsets are checked against the
numpy reference fed back step by step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from emulated_runtime import EmulatedRuntime, emulate  # tests/cuda_backend/emulated_runtime.py
from numpy_launcher import NumpyLauncher
from step_cases import step_cases

from rtvoice.engine.step_weights import load_packed

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "tools" / "gpu"))
import cuda_backend_check  # noqa: E402  # tools/gpu/cuda_backend_check.py
import engine_timing  # noqa: E402  # tools/gpu/engine_timing.py
from kernel_harness import Harness  # noqa: E402  # tools/gpu/kernel_harness.py


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedRuntime]:
    yield from emulate(monkeypatch)


@pytest.mark.parametrize("mode", ["phases", "fused", "persistent", "persistent_coop"])
@pytest.mark.parametrize("voice", ["tiny_voice_dir", "tiny_r2_voice_dir"])
def test_harness_runs_steps_fed_back_like_the_reference(mode: str, voice: str, emulated: EmulatedRuntime,
                                                        request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(voice)
    packed = load_packed(folder / "decoder_step.onnx")
    cases = step_cases(folder, [7, 3, 12], steps=6)
    masks = np.stack([c.inputs["prenet_masks"] for c in cases])
    want = cuda_backend_check._reference_run(packed, cases[0].inputs, masks)
    launcher = NumpyLauncher(packed.dims)
    h = Harness(packed, launcher, 4, 3, cases[0].inputs["memory"].shape[1], len(cases), mode)
    try:
        h.load(cases[0].inputs, masks)
        h.enqueue(len(cases))
        got = h.read(len(cases))
    finally:
        h.close()
    assert emulated.blocks == {}  # the harness frees everything
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    expected = {"phases": 6 * 7, "fused": 6, "persistent": 1, "persistent_coop": 1}[mode]
    assert sum(launcher.launches.values()) == expected
    assert sum(launcher.cooperative.values()) == (mode == "persistent_coop")


def test_check_script_dry_run_writes_each_stage(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu" / "cuda_backend_check.py"), "env",
                             "--dry-run", "--out", str(out)], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "RTVOICE_KERNEL_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stdout + result.stderr
    env = json.loads((out / "env.json").read_text())
    assert env["compile_sm80"]["cubin_bytes"] > 0 and env["compile_sm90"]["cached"]
    assert "finished" in env


class _TimedEvent:
    """Event(timing=True) stand-in: host clock at record()."""

    def __init__(self, *, timing: bool = False) -> None:
        self.t = 0.0

    def record(self, stream: object) -> None:
        import time

        self.t = time.perf_counter()

    def synchronize(self) -> None: ...

    def elapsed_ms(self, end: _TimedEvent) -> float:
        return (end.t - self.t) * 1000.0

    def close(self) -> None: ...


@pytest.mark.parametrize("mode", ["phases", "fused", "persistent"])
def test_harness_timing_paths_run(mode: str, emulated: EmulatedRuntime, monkeypatch: pytest.MonkeyPatch,
                                  tiny_voice_dir: Path) -> None:
    """The bench stage's graph capture, timing and per-phase profile, with a recorded-callable graph."""
    import kernel_harness

    sys.path.insert(0, str(ROOT / "tests" / "engine"))
    from fake_device import FakeGraph

    monkeypatch.setattr(kernel_harness, "CudaGraph", FakeGraph)
    monkeypatch.setattr(kernel_harness, "Event", _TimedEvent)
    packed = load_packed(tiny_voice_dir / "decoder_step.onnx")
    case = step_cases(tiny_voice_dir, [6, 4], steps=1)[0]
    launcher = NumpyLauncher(packed.dims)
    h = Harness(packed, launcher, 4, 2, case.inputs["memory"].shape[1], 4, mode)
    try:
        h.load(case.inputs, np.ones((4, 2, 2, packed.dims.prenet), np.float32))
        h.capture(4)
        assert h.time_us_per_step(4, 2, graph=True) > 0
        assert h.time_us_per_step(4, 1, graph=False) > 0
        if mode == "phases":
            assert all(h.phase_us(name, repeats=2) > 0 for name in ("k_prenet", "k_energy", "k_project"))
    finally:
        h.close()
    assert emulated.blocks == {}


def test_torch_step_timing_runs_on_the_cpu(tiny_voice_dir: Path) -> None:
    """The bench's PyTorch side (autocast, the exported model's step) runs; on the GPU it is fp16."""
    pytest.importorskip("torch")
    out = cuda_backend_check._torch_step_us(tiny_voice_dir, T=9, steps=3, device="cpu")
    assert set(out) == {"run0", "run1", "run2"} and all(v > 0 for v in out.values())


def test_parity_and_bench_stages_run_their_device_paths(tiny_voice_dir: Path, emulated: EmulatedRuntime,
                                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The stages as the GPU runs them, on the tiny voice, with the kernels emulated in numpy.

    Catches errors in the code between the kernels (shapes, keys, report fields) before a GPU
    run is spent on them; the numbers themselves mean nothing here.
    """
    import kernel_harness

    sys.path.insert(0, str(ROOT / "tests" / "engine"))
    from fake_device import FakeGraph

    dims = load_packed(tiny_voice_dir / "decoder_step.onnx").dims
    monkeypatch.setattr(cuda_backend_check, "_device", lambda: (NumpyLauncher(dims), 4, 90, "emulated"))
    monkeypatch.setattr(cuda_backend_check, "VOICES", {"tiny": tiny_voice_dir})
    monkeypatch.setattr(cuda_backend_check, "BENCH_VOICE", "tiny")
    monkeypatch.setattr(cuda_backend_check, "BENCH_BATCHES", (1, 2))
    monkeypatch.setattr(cuda_backend_check, "BENCH", {"text_length": 24, "symbols": 9, "steps": 3})
    monkeypatch.setattr(cuda_backend_check, "_torch_step_us", lambda folder, T, steps: {"run0": 1.0})
    monkeypatch.setattr(kernel_harness, "CudaGraph", FakeGraph)
    monkeypatch.setattr(kernel_harness, "Event", _TimedEvent)
    for stage in ("parity", "bench", "summary"):
        assert cuda_backend_check.main([stage, "--out", str(tmp_path)]) == 0, stage
    parity = json.loads((tmp_path / "parity.json").read_text())
    assert not [k for k in parity if k.endswith("_error")], parity
    for mode in ("phases", "fused", "persistent", "persistent_coop"):
        assert max(parity[f"tiny_{mode}_12_steps_vs_reference"].values()) < 1e-5
        assert parity[f"tiny_{mode}_one_step"]["step0_vs_onnx"] < 2e-2  # fp16 weights vs the fp32 graph
    assert parity["tiny_persistent_gate_stop_steps"] == 1
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert set(bench["us_per_step"]) == {"phases", "fused", "persistent", "persistent_coop"}
    assert not [k for v in bench["us_per_step"].values() for k in v if k.endswith("_error")], bench
    assert set(bench["phase_us_b1"]) == set(cuda_backend_check.PHASES)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["errors"] == {"parity": False, "bench": False}


def test_engine_stage_times_every_kernel_mode(tiny_voice_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """The engine stage's runs as the GPU does them, with KernelEngine and the ORT-CUDA engine on the fake device.

    Every kernel mode is opened through the voice's batching.cuda_step, speaks (forced, then
    once stopping at the gate), and has its decoder timed through decode_batch; the SNRs
    between runs come out (the modes agree). The random tiny voice's gate never fires, so
    here every unforced run ends at the step limit (tests/cuda_backend/test_gate_stop.py
    checks the device's stop itself).
    """
    from kernel_engines import FakeRunner, install_fakes

    from rtvoice.backends import Choice
    from rtvoice.config import VoiceConfig
    from rtvoice.engine.cuda_engine import KernelEngine
    from rtvoice.engine.gpu_engine import GpuEngine
    from rtvoice.ort.cpu_engine import CpuEngine
    from rtvoice.voice import Voice

    install_fakes(monkeypatch)
    monkeypatch.delenv("RTVOICE_CUDA_STEP", raising=False)
    dims = load_packed(tiny_voice_dir / "decoder_step.onnx").dims
    opened: list[str] = []

    def open_voice(folder: Path, backend: str, device: str, mode: str | None) -> Voice:
        config = VoiceConfig.load(folder)
        if mode is not None:
            import dataclasses

            config = dataclasses.replace(config, batching=dataclasses.replace(config.batching, cuda_step=mode))
        engine: Any
        if backend == "cuda":
            engine = KernelEngine(folder, config, 0, runner_factory=lambda graph, path, stream: FakeRunner(path),
                                  launcher=NumpyLauncher(dims), sm_count=4)
            assert engine.kernels is not None
            opened.append(engine.kernels.mode)
        elif device == "cpu":
            engine = CpuEngine(folder, config)
        else:
            step = folder / config.graphs["decoder_step"]
            engine = GpuEngine(folder, config, 0, "fake", lambda graph, path, stream: FakeRunner(path),
                               lambda rows, length: FakeRunner(step, {"batch": rows, "text_length": length},
                                                               enqueue_only=True))
        return Voice(folder, config, engine, Choice(backend, device, "test"))

    voices = {"default": tiny_voice_dir, "tiny": tiny_voice_dir}
    monkeypatch.setattr(engine_timing, "ENGINE_BATCHES", (1, 2))
    runs = [run for run in engine_timing.ENGINE_RUNS if run[0] == "default"]  # "tiny" repeats them
    assert len(runs) == 5
    monkeypatch.setattr(engine_timing, "ENGINE_RUNS", tuple(runs))
    report = cuda_backend_check.Report(tmp_path, "engine")
    import time

    engine_timing.engine_runs(report, voices, open_voice, _TimedEvent, time.monotonic() + 600)
    data = json.loads((tmp_path / "engine.json").read_text())
    assert opened == ["phases", "fused", "persistent"]
    assert not [k for k in data if k.endswith("_error")], data
    for mode in ("phases", "fused", "persistent"):
        run = data[f"default_cuda_{mode}"]
        assert run["ttfa_ms"] > 0 and run["total_ms"] >= run["ttfa_ms"] and run["repeatable"]
        assert set(run["decoder_us_per_step"]) == {"b1", "b1_host", "b2", "b2_host"}
    assert "decoder_us_per_step" not in data["default_onnxruntime@cpu"]
    config = VoiceConfig.load(tiny_voice_dir)
    limit = config.decoder.max_decoder_steps
    unforced = {name: data[f"default_{name}"]["unforced"] for name in
                ("cuda_phases", "cuda_fused", "cuda_persistent", "onnxruntime@cuda:0", "onnxruntime@cpu")}
    for name, u in unforced.items():
        assert 0 < u["ttfa_ms"] <= u["total_ms"], (name, u)
        frames = u["audio_samples"] // config.audio.hop_length
        assert u["frames_decoded"] == frames == config.decoder.frame_room(limit) > 120, (name, u)  # to the limit
        assert u["truncated"] and u["steps_decoded"] == u["frames_decoded"] // config.decoder.frames_per_step
    assert len({u["audio_samples"] for u in unforced.values()}) == 1
    free = data["default_unforced_snr_db"]
    assert free["cuda_persistent_vs_cuda_phases"] == free["cuda_fused_vs_cuda_phases"] == float("inf")
    assert data["default_unforced_persistent_equals_phases"] is True
    cuda_backend_check.stage_summary(cuda_backend_check.Report(tmp_path, "summary"), False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["engine_modes"]["default_cuda_persistent"]["unforced_steps_decoded"] == limit
    assert summary["unforced_persistent_equals_phases"] == {"default_unforced_persistent_equals_phases": True}
    snr = data["default_snr_db"]
    assert snr["cuda_persistent_vs_cuda_phases"] == snr["cuda_fused_vs_cuda_phases"] == float("inf")  # same numpy math
    assert snr["cuda_phases_vs_onnxruntime@cuda:0"] > 50  # fp16 decoder weights against the fp32 graph
    (tmp_path / "late").mkdir()
    late = cuda_backend_check.Report(tmp_path / "late", "engine")
    engine_timing.engine_runs(late, voices, open_voice, _TimedEvent, time.monotonic() - 1)  # budget spent
    skipped = json.loads((tmp_path / "late" / "engine.json").read_text())
    assert skipped["default_cuda_phases"].startswith("skipped")
    assert skipped["default_onnxruntime@cpu"].startswith("skipped")


def test_sweep_stage_runs_its_device_paths(tiny_voice_dir: Path, emulated: EmulatedRuntime,
                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The sweep stage as the GPU runs it (numpy kernels on the emulated runtime), then its --dry-run.

    Each shape is compiled by NVRTC for real (ptxas's registers reach the report); only the
    loaded module is replaced. A shape that fails must leave the others' results.
    """
    import kernel_harness
    import kernel_variants

    sys.path.insert(0, str(ROOT / "tests" / "engine"))
    from fake_device import FakeGraph

    dims = load_packed(tiny_voice_dir / "decoder_step.onnx").dims
    names = {v.name: v for v in kernel_variants.SWEEP}
    sweep = (kernel_variants.SWEEP[0], names["tile8"], names["tile8-ctx32-reg64"])
    loaded: list[str] = []

    def launcher(cubin: bytes, shape: Any) -> NumpyLauncher:
        assert cubin[:4] == b"\x7fELF"
        loaded.append(shape.name)
        if shape.tile == 8 and shape.fused_max_registers is None:
            raise RuntimeError("this shape fails to load")
        return NumpyLauncher(dims)

    monkeypatch.setattr(cuda_backend_check, "_gpu", lambda: (4, 90))
    monkeypatch.setattr(cuda_backend_check, "_variant_launcher", launcher)
    monkeypatch.setattr(cuda_backend_check, "VOICES", {"tiny": tiny_voice_dir})
    monkeypatch.setattr(cuda_backend_check, "BENCH_VOICE", "tiny")
    monkeypatch.setattr(cuda_backend_check, "BENCH", {"text_length": 24, "symbols": 9, "steps": 3})
    monkeypatch.setattr(kernel_variants, "SWEEP", sweep)
    monkeypatch.setattr(kernel_harness, "CudaGraph", FakeGraph)
    monkeypatch.setattr(kernel_harness, "Event", _TimedEvent)
    assert cuda_backend_check.main(["sweep", "--out", str(tmp_path)]) == 0
    assert cuda_backend_check.main(["summary", "--out", str(tmp_path)]) == 0
    assert loaded == [v.shape.name for v in sweep]
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert set(data["ptxas_sm90"]) == {"default", "tile8", "tile8-ctx32-reg64"}
    assert data["ptxas_sm90"]["tile8-ctx32-reg64"]["k_fused"]["registers"] <= 64
    base, capped = data["us_per_step"]["default"], data["us_per_step"]["tile8-ctx32-reg64"]
    assert "this shape fails to load" in data["us_per_step"]["tile8"]["error"]
    assert {f"{m}_b{b}" for m in ("phases", "fused", "persistent") for b in (1, 16, 64)} <= set(base)
    assert {f"{k}_b{b}" for k in ("k_energy", "k_context") for b in (1, 16, 64)} <= set(base)
    assert {"fused_b64", "persistent_b64", "fused_parity", "persistent_parity"} <= set(capped)
    assert all(row[f"{m}_parity"] < 1e-5 for row in (base, capped) for m in ("fused", "persistent"))
    assert base["fused_blocks_per_sm"] == 1 and base["phases_b1"] > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sweep"]["tile8-ctx32-reg64"]["k_fused_registers"] <= 64
    assert summary["sweep"]["tile8-ctx32-reg64"]["persistent_b16"] == capped["persistent_b16"]
    (tmp_path / "dry").mkdir()
    assert cuda_backend_check.main(["sweep", "--dry-run", "--out", str(tmp_path / "dry")]) == 0
    dry = json.loads((tmp_path / "dry" / "sweep.json").read_text())
    assert set(dry["ptxas_sm90"]) == {"default", "tile8", "tile8-ctx32-reg64"} and "us_per_step" not in dry
    assert len(loaded) == 3  # the dry run loads nothing
