"""tools/gpu/step_profile.py: the GPU check's profile of a decoder step (issue 26), on the CPU.

The reduction (trace events -> numbers per step) is checked on a constructed trace whose
union, gaps, counts and bytes are worked out by hand; the profiling loop runs over
KernelEngine on the fake device in each kernel mode, with torch.profiler recording the CPU
only (no CUDA here), so everything but CUPTI's device records is exercised.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "tools" / "gpu"))
import cuda_backend_check  # noqa: E402  # tools/gpu/cuda_backend_check.py
import step_profile  # noqa: E402  # tools/gpu/step_profile.py


def _x(cat: str, name: str, ts: float, dur: float, **args: Any) -> dict[str, Any]:
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "args": args}


TRACE = [
    _x("user_annotation", step_profile.WINDOW, 100, 200),           # the window: [100, 300]
    _x("gpu_user_annotation", step_profile.WINDOW, 100, 200),       # mirrors it on the device: not device work
    _x("user_annotation", step_profile.BATCH, 102, 88),             # call 1: [102, 190]
    _x("user_annotation", step_profile.BATCH, 200, 99),             # call 2: [200, 299]
    _x("kernel", "early", 50, 10),                                  # before the window: left out
    _x("kernel", "late", 295, 10),                                  # ends after it: left out
    _x("cuda_runtime", "cudaMalloc", 20, 10),                       # before the window: left out
    _x("kernel", "k_a", 110, 20, stream=7),                         # [110, 130]
    _x("kernel", "k_b", 120, 20, stream=8),                         # overlaps on another stream: [110, 140]
    _x("gpu_memcpy", "Memcpy HtoD", 150, 5, bytes=1024),            # gap 10 before it
    _x("kernel", "k_a", 160, 20, stream=7),                         # gap 5 before it
    _x("gpu_memset", "Memset (Device)", 180, 2, bytes=16),          # touches k_a: [160, 182]
    _x("kernel", "k_c", 222, 8, stream=7),                          # gap 40 before it
    _x("cuda_runtime", "cudaGraphLaunch", 105, 6),
    _x("cuda_driver", "cuLaunchKernel", 140, 4),
    _x("cuda_runtime", "cudaStreamSynchronize", 185, 50),
    _x("cpu_op", "aten::empty", 150, 1),
    {"ph": "f", "cat": "ac2g", "name": "flow", "ts": 160, "id": 1},  # not a complete event
]


def test_the_reduction_adds_up_a_constructed_trace() -> None:
    got = step_profile.reduce_trace(TRACE, steps=5)
    assert got["window"] == "annotation" and got["window_us"] == 200
    assert got["wall_us_per_step"] == 40.0
    assert got["device_busy_us_per_step"] == 13.0   # 30 + 5 + 22 + 8 = 65 µs over 5 steps
    assert got["device_idle_us_per_step"] == 27.0   # 200 - 65
    assert got["device_busy_fraction"] == 0.325
    assert got["device_span_us_per_step"] == 24.0   # 110 .. 230
    assert got["gaps"] == {"per_step": 0.6, "median_us": 10.0, "p90_us": 34.0, "max_us": 40.0}
    assert got["idle_before_us_per_step"] == {"k_c": 8.0, "Memcpy HtoD": 2.0, "k_a": 1.0}
    assert list(got["idle_before_us_per_step"]) == ["k_c", "Memcpy HtoD", "k_a"]  # largest first
    assert got["kernels_per_step"] == 0.8
    assert got["kernels"] == {"k_a": {"per_step": 0.4, "us_per_step": 8.0, "median_us": 20.0},
                              "k_b": {"per_step": 0.2, "us_per_step": 4.0, "median_us": 20.0},
                              "k_c": {"per_step": 0.2, "us_per_step": 1.6, "median_us": 8.0}}
    assert got["copies"] == {
        "Memcpy HtoD": {"per_step": 0.2, "us_per_step": 1.0, "median_us": 5.0, "bytes_per_step": 204.8},
        "Memset (Device)": {"per_step": 0.2, "us_per_step": 0.4, "median_us": 2.0, "bytes_per_step": 3.2}}
    host = got["host_api"]
    assert (host["calls_per_step"], host["us_per_step"], host["wait_us_per_step"]) == (0.6, 2.0, 10.0)
    assert host["launch_calls_per_step"] == 0.4
    assert set(host["by_name"]) == {"cudaGraphLaunch", "cuLaunchKernel", "cudaStreamSynchronize"}
    assert got["batches"] == {"count": 2, "wall_us_median": 93.5, "device_busy_us_median": 32.5,
                              "head_us_median": 15.0, "tail_us_median": 38.5}
    json.dumps(got, allow_nan=False)  # plain data


def test_without_the_window_every_event_counts() -> None:
    trace = [e for e in TRACE if e.get("name") != step_profile.WINDOW]
    got = step_profile.reduce_trace(trace, steps=1)
    assert got["window"] == "all events" and got["window_us"] == 305 - 20
    assert got["kernels_per_step"] == 6  # early and late count now
    assert got["kernels"]["early"]["per_step"] == 1
    assert got["host_api"]["calls_per_step"] == 4
    apart = [{**e, "ts": e["ts"] + 1000} if e.get("cat") in step_profile.DEVICE_CATEGORIES else e
             for e in TRACE]  # the device's clock 1 ms off the host's
    got = step_profile.reduce_trace(apart, steps=1)
    assert got["window"].startswith("all events") and got["kernels_per_step"] == 6
    empty = step_profile.reduce_trace([], steps=3)
    assert empty["device_busy_us_per_step"] == 0 and empty["gaps"]["median_us"] is None
    assert empty["batches"]["count"] == 0


class _Opened:
    """What open_voice gives the profile: ``.engine``, closed on exit."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.close()


def test_each_kernel_mode_is_profiled_through_decode_batch(tiny_voice_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    """GPU_PLAN's runs on KernelEngine over the fake device, the profiler on the CPU; into engine.json.

    The profiled window holds exactly the plan's ``decode_batch`` calls, and the summary lists
    every mode's headline beside the engine stage's results, which stay as they were.
    """
    pytest.importorskip("torch")
    import dataclasses

    from kernel_engines import kernel_engine

    opened: list[str] = []

    def open_voice(folder: Path, backend: str, device: str, mode: str) -> _Opened:
        assert (backend, device) == ("cuda", "cuda:0")
        engine, _ = kernel_engine(folder, monkeypatch, mode)
        opened.append(mode)
        return _Opened(engine)

    plan = dataclasses.replace(step_profile.GPU_PLAN, batches=2, warmup=1, symbols=20, cuda=False)
    (tmp_path / "engine.json").write_text(json.dumps({"stage": "engine", "default_cuda_phases": {"ttfa_ms": 1.0}}))
    report = cuda_backend_check.Report(tmp_path, "profile", into="engine")
    step_profile.profile_runs(report, tiny_voice_dir, open_voice, plan, time.monotonic() + 600)
    assert opened == ["phases", "fused", "persistent"]
    engine = json.loads((tmp_path / "engine.json").read_text())
    assert engine["default_cuda_phases"] == {"ttfa_ms": 1.0}  # the engine stage's results stay
    for mode in opened:
        run = engine["profile"][mode]
        assert run["opened_mode"] == mode and run["window"] == "annotation"
        assert run["steps"] == 2 * run["steps_per_call"] and run["batches"]["count"] == 2
        assert run["host_clock_us_per_step"] > 0 and run["wall_us_per_step"] > 0
        assert run["device_busy_us_per_step"] == 0  # no CUDA activity recorded on the CPU
    cuda_backend_check.stage_summary(cuda_backend_check.Report(tmp_path, "summary"), False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["profile_per_step"]) == set(opened)
    assert summary["profile_per_step"]["fused"]["wall_us"] == engine["profile"]["fused"]["wall_us_per_step"]
    assert "profile" not in summary["engine"] and summary["errors"]["profile"] is False
    (tmp_path / "late").mkdir()
    late = cuda_backend_check.Report(tmp_path / "late", "profile", into="engine")
    step_profile.profile_runs(late, tiny_voice_dir, open_voice, plan, time.monotonic() - 1)  # budget spent
    skipped = json.loads((tmp_path / "late" / "engine.json").read_text())["profile"]
    assert all(skipped[m].startswith("skipped") for m in ("phases", "fused", "persistent"))
