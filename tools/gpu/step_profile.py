"""Where a decoder step's time goes beyond its kernels (issue 26): the engine under torch.profiler.

Issue 26 wants each missed target shown with the profile that says where the time goes.
The bench stage times each phase kernel alone (CUDA events); this says what lies between
them when the engine runs: launch gaps, host work between launches, graph replays, the mask,
frame and gate copies, and why ``persistent`` costs twice ``phases`` in the engine.

- :func:`profile_runs`: each cuda kernel mode opened on one voice; ``decode_batch`` at batch 1
  (batches of ``gate_check_interval`` steps, what streaming runs) timed by the host clock
  without the profiler, then under torch.profiler (CPU and CUDA activity: CUPTI records every
  kernel and copy on the device, those cuda-python launches and graph replays included). The
  trace goes to a temporary folder, never to ``$OUT`` (the device brings back 8 files).
- :func:`reduce_trace`: the trace's events (Chrome trace format, as torch exports them) to
  plain numbers per step. Pure, and tested on the CPU with constructed events.

Used by cuda_backend_check.py's ``profile`` stage, which keeps the numbers under ``profile``
in ``engine.json``. A dry run profiles the CPU engine (CPU activity only) the same way.
"""

from __future__ import annotations

import json
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
"""Trace categories that occupy the device (``gpu_user_annotation`` only mirrors a host range)."""
HOST_API_CATEGORIES = ("cuda_runtime", "cuda_driver")
"""CUDA API calls on the host as CUPTI records them (kineto keeps only some driver calls)."""
WINDOW = "rtvoice_profile"
"""The host annotation around the profiled batches: events outside it are left out."""
BATCH = "rtvoice_decode_batch"
"""The host annotation around each ``decode_batch`` call."""
TOP = 12
"""How many names each per-name table keeps (largest first)."""


@dataclass(frozen=True)
class ProfilePlan:
    """What the profile stage runs: :data:`GPU_PLAN` on the device, :data:`DRY_PLAN` on the CPU."""

    voice: str
    """A key of cuda_backend_check.VOICES."""
    runs: tuple[tuple[str, str, str | None], ...]
    """(backend, device, cuda kernel mode) per run, most wanted first."""
    batches: int
    """Profiled ``decode_batch`` calls (each ``gate_check_interval`` steps), and as many unprofiled."""
    warmup: int
    """Calls first, unmeasured: binding, graph capture, CUPTI's start."""
    symbols: int
    """Symbols in the one sentence decoded (batch 1)."""
    budget_s: float
    """No run starts after this; the shell gives the stage a few seconds more."""
    cuda: bool
    """Record CUDA activity too (the GPU); the dry run records the CPU only."""


GPU_PLAN = ProfilePlan(voice="default", runs=tuple(("cuda", "cuda:0", m) for m in ("phases", "fused", "persistent")),
                       batches=25, warmup=3, symbols=60, budget_s=25.0, cuda=True)
"""200 steps a mode (25 calls of 8 steps) on the shipped voice, as the engine stage times it."""
DRY_PLAN = ProfilePlan(voice="default", runs=(("onnxruntime", "cpu", None),), batches=2, warmup=1, symbols=20,
                       budget_s=25.0, cuda=False)


def profile_runs(report: Any, folder: Path, open_voice: Callable[..., Any], plan: ProfilePlan,
                 deadline: float) -> None:
    """Each of ``plan.runs`` until ``deadline`` (time.monotonic): ``report.add(name, reduction)``."""
    for backend, device, mode in plan.runs:
        name = mode if mode else f"{backend}@{device}"
        if time.monotonic() > deadline:
            report.add(name, "skipped: the stage's time budget ran out")
            continue
        try:
            with open_voice(folder, backend, device, mode) as voice:
                kernels = getattr(voice.engine, "kernels", None)
                result = profile_engine(voice.engine, plan)
                report.add(name, {"opened_mode": getattr(kernels, "mode", None), **result})
        except Exception as exc:  # one mode failing must not hide the others' results
            report.add(f"{name}_error", "".join(traceback.format_exception(exc))[-1500:])


def profile_engine(engine: Any, plan: ProfilePlan) -> dict[str, Any]:
    """One sentence at batch 1: host clock unprofiled, then the same calls under torch.profiler, reduced."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    d = engine.config.decoder
    k, r = d.gate_check_interval, d.frames_per_step
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if plan.cuda else [])
    if plan.cuda:
        torch.cuda.synchronize()  # torch's context on the device first: the profiler's CUDA side needs it
    calls = plan.warmup + 1 + 2 * plan.batches
    utterance = engine.open_utterance(list(range(3, 3 + plan.symbols)), calls * k * r)
    try:
        masks = ((np.random.default_rng(0).random((k, 1, 2, d.prenet_dim)) >= 0.5) * 2.0).astype(np.float32)
        items = [(utterance, masks)]
        for _ in range(plan.warmup):
            engine.decode_batch(items)
        with profile(activities=activities):  # CUPTI's first start, outside the measured trace
            engine.decode_batch(items)
        t0 = time.perf_counter()
        for _ in range(plan.batches):
            engine.decode_batch(items)
        unprofiled = time.perf_counter() - t0
        with profile(activities=activities) as prof:
            t0 = time.perf_counter()
            with record_function(WINDOW):
                for _ in range(plan.batches):
                    with record_function(BATCH):
                        engine.decode_batch(items)  # ends in the host wait for the gates
            profiled = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:  # the trace is large: only its reduction is kept
            path = Path(tmp) / "trace.json"
            prof.export_chrome_trace(str(path))
            events = json.loads(path.read_text())["traceEvents"]
    finally:
        utterance.close()
    steps = plan.batches * k
    return {"steps": steps, "steps_per_call": k,
            "host_clock_us_per_step": round(profiled * 1e6 / steps, 2),
            "host_clock_unprofiled_us_per_step": round(unprofiled * 1e6 / steps, 2),
            "trace_events": len(events), **reduce_trace(events, steps)}


def reduce_trace(events: Sequence[Mapping[str, Any]], steps: int, window: str = WINDOW,
                 batch: str = BATCH) -> dict[str, Any]:
    """A trace's events (Chrome trace format: ``ts``/``dur`` in µs) to numbers per decoder step.

    Only complete (``ph: X``) events inside the ``window`` host annotation count (all of them
    when it is missing, or when no device activity lies inside it). Device time is the union of kernel, copy and set intervals across
    streams; a gap is idle device time between two merged intervals, charged to the activity
    that ends it. ``batches`` compares each ``batch`` annotation (a ``decode_batch`` call) with
    the device work that started inside it: ``head_us`` from the call to the first device
    activity, ``tail_us`` from the last one's end to the call's return.
    """
    done = [e for e in events if e.get("ph") == "X" and "ts" in e]
    spans = [_span(e) for e in done if e.get("cat") == "user_annotation" and e.get("name") == window]
    if spans:
        lo, hi = spans[0]
    else:
        lo = min((_span(e)[0] for e in done), default=0.0)
        hi = max((_span(e)[1] for e in done), default=0.0)
    inside = [e for e in done if lo <= _span(e)[0] and _span(e)[1] <= hi]
    label = "annotation" if spans else "all events"
    if spans and not any(e.get("cat") in DEVICE_CATEGORIES for e in inside):
        if any(e.get("cat") in DEVICE_CATEGORIES for e in done):  # host and device clocks apart: take all
            inside, label = done, "all events: no device activity inside the annotation"
    device = sorted((e for e in inside if e.get("cat") in DEVICE_CATEGORIES), key=lambda e: _span(e)[0])
    merged = _merge(device)
    busy = sum(end - start for start, end, _ in merged)
    gaps = [(merged[i + 1][0] - merged[i][1], merged[i + 1][2]) for i in range(len(merged) - 1)]
    gap_values = [g for g, _ in gaps]
    idle_before: dict[str, float] = {}
    for g, name in gaps:
        idle_before[name] = idle_before.get(name, 0.0) + g
    window_us = hi - lo
    return {
        "window": label,
        "window_us": round(window_us, 2),
        "wall_us_per_step": _per(window_us, steps),
        "device_busy_us_per_step": _per(busy, steps),
        "device_idle_us_per_step": _per(window_us - busy, steps),
        "device_busy_fraction": round(busy / window_us, 4) if window_us > 0 else None,
        "device_span_us_per_step": _per(merged[-1][1] - merged[0][0], steps) if merged else None,
        "gaps": {"per_step": _per(len(gaps), steps, 3), "median_us": _pct(gap_values, 50),
                 "p90_us": _pct(gap_values, 90), "max_us": _pct(gap_values, 100)},
        "idle_before_us_per_step": _top({n: _per(v, steps) for n, v in idle_before.items()}),
        "kernels_per_step": _per(sum(e.get("cat") == "kernel" for e in device), steps, 3),
        "kernels": _by_name([e for e in device if e.get("cat") == "kernel"], steps),
        "copies": _by_name([e for e in device if e.get("cat") != "kernel"], steps, with_bytes=True),
        "host_api": _host_api([e for e in inside if e.get("cat") in HOST_API_CATEGORIES], steps),
        "batches": _batches([e for e in inside if e.get("cat") == "user_annotation" and e.get("name") == batch],
                            device),
    }


def _span(event: Mapping[str, Any]) -> tuple[float, float]:
    start = float(event["ts"])
    return start, start + float(event.get("dur", 0.0))


def _merge(device: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, str]]:
    """Sorted device events to disjoint intervals, each with the name of the event that opened it."""
    merged: list[tuple[float, float, str]] = []
    for e in device:
        start, end = _span(e)
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end), merged[-1][2])
        else:
            merged.append((start, end, str(e.get("name"))))
    return merged


def _per(value: float, steps: int, digits: int = 2) -> float | None:
    return round(value / steps, digits) if steps > 0 else None


def _pct(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def _top(table: Mapping[str, Any], key: Callable[[Any], float] = lambda v: v or 0.0) -> dict[str, Any]:
    return dict(sorted(table.items(), key=lambda kv: -key(kv[1]))[:TOP])


def _by_name(events: Sequence[Mapping[str, Any]], steps: int, with_bytes: bool = False) -> dict[str, Any]:
    """Per name: calls and µs per step, median µs a call (and bytes per step for copies)."""
    names: dict[str, list[Mapping[str, Any]]] = {}
    for e in events:
        names.setdefault(str(e.get("name")), []).append(e)
    table: dict[str, Any] = {}
    for name, group in names.items():
        durations = [float(e.get("dur", 0.0)) for e in group]
        row: dict[str, Any] = {"per_step": _per(len(group), steps, 3), "us_per_step": _per(sum(durations), steps, 3),
                               "median_us": _pct(durations, 50)}
        if with_bytes:
            row["bytes_per_step"] = _per(sum(int((e.get("args") or {}).get("bytes", 0)) for e in group), steps, 1)
        table[name] = row
    return _top(table, key=lambda row: row["us_per_step"] or 0.0)


def _host_api(events: Sequence[Mapping[str, Any]], steps: int) -> dict[str, Any]:
    """CUDA API calls on the host: all, those that wait (``*Synchronize``), the launches."""
    def total(names: Callable[[str], bool]) -> float:
        return sum(float(e.get("dur", 0.0)) for e in events if names(str(e.get("name"))))

    return {"calls_per_step": _per(len(events), steps, 3),
            "us_per_step": _per(total(lambda n: "Synchronize" not in n), steps),
            "wait_us_per_step": _per(total(lambda n: "Synchronize" in n), steps),
            "launch_calls_per_step": _per(sum("Launch" in str(e.get("name")) for e in events), steps, 3),
            "by_name": _by_name(events, steps)}


def _batches(calls: Sequence[Mapping[str, Any]], device: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each call's wall, device busy, head and tail (µs); medians over the calls."""
    walls, busy, heads, tails = [], [], [], []
    for call in calls:
        lo, hi = _span(call)
        mine = [e for e in device if lo <= _span(e)[0] <= hi]
        walls.append(hi - lo)
        merged = _merge(mine)
        busy.append(sum(end - start for start, end, _ in merged))
        if merged:
            heads.append(merged[0][0] - lo)
            tails.append(hi - max(end for _, end, _ in merged))
    return {"count": len(calls), "wall_us_median": _pct(walls, 50), "device_busy_us_median": _pct(busy, 50),
            "head_us_median": _pct(heads, 50), "tail_us_median": _pct(tails, 50)}
