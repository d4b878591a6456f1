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
