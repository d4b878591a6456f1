#!/usr/bin/env python3
"""Issue 26's target table in one device call: the cuda backend beside ONNX Runtime CUDA and PyTorch fp16.

    ENGINE_BENCH=1 bash tools/gpu/cuda_backend_check.sh   # its table stage: run_table, OUT/table.json
    python3 tools/gpu/issue_table.py one NAME --work DIR --plan JSON [--deadline-s S]  # one, in this process

Why one script: "Done when" item 2 of issue 26 wants the table measured in ONE run, on one
card, with PyTorch fp16 alongside. Each measurement of :data:`MEASUREMENTS` runs in its own
process (a hang or a CUDA error costs that row only; GPU memory is given back between
them) under its own timeout, most wanted first, and none starts once the budget cannot hold
it. The full-size random voice with WaveGlow 512 (NVIDIA's sizes) is built first; the
128-character phrase is forced to 602 frames (6.99 s of audio), as in the issue.

- one stream, per backend: ``rtvoice.bench.run_bench`` (what ``rtvoice bench`` runs),
  medians of 6 after 2 warm-ups: decoder µs a step, time to first audio, latency of the
  whole streamed utterance, WaveGlow per audio second;
- PyTorch fp16: ``rtvoice.export.torch_bench.time_torch`` on the same weights, fp16
  autocast with ``torch.backends.cudnn.benchmark`` on (NVIDIA's way; not streamed);
- streams per GPU: :func:`find_streams`, the most concurrent streams at which the p99 time
  to first audio is within 150 ms and the slowest streams (p1) run faster than real time;
- the same voice with its postnet and WaveGlow in fp16 (``rtvoice.export.fp16_graphs``,
  needs onnxconverter-common), on the cuda backend; when its row fails with a cuDNN error it
  is run again with each of :data:`FP16_RETRY_OPTIONS` until one runs (``cuda_fp16_retries``).

A dry run (:data:`DRY_PLAN`) runs the same code on the CPU with a small voice (the tiny one
the check's ``voices`` stage builds), the cuda rows on ONNX Runtime CPU: what the CPU tests run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PHRASE = ("The forms of printed letters should be beautiful, and that their arrangement on the page should be "
          "reasonable and a help to the")
"""The 128-character phrase of issue 26's table (../shared/data/benchmark-phrase-128.txt)."""
TTFA_P99_LIMIT_S = 0.150
"""Issue 26: real-time streams per GPU counted where the p99 time to first audio is at most this."""
REAL_TIME = 1.0
"""A stream keeps up when its audio comes at least this fast (audio seconds per second)."""


@dataclass(frozen=True)
class Plan:
    """What the table measures; :data:`GPU_PLAN` on the device, :data:`DRY_PLAN` on the CPU."""

    voice: str
    """The fp32 voice folder; built (full-size random, WaveGlow 512) when missing."""
    fp16_voice: str
    device: str
    cuda_backend: str
    """The backend of the ``cuda`` rows: ``cuda``, or ``onnxruntime`` in a dry run (no GPU)."""
    steps: int
    runs: int
    warmup: int
    stream_steps: int
    stream_runs: int
    stream_warmup: int
    first_streams: int
    most_streams: int
    torch_fp16: bool


GPU_PLAN = Plan(voice="/tmp/full512", fp16_voice="/tmp/full512-fp16", device="cuda:0", cuda_backend="cuda",
                steps=602, runs=6, warmup=2, stream_steps=200, stream_runs=2, stream_warmup=1,
                first_streams=8, most_streams=256, torch_fp16=True)
DRY_PLAN = Plan(voice="tiny", fp16_voice="tiny-fp16", device="cpu",
                cuda_backend="onnxruntime", steps=24, runs=1, warmup=0, stream_steps=12, stream_runs=1,
                stream_warmup=0, first_streams=1, most_streams=2, torch_fp16=False)
"""The same measurements, small, on the CPU; the caller sets the folders (the check's tiny voice)."""


@dataclass(frozen=True)
class Measurement:
    name: str
    limit_s: float
    """Its process's timeout (less where less of the budget is left)."""
    least_s: float
    """Not started with less of the budget left than this."""


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement("build", 200, 60),
    Measurement("cuda", 100, 30),
    Measurement("onnxruntime", 100, 30),
    Measurement("torch_fp16", 150, 40),
    Measurement("cuda_streams", 200, 60),
    Measurement("onnxruntime_streams", 200, 60),
    Measurement("fp16_voice", 120, 40),
    Measurement("cuda_fp16", 100, 30),
    Measurement("cuda_fp16_streams", 200, 60),
)
"""Most wanted first: the issue's table (cuda, today's onnxruntime, PyTorch fp16, streams),
then the cuda backend with fp16 postnet and WaveGlow (issue 26 part 2)."""

FP16_RETRY_OPTIONS: tuple[dict[str, str], ...] = (
    {"cudnn_conv1d_pad_to_nc1d": "0"},
    {"cudnn_conv_algo_search": "EXHAUSTIVE"},
    {"cudnn_conv_algo_search": "DEFAULT"},
)
"""ONNX Runtime CUDA options the ``cuda_fp16`` row is run again with, in turn, when it fails with a cuDNN error.

Why: on an H100 (docs/gpu.md, "The fp16 rows") ONNX Runtime 1.31.1 raised CUDNN_FE
HEURISTIC_QUERY_FAILED for an fp16 dilated WaveGlow Conv under rtvoice's
``cudnn_conv_algo_search`` HEURISTIC, and GPU calls are too rare to try one option a call.
Each is merged over rtvoice's options (``RTVOICE_ORT_CUDA_OPTIONS``); the first that runs is
kept, for ``cuda_fp16_streams`` too. Ordered by the speed we hope to keep: the same search on
the [N, C, D, 1] layout, then ONNX Runtime's default search (EXHAUSTIVE), then cuDNN's
fallback list (DEFAULT; ONNX Runtime warns it may be slow)."""


# --- the measurements, each in its own process -------------------------------------------------


def _build(plan: Plan, deadline: float) -> dict[str, Any]:
    voice = Path(plan.voice)
    if (voice / "voice.json").is_file():
        return {"built": False, "voice": plan.voice}
    t0 = time.monotonic()
    subprocess.run([sys.executable, str(ROOT / "build_engines.py"), "--random", "full", "--waveglow-channels", "512",
                    "--out", plan.voice, "--no-parity"], check=True, timeout=max(deadline - time.monotonic(), 1))
    return {"built": True, "voice": plan.voice, "seconds": round(time.monotonic() - t0, 1)}


def _fp16_voice(plan: Plan, deadline: float) -> dict[str, Any]:
    from rtvoice.export.fp16_graphs import convert_voice

    if (Path(plan.fp16_voice) / "voice.json").is_file():  # written last: a whole voice
        return {"built": False, "voice": plan.fp16_voice}
    t0 = time.monotonic()
    sizes = convert_voice(Path(plan.voice), Path(plan.fp16_voice))
    return {"built": True, "voice": plan.fp16_voice, "seconds": round(time.monotonic() - t0, 1),
            "mb": {g: [round(a / 1e6, 1), round(b / 1e6, 1)] for g, (a, b) in sizes.items()}}


def _open(plan: Plan, backend: str, fp16: bool = False) -> Any:
    from rtvoice import Voice

    return Voice.load(plan.fp16_voice if fp16 else plan.voice, backend=backend, device=plan.device)


def _one_stream(plan: Plan, backend: str, fp16: bool = False) -> dict[str, Any]:
    from rtvoice.bench import run_bench

    with _open(plan, backend, fp16) as voice:
        report = run_bench(voice, PHRASE, steps=plan.steps, runs=plan.runs, warmup=plan.warmup)
    return report.summary()


def _torch_fp16(plan: Plan, deadline: float) -> dict[str, Any]:
    import torch  # before ONNX Runtime loads its CUDA libraries (see rtvoice/commands/bench.py)

    from rtvoice.config import VoiceConfig
    from rtvoice.export.torch_bench import time_torch

    torch.backends.cudnn.benchmark = True  # as NVIDIA's inference scripts run; time_torch does not set it
    out = time_torch(VoiceConfig.load(Path(plan.voice)), PHRASE, plan.steps, plan.device, runs=plan.runs,
                     warmup=plan.warmup, fp16=plan.torch_fp16)
    return {**out, "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}


def _streams(plan: Plan, backend: str, deadline: float, save: Callable[[dict[str, Any]], None],
             fp16: bool = False) -> dict[str, Any]:
    from rtvoice.bench import run_bench

    result: dict[str, Any] = {}
    with _open(plan, backend, fp16) as voice:
        def measure(n: int) -> dict[str, Any]:
            return run_bench(voice, PHRASE, steps=plan.stream_steps, runs=plan.stream_runs,
                             warmup=plan.stream_warmup, concurrency=n).summary()

        def saving(found: dict[str, Any]) -> None:
            result.update(found)
            save(result)

        find_streams(measure, plan.first_streams, plan.most_streams, deadline, saving)
    return result


def run_one(name: str, plan: Plan, work: Path, deadline: float) -> dict[str, Any]:
    """Measurement ``name``; its result is also in ``work/NAME.json``, rewritten as it grows."""
    path = work / f"{name}.json"

    def save(value: dict[str, Any]) -> None:
        path.write_text(json.dumps(value, indent=1, default=str))

    t0 = time.monotonic()
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "build": lambda: _build(plan, deadline),
        "cuda": lambda: _one_stream(plan, plan.cuda_backend),
        "onnxruntime": lambda: _one_stream(plan, "onnxruntime"),
        "torch_fp16": lambda: _torch_fp16(plan, deadline),
        "cuda_streams": lambda: _streams(plan, plan.cuda_backend, deadline, save),
        "onnxruntime_streams": lambda: _streams(plan, "onnxruntime", deadline, save),
        "fp16_voice": lambda: _fp16_voice(plan, deadline),
        "cuda_fp16": lambda: _one_stream(plan, plan.cuda_backend, fp16=True),
        "cuda_fp16_streams": lambda: _streams(plan, plan.cuda_backend, deadline, save, fp16=True),
    }
    result = steps[name]()
    result["wall_s"] = round(time.monotonic() - t0, 1)
    save(result)
    return result


# --- streams per GPU -----------------------------------------------------------------------------


def keeps_up(summary: dict[str, Any]) -> bool:
    """One concurrency level passes: p99 time to first audio within the limit, the slowest streams in real time."""
    return (summary["time_to_first_audio_s"]["p99"] <= TTFA_P99_LIMIT_S
            and summary["rtf"]["p1"] >= REAL_TIME)


def find_streams(measure: Callable[[int], dict[str, Any]], first: int, most: int, deadline: float,
                 save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The most streams that :func:`keeps_up`: doubling from ``first``, then halving the gap to the first failure.

    Stops when the gap is within an eighth of the passing level (at least 1), at ``most``,
    or at ``deadline`` (time.monotonic; a level is not started past it). ``save`` gets the
    result after every level, so a process killed at its timeout leaves what it found.
    Returns ``{"levels": {n: figures}, "streams": the best n (0: none passed), "first_failed",
    "complete", "capped" (no level failed up to ``most``)}``.
    """
    levels: dict[str, Any] = {}
    best, failed = 0, None
    n = first
    found: dict[str, Any] = {"levels": levels, "streams": 0, "complete": False}
    while n is not None and time.monotonic() < deadline:
        summary = measure(n)
        passed = keeps_up(summary)
        levels[str(n)] = {"passed": passed, **_level_figures(summary)}
        if passed:
            best = max(best, n)
        else:
            failed = n if failed is None else min(failed, n)
        found.update(streams=best, first_failed=failed)
        n = _next_level(best, failed, first, most)
        found["complete"] = n is None
        found["capped"] = n is None and failed is None  # every level passed, up to ``most``: more may
        if best:
            top = levels[str(best)]
            found["at_streams"] = {"ttfa_p99_ms": top["ttfa_p99_ms"], "rtf_median": top["rtf_median"],
                                   "streams_x_rtf_median": round(best * top["rtf_median"], 1)}
        save(found)
    return found


def _next_level(best: int, failed: int | None, first: int, most: int) -> int | None:
    """The next concurrency to try, or None when the search is done."""
    if failed is None:
        nxt = max(first, 2 * best) if best else first
        return nxt if nxt <= most and nxt != best else None
    if failed - best <= max(1, best // 8):
        return None
    return (best + failed) // 2 if best else max(1, failed // 2)


def _level_figures(summary: dict[str, Any]) -> dict[str, Any]:
    t, r = summary["time_to_first_audio_s"], summary["rtf"]
    return {"ttfa_median_ms": round(t["median"] * 1e3, 1), "ttfa_p99_ms": round(t["p99"] * 1e3, 1),
            "rtf_median": round(r["median"], 3), "rtf_p1": round(r["p1"], 3),
            "latency_median_s": round(summary["latency_s"]["median"], 3),
            "decoder_us_per_step": round(summary["decoder_us_per_step"]["median"], 1),
            "waveglow_ms_per_audio_s": round(summary["waveglow_us_per_audio_s"]["median"] / 1e3, 2),
            "vocoder_batch_mean": round(summary["vocoder_batch_mean"]["median"], 2),
            "gpu_memory_used_bytes": summary.get("gpu_memory_used_bytes")}


# --- the table -----------------------------------------------------------------------------------


def table_rows(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 26's rows from the measurements there are: one column per backend, the PyTorch fp16 ratio."""
    torch_run = results.get("torch_fp16") if isinstance(results.get("torch_fp16"), dict) else None
    torch_latency = torch_run.get("latency_s") if torch_run else None
    columns: dict[str, Any] = {}
    for name in ("cuda", "onnxruntime", "cuda_fp16"):
        run = results.get(name)
        if not isinstance(run, dict) or "latency_s" not in run:
            continue
        latency = run["latency_s"]["median"]
        column = {
            "backend": run.get("backend"), "gpu": run.get("gpu"), "audio_s": round(run["audio_s"], 3),
            "decoder_step_b1_us": round(run["decoder_us_per_step"]["median"], 1),
            "ttfa_b1_ms": round(run["time_to_first_audio_s"]["median"] * 1e3, 2),
            "ttfa_b1_p99_ms": round(run["time_to_first_audio_s"]["p99"] * 1e3, 2),
            "whole_utterance_streamed_ms": round(latency * 1e3, 1),
            "torch_fp16_latency_over_this": round(torch_latency / latency, 2) if torch_latency else None,
            "waveglow_ms_per_audio_s_streamed": round(run["waveglow_us_per_audio_s"]["median"] / 1e3, 2),
        }
        if run.get("first_audio_parts"):  # where the first audio's time went (rtvoice.bench.first_audio_parts)
            column["ttfa_b1_parts_ms"] = {k.removesuffix("_s"): round(v * 1e3, 2) if k.endswith("_s") else v
                                          for k, v in run["first_audio_parts"].items()}
        if run.get("ort_cuda_options"):  # run with options over rtvoice's own (FP16_RETRY_OPTIONS)
            column["ort_cuda_options"] = run["ort_cuda_options"]
        streams = results.get(f"{name}_streams")
        if isinstance(streams, dict) and "streams" in streams:
            column["streams_ttfa_p99_within_150ms"] = streams["streams"]
            column["streams_search_complete"] = streams.get("complete", False)
            column["streams_capped"] = streams.get("capped", False)
        columns[name] = column
    if torch_run and "latency_s" in torch_run:
        columns["torch_fp16"] = {"whole_utterance_ms": round(torch_latency * 1e3, 1),
                                 # encoder, decoder and postnet over the steps (time_torch's decoder_us_per_step)
                                 "tacotron2_us_per_step": round(torch_run["decoder_us_per_step"], 1),
                                 "precision": torch_run.get("precision"),
                                 "cudnn_benchmark": torch_run.get("cudnn_benchmark")}
    return columns


def run_table(report: Any, plan: Plan, budget_s: float, work: Path, only: Collection[str] | None = None) -> None:
    """Every measurement of :data:`MEASUREMENTS` that the budget holds, each in its own process; then the rows.

    ``report.add(key, value)`` records as it goes (the check's OUT/table.json). ``only``
    (``TABLE_ONLY`` in the check stage) names the measurements to run, for a short call that
    wants a few rows (e.g. ``build,cuda,fp16_voice,cuda_fp16``); the rest are skipped, saying so.
    """
    deadline = time.monotonic() + budget_s
    work.mkdir(parents=True, exist_ok=True)
    report.add("plan", {**asdict(plan), "budget_s": budget_s, "ttfa_p99_limit_ms": TTFA_P99_LIMIT_S * 1e3})
    results: dict[str, Any] = {}
    fp16_options: dict[str, str] | None = {}  # None: cuda_fp16 failed with every option
    for m in MEASUREMENTS:
        left = deadline - time.monotonic()
        needs = [dep for dep in _needs(m.name) if not _ok(results.get(dep))]
        options = fp16_options if m.name.startswith("cuda_fp16") else {}
        if only is not None and m.name not in only:
            results[m.name] = "skipped: not in TABLE_ONLY"
        elif needs:
            results[m.name] = f"skipped: {', '.join(needs)} did not finish"
        elif left < m.least_s:
            results[m.name] = f"skipped: {left:.0f} s of the budget left, {m.least_s:.0f} s needed"
        elif options is None:
            results[m.name] = "skipped: cuda_fp16 failed with every option tried (cuda_fp16_retries)"
        else:
            results[m.name] = _in_process(m, min(m.limit_s, left), work, plan, options)
            if m.name == "cuda_fp16" and cudnn_failed(results[m.name]):
                def attempt(more: dict[str, str], m: Measurement = m) -> dict[str, Any]:
                    return _in_process(m, min(m.limit_s, deadline - time.monotonic()), work, plan, more)

                results[m.name], retries, fp16_options = retry_options(results[m.name], attempt, deadline,
                                                                       m.least_s)
                report.add("cuda_fp16_retries", retries)
        report.add(m.name, results[m.name])
    report.add("rows", table_rows(results))


def _needs(name: str) -> tuple[str, ...]:
    if name == "build":
        return ()
    if name.startswith("cuda_fp16"):
        return ("build", "fp16_voice")
    return ("build",)


def _ok(result: Any) -> bool:
    return isinstance(result, dict) and "error" not in result and "timed_out" not in result


def retry_options(first: dict[str, Any], attempt: Callable[[dict[str, str]], dict[str, Any]], deadline: float,
                  least_s: float, tries: tuple[dict[str, str], ...] = FP16_RETRY_OPTIONS,
                  ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str] | None]:
    """After ``first`` failed: ``attempt(options)`` with each of ``tries`` in turn until one runs.

    Returns the result to keep (the first that ran; else ``first``), every attempt as
    ``{"options", "rc", "error_line"}`` (``figures``: its table row, when it ran), ``first``
    leading with options ``{}`` (rtvoice's own), and the options that ran (None: none did).
    None is started with less than ``least_s`` left before ``deadline`` (time.monotonic).
    """
    log: list[dict[str, Any]] = [_attempt_record({}, first)]
    for options in tries:
        left = deadline - time.monotonic()
        if left < least_s:
            log.append({"options": options, "skipped": f"{left:.0f} s of the budget left, {least_s:.0f} s needed"})
            continue
        result = attempt(options)
        log.append(_attempt_record(options, result))
        if _ok(result):
            return result, log, options
    return first, log, None


def cudnn_failed(result: Any) -> bool:
    """A measurement that ended with a cuDNN error (what another ONNX Runtime CUDA option may avoid)."""
    return isinstance(result, dict) and "cudnn" in str(result.get("error", "")).lower()


def _attempt_record(options: dict[str, str], result: dict[str, Any]) -> dict[str, Any]:
    text = str(result.get("error") or result.get("tail") or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # ONNX Runtime's cuDNN errors come as one long line (the C++ signature first) and the graph's JSON
    failure = re.search(r"CUDNN\w* failure[^\n]*", text, re.IGNORECASE)
    line = failure.group(0).strip() if failure else (lines[-1] if lines else None)
    record: dict[str, Any] = {"options": options, "rc": result.get("rc"), "seconds": result.get("seconds"),
                              "error_line": line[:400] if line else None}
    if "timed_out" in result:
        record["timed_out"] = result["timed_out"]
    if _ok(result):
        record["figures"] = table_rows({"cuda_fp16": result}).get("cuda_fp16")
    return record


def _in_process(m: Measurement, limit_s: float, work: Path, plan: Plan,
                options: dict[str, str] | None = None) -> dict[str, Any]:
    """``issue_table.py one NAME`` under a timeout, :func:`run_measurement`."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "one", m.name, "--work", str(work),
           "--plan", json.dumps(asdict(plan)), "--deadline-s", str(max(limit_s - 10, 1))]
    result = run_measurement(cmd, limit_s, work / f"{m.name}.json", options or {})
    return {**result, "ort_cuda_options": options} if options else result


def run_measurement(cmd: list[str], limit_s: float, path: Path, options: dict[str, str]) -> dict[str, Any]:
    """``cmd`` under a timeout, ``options`` merged over ``RTVOICE_ORT_CUDA_OPTIONS``; the JSON it
    left at ``path`` (whole or partial) with how it ended."""
    path.unlink(missing_ok=True)
    env = dict(os.environ)
    if options:
        env["RTVOICE_ORT_CUDA_OPTIONS"] = json.dumps({**json.loads(env.get("RTVOICE_ORT_CUDA_OPTIONS", "{}")),
                                                      **options})
    t0 = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s, cwd=ROOT, env=env)
        ended: dict[str, Any] = {"rc": done.returncode}
        if done.returncode:
            ended["error"] = (done.stdout + done.stderr)[-1500:]
    except subprocess.TimeoutExpired as exc:
        ended = {"timed_out": limit_s, "tail": _text(exc.stderr)[-800:]}
    result: dict[str, Any] = {}
    if path.is_file():
        try:
            result = json.loads(path.read_text())
        except ValueError:  # cut off mid-write
            result = {"partial_json": path.read_text()[-800:]}
    return {**result, **ended, "seconds": round(time.monotonic() - t0, 1)}


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("one", help="one measurement, in this process (run_table starts these)")
    one.add_argument("name", choices=[m.name for m in MEASUREMENTS])
    one.add_argument("--work", type=Path, required=True, help="where NAME.json goes")
    one.add_argument("--plan", type=lambda text: Plan(**json.loads(text)), default=GPU_PLAN,
                     help="a Plan as JSON (default: the GPU's)")
    one.add_argument("--deadline-s", type=float, default=math.inf, help="seconds from now to stop starting levels")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        run_one(args.name, args.plan, args.work, time.monotonic() + args.deadline_s)
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
