"""--profile-steps: one report of where the steps' time went, then the run goes on unprofiled."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from training.profile_steps import SKIP, StepProfiler  # noqa: E402


def work() -> None:
    x = torch.randn(64, 64)
    torch.linalg.matmul(x, x).sum()


def test_the_profiler_reports_once_after_its_steps(caplog: pytest.LogCaptureFixture) -> None:
    profiler = StepProfiler(2, torch.device("cpu"), rows=5)
    with caplog.at_level(logging.INFO, logger="training"):
        for _ in range(SKIP + 1):
            work()
            profiler.step()
        assert profiler.report is None  # one of the two profiled steps still to come
        work()
        profiler.step()
        assert profiler.report is not None
        for _ in range(3):  # afterwards: no more profiling, no second report
            work()
            profiler.step()
    assert caplog.text.count("profile of 2 steps") == 1
    assert "ms a step" in profiler.report and "aten::mm" in profiler.report


def test_a_run_shorter_than_the_profile_stops_it_without_a_report() -> None:
    profiler = StepProfiler(5, torch.device("cpu"))
    work()
    profiler.step()
    profiler.close()
    assert profiler.report is None
    profiler.step()  # harmless after close
    assert StepProfiler(0, torch.device("cpu")).report is None
