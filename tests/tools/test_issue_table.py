"""tools/gpu/issue_table.py: issue 26's target table in one GPU call, checked on the CPU.

The GPU call is rare, so what decides its figures is checked here: which concurrency levels
the streams search tries and what it reports, the pass rule (p99 time to first audio, the
slowest streams in real time), and the whole table on the tiny voice with ONNX Runtime CPU
standing in for the cuda backend: every measurement in its own process, the PyTorch ratio,
the fp16 twin, and skipping what the budget cannot hold.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "tools" / "gpu"))
import issue_table  # noqa: E402  # tools/gpu/issue_table.py
from cuda_backend_check import Report  # noqa: E402  # tools/gpu/cuda_backend_check.py


def _summary(ttfa_p99_s: float, rtf_p1: float) -> dict[str, Any]:
    """The fields of rtvoice.bench.BenchReport.summary() the search reads."""
    stat = {"median": 0.5, "p99": 0.5, "min": 0.5, "max": 0.5}
    return {"time_to_first_audio_s": {**stat, "median": ttfa_p99_s / 2, "p99": ttfa_p99_s},
            "rtf": {"median": rtf_p1 + 0.1, "p1": rtf_p1, "min": rtf_p1, "max": rtf_p1 + 0.2},
            "latency_s": stat, "decoder_us_per_step": stat, "waveglow_us_per_audio_s": stat,
            "vocoder_batch_mean": stat}


def _search(capacity: int, first: int = 8, most: int = 256) -> tuple[dict[str, Any], list[int], list[dict[str, Any]]]:
    """find_streams against a GPU that keeps up with at most ``capacity`` streams."""
    tried: list[int] = []
    saved: list[dict[str, Any]] = []

    def measure(n: int) -> dict[str, Any]:
        tried.append(n)
        return _summary(0.1 if n <= capacity else 0.4, 1.5 if n <= capacity else 0.8)

    found = issue_table.find_streams(measure, first, most, time.monotonic() + 60,
                                     lambda f: saved.append(json.loads(json.dumps(f))))
    return found, tried, saved


@pytest.mark.parametrize("capacity", [1, 5, 8, 50, 100, 200])
def test_streams_search_brackets_the_capacity(capacity: int) -> None:
    found, tried, saved = _search(capacity)
    best, failed = found["streams"], found["first_failed"]
    assert best <= capacity < failed and failed - best <= max(1, best // 8), (tried, found)
    assert found["complete"] and not found["capped"]
    assert len(tried) == len(set(tried)) == len(saved)  # every level once, saved after each
    assert [int(n) for n in found["levels"]] == tried
    assert all(found["levels"][str(n)]["passed"] == (n <= capacity) for n in tried)
    first_fail = next(i for i, n in enumerate(tried) if n > capacity)
    assert tried[:first_fail] == [8 * 2**i for i in range(first_fail)]  # doubling from 8 until a level fails
    assert found["at_streams"]["streams_x_rtf_median"] == round(best * 1.6, 1)  # rtf median 1.6 where passing


def test_streams_search_when_no_level_keeps_up() -> None:
    found, tried, _ = _search(0)
    assert tried == [8, 4, 2, 1] and found["streams"] == 0 and "at_streams" not in found
    assert found["complete"] and not found["capped"]


def test_streams_search_says_when_it_stopped_at_its_most() -> None:
    found, tried, _ = _search(10_000)
    assert tried == [8, 16, 32, 64, 128, 256] and found["streams"] == 256
    assert found["complete"] and found["capped"]


def test_streams_search_starts_no_level_past_its_deadline() -> None:
    tried: list[int] = []

    def measure(n: int) -> dict[str, Any]:
        tried.append(n)
        return _summary(0.1, 2.0)

    found = issue_table.find_streams(measure, 8, 256, time.monotonic() - 1, lambda f: None)
    assert tried == [] and found["streams"] == 0 and not found["complete"]


@pytest.mark.parametrize(("ttfa_p99_s", "rtf_p1", "passes"), [
    (0.150, 1.0, True), (0.151, 5.0, False), (0.010, 0.99, False)])
def test_a_level_passes_only_within_150_ms_and_in_real_time(ttfa_p99_s: float, rtf_p1: float, passes: bool) -> None:
    assert issue_table.keeps_up(_summary(ttfa_p99_s, rtf_p1)) is passes


@pytest.mark.timeout(240)
def test_the_table_runs_every_measurement_on_the_cpu(tiny_voice_dir: Path, tmp_path: Path) -> None:
    """The dry plan end to end: each measurement in its own process, the rows with the PyTorch ratio."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxconverter_common")
    plan = dataclasses.replace(issue_table.DRY_PLAN, voice=str(tiny_voice_dir), fp16_voice=str(tmp_path / "fp16"))
    issue_table.run_table(Report(tmp_path, "table"), plan, 200, tmp_path / "work")
    table = json.loads((tmp_path / "table.json").read_text())
    for m in issue_table.MEASUREMENTS:
        assert table[m.name]["rc"] == 0, (m.name, table[m.name])
    assert table["build"]["built"] is False and table["fp16_voice"]["built"] is True
    assert "cuda_fp16_retries" not in table  # it ran with rtvoice's own options: nothing to retry
    fp16 = json.loads((tmp_path / "fp16" / "voice.json").read_text())
    assert fp16["source"]["fp16_graphs"] == ["postnet", "waveglow"]
    rows = table["rows"]
    assert set(rows) == {"cuda", "onnxruntime", "cuda_fp16", "torch_fp16"}
    cuda = table["cuda"]
    assert cuda["mel_frames"] == plan.steps and cuda["runs"] == plan.runs
    assert rows["cuda"]["whole_utterance_streamed_ms"] == round(cuda["latency_s"]["median"] * 1e3, 1)
    assert rows["cuda"]["torch_fp16_latency_over_this"] == round(
        table["torch_fp16"]["latency_s"] / cuda["latency_s"]["median"], 2)
    assert rows["torch_fp16"]["cudnn_benchmark"] is True
    for name in ("cuda", "onnxruntime", "cuda_fp16"):
        parts = rows[name]["ttfa_b1_parts_ms"]  # where each column's first audio went, in ms
        assert parts["encoder"] == round(table[name]["first_audio_parts"]["encoder_s"] * 1e3, 2)
        assert parts["encoder_calls"] == 1 and parts["vocoder_calls"] >= 1
        assert 0 < parts["outside"] <= rows[name]["ttfa_b1_ms"] * 1.01
        streams = table[f"{name}_streams"]
        assert set(streams["levels"]) <= {"1", "2"}
        assert rows[name]["streams_ttfa_p99_within_150ms"] == streams["streams"]


def test_the_table_skips_what_its_budget_cannot_hold(tmp_path: Path) -> None:
    plan = dataclasses.replace(issue_table.DRY_PLAN, voice=str(tmp_path / "none"), fp16_voice=str(tmp_path / "f"))
    issue_table.run_table(Report(tmp_path, "table"), plan, 45, tmp_path / "work")
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["build"].startswith("skipped: 45 s of the budget left, 60 s needed")
    assert table["cuda"] == "skipped: build did not finish"
    assert table["cuda_fp16"] == "skipped: build, fp16_voice did not finish"
    assert table["rows"] == {}


_FAILS_UNLESS_DEFAULT = """
import json, os, sys
options = json.loads(os.environ.get("RTVOICE_ORT_CUDA_OPTIONS", "{}"))
if options.get("cudnn_conv_algo_search") != "DEFAULT":
    print("Traceback (most recent call last):", file=sys.stderr)
    print("RuntimeError: CUDNN_FE failure 8: HEURISTIC_QUERY_FAILED", options, file=sys.stderr)
    sys.exit(1)
json.dump({**json.loads(sys.argv[2]), "seen_options": options}, open(sys.argv[1], "w"))
"""
"""A real process that fails the way run 3's cuda_fp16 row did unless the options it is given say DEFAULT."""


def test_a_cudnn_failure_is_retried_with_each_option_until_one_runs(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """retry_options over run_measurement: the options reach the process through RTVOICE_ORT_CUDA_OPTIONS."""
    monkeypatch.setenv("RTVOICE_ORT_CUDA_OPTIONS", '{"cudnn_conv1d_pad_to_nc1d": "1"}')  # a caller's own, kept
    path = tmp_path / "cuda_fp16.json"
    summary = {**_summary(0.1, 1.5), "audio_s": 6.99}
    cmd = [sys.executable, "-c", _FAILS_UNLESS_DEFAULT, str(path), json.dumps(summary)]

    def attempt(options: dict[str, str]) -> dict[str, Any]:
        return issue_table.run_measurement(cmd, 20, path, options)

    first = attempt({})
    assert first["rc"] == 1 and issue_table.cudnn_failed(first)
    kept, log, options = issue_table.retry_options(first, attempt, time.monotonic() + 60, 1)
    assert options == {"cudnn_conv_algo_search": "DEFAULT"}
    assert [entry["options"] for entry in log] == [{}, *issue_table.FP16_RETRY_OPTIONS]
    assert [entry["rc"] for entry in log] == [1, 1, 1, 0]
    assert all("HEURISTIC_QUERY_FAILED" in entry["error_line"] for entry in log[:-1])
    assert log[-1]["error_line"] is None
    assert log[-1]["figures"]["whole_utterance_streamed_ms"] == 500.0  # the run's own latency median, 0.5 s
    assert kept["rc"] == 0 and kept["seen_options"] == {"cudnn_conv1d_pad_to_nc1d": "1", **options}


def test_no_retry_starts_when_the_budget_cannot_hold_one(tmp_path: Path) -> None:
    started: list[dict[str, str]] = []
    first = {"rc": 1, "error": "CUDNN_FE failure 8: HEURISTIC_QUERY_FAILED"}
    kept, log, options = issue_table.retry_options(first, lambda o: started.append(o) or {}, time.monotonic() + 20, 30)
    assert started == [] and options is None and kept is first
    assert all(entry["skipped"].endswith("30 s needed") for entry in log[1:])


def test_only_cudnn_errors_are_retried() -> None:
    assert not issue_table.cudnn_failed({"rc": 1, "error": "MemoryError"})
    assert not issue_table.cudnn_failed({"timed_out": 100, "tail": "CUDNN"})  # a hang is not another option's to fix
    assert issue_table.cudnn_failed({"rc": 1, "error": "Status Message: CUDNN_FE failure 8: HEURISTIC_QUERY_FAILED"})


@pytest.mark.parametrize("works", [{"cudnn_conv_algo_search": "EXHAUSTIVE"}, None])
def test_the_table_runs_the_fp16_streams_with_the_options_that_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     works: dict[str, str] | None) -> None:
    """run_table's wiring, each measurement's process replaced by a record of what it was asked
    (the processes themselves are run above): retries for cuda_fp16 only, its streams with what ran."""
    asked: list[tuple[str, dict[str, str] | None]] = []

    def in_process(m: Any, limit_s: float, work: Path, plan: Any, options: dict[str, str] | None = None) -> Any:
        asked.append((m.name, options))
        if m.name == "cuda_fp16" and options != works:
            return {"rc": 1, "error": "RuntimeError: CUDNN_FE failure 8: HEURISTIC_QUERY_FAILED"}
        return {"rc": 0}

    monkeypatch.setattr(issue_table, "_in_process", in_process)
    issue_table.run_table(Report(tmp_path, "table"), issue_table.DRY_PLAN, 1000, tmp_path / "work")
    table = json.loads((tmp_path / "table.json").read_text())
    fp16 = [options for name, options in asked if name == "cuda_fp16"]
    streams = [options for name, options in asked if name == "cuda_fp16_streams"]
    if works:
        assert fp16 == [{}, {"cudnn_conv1d_pad_to_nc1d": "0"}, works] and streams == [works]
        assert table["cuda_fp16"]["rc"] == 0 and table["cuda_fp16_retries"][-1]["rc"] == 0
    else:
        assert fp16 == [{}, *issue_table.FP16_RETRY_OPTIONS] and streams == []
        assert table["cuda_fp16_streams"].startswith("skipped: cuda_fp16 failed with every option")
    assert all(options == {} for name, options in asked if not name.startswith("cuda_fp16"))


def test_the_error_line_of_run_3s_fp16_failure_names_the_cudnn_failure() -> None:
    """The tail run 3 recorded (H100, docs/measurements): the line kept is cuDNN's, not the graph's JSON."""
    run3 = Path(__file__).parents[2] / "docs" / "measurements" / "2026-12-07-h100-cuda-backend-check-run3.json"
    failed = json.loads(run3.read_text())["table"]["cuda_fp16"]
    assert issue_table.cudnn_failed(failed)
    kept, log, options = issue_table.retry_options(failed, lambda o: {}, time.monotonic(), 30)
    assert log[0]["error_line"].startswith("CUDNN_FE failure 8: HEURISTIC_QUERY_FAILED ; GPU=0")
    assert len(log) == 1 + len(issue_table.FP16_RETRY_OPTIONS) and options is None
