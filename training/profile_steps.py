"""Where a training step's time goes, measured by torch.profiler inside a real run.

Why: on the GPU machine both trainers run far below what the arithmetic needs (WaveGlow's
``frame`` preset did about 14 iterations/s, 70 ms each, for about 25 GFLOP), and a stretch
is too short to spend on a separate profiling call. With ``--profile-steps N`` a run
profiles N steps after a few warm-up ones and logs, once, the operators that took the most
device and host time and how busy the device was: launch-bound (busy well under 100%),
host syncs (``cudaStreamSynchronize``, ``cudaMemcpy`` high in the host table) or arithmetic.
The run goes on unprofiled afterwards.
"""

from __future__ import annotations

import logging
import time

import torch
from torch.profiler import ProfilerActivity, profile, schedule

log = logging.getLogger("training")

SKIP = 3
"""Steps left alone first: compilation, lazy initialization and allocator growth."""


class StepProfiler:
    """Call :meth:`step` after every training step; logs one report after ``steps`` profiled steps."""

    def __init__(self, steps: int, device: torch.device, rows: int = 12) -> None:
        self.steps, self.device, self.rows = steps, device, rows
        self.report: str | None = None
        self._seen, self._start = 0, 0.0
        self._prof: profile | None = None
        if steps > 0:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
            self._prof = profile(activities=activities, schedule=schedule(wait=SKIP - 1, warmup=1, active=steps),
                                 on_trace_ready=self._done)
            self._prof.start()

    def step(self) -> None:
        if self._prof is None:
            return
        self._seen += 1
        if self._seen == SKIP:
            self._sync()
            self._start = time.perf_counter()
        self._prof.step()
        if self.report is not None:  # the schedule has ended: stop profiling for the rest of the run
            self._prof.stop()
            self._prof = None

    def close(self) -> None:
        """Stop early (a run shorter than the profiled steps): no report."""
        if self._prof is not None:
            self._prof.stop()
            self._prof = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _done(self, prof: profile) -> None:
        self._sync()
        wall = (time.perf_counter() - self._start) / self.steps
        events = prof.key_averages()
        on_device = self.device.type == "cuda"
        device_us = sum(e.self_device_time_total for e in events) / self.steps if on_device else 0.0
        busy = f", device busy {100 * device_us / 1e6 / wall:.0f}% of it" if on_device else ""
        tables = [events.table(sort_by="self_cpu_time_total", row_limit=self.rows)]
        if on_device:
            tables.insert(0, events.table(sort_by="self_device_time_total", row_limit=self.rows))
        self.report = f"profile of {self.steps} steps: {1e3 * wall:.1f} ms a step{busy}\n" + "\n".join(tables)
        log.info("%s", self.report)
