"""The GPU check's engine stage (issue 26): whole-engine runs in each kernel mode, and their timing.

- :func:`engine_runs`: each of :data:`ENGINE_RUNS` (the three cuda kernel modes on the
  shipped voice, then ONNX Runtime CUDA and the CPU engine) speaks one sentence with
  ``force_steps`` (the same length everywhere: times and SNRs comparable), and once more
  without it (:func:`unforced_times`: the synthesizer lets the engine stop at the gate,
  which the persistent kernel does on the device; its audio must equal phases', bit for
  bit), within the stage's time budget.
- :func:`decoder_us_per_step`: ``B`` sentences open on one engine, batches of
  ``gate_check_interval`` steps through ``engine.decode_batch`` (what streaming runs: mask
  upload, the steps, frame copies, the gate read and the host wait), timed by CUDA events
  on the decoder's stream and by the host clock; medians, µs per step.
- :func:`speech_times`: one sentence through the synthesizer, time to first audio and to
  the last chunk by the host clock (what a caller waits); medians.

Used by cuda_backend_check.py's engine stage; the CPU tests run it on the fake device.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtvoice import SynthesisConfig
from rtvoice.audio import AudioChunk, concatenate
from rtvoice.engine.cuda_step import MODES, Mode

ENGINE_BUDGET_S = 58.0
"""The engine stage's own time budget (its shell limit is 70 s): runs not started by then are skipped."""
ENGINE_BATCHES = (1, 4, 16)
ENGINE_RUNS: tuple[tuple[str, str, str, Mode | None], ...] = (
    *(("default", "cuda", "cuda:0", mode) for mode in MODES),
    ("default", "onnxruntime", "cuda:0", None), ("default", "onnxruntime", "cpu", None),
    ("tiny", "cuda", "cuda:0", "phases"), ("tiny", "onnxruntime", "cuda:0", None), ("tiny", "onnxruntime", "cpu", None))
"""(voice, backend, device, cuda kernel mode), most wanted first: the three modes side by side on the
default voice, then ONNX Runtime CUDA (today's engine) and the CPU engine for reference."""
TEXT = "The forms of printed letters should be beautiful."
FORCED = SynthesisConfig(seed=1, force_steps=120)
"""Every run decodes the same 120 frames: times and SNRs compare like with like."""
UNFORCED = SynthesisConfig(seed=1)
"""The synthesizer's own stop at the gate (on the device in ``persistent`` mode)."""
SNR_REFERENCES = ("cuda_phases", "onnxruntime@cuda:0", "onnxruntime@cpu")


def open_voice(folder: Path, backend: str, device: str, mode: Mode | None) -> Any:
    """Voice.load with the cuda kernel mode as the voice's batching.cuda_step."""
    from rtvoice import Voice
    from rtvoice.config import VoiceConfig

    batching = VoiceConfig.load(folder).batching
    if mode is not None:
        batching = dataclasses.replace(batching, cuda_step=mode)
    return Voice.load(folder, backend=backend, device=device, batching=batching)


def timing_event() -> Any:
    from rtvoice.cuda import Event

    return Event(timing=True)


def engine_runs(report: Any, voices: Mapping[str, Path], open_voice: Callable[..., Any], event: Callable[[], Any],
                deadline: float) -> None:
    """Each of ENGINE_RUNS until ``deadline``: speech times, decoder µs/step (GPU), then SNRs per voice.

    ``report.add(key, value)`` records each result as it comes (the stage's JSON).
    """
    forced: dict[str, dict[str, np.ndarray]] = {}
    unforced: dict[str, dict[str, np.ndarray]] = {}
    for voice, backend, device, mode in ENGINE_RUNS:
        name = f"{backend}_{mode}" if mode else f"{backend}@{device}"
        if time.monotonic() > deadline:
            report.add(f"{voice}_{name}", "skipped: the stage's time budget ran out")
            continue
        try:
            with open_voice(voices[voice], backend, device, mode) as v:
                first = concatenate(v.synthesize(TEXT, FORCED))  # warm-up, and the audio compared below
                measured, again = speech_times(v, TEXT, FORCED, runs=1 if device == "cpu" else 3)
                times: dict[str, Any] = dict(measured)
                times["repeatable"] = bool(np.array_equal(again, first))
                forced.setdefault(voice, {})[name] = first
                if time.monotonic() <= deadline:
                    times["unforced"], unforced.setdefault(voice, {})[name] = unforced_times(v, TEXT, UNFORCED)
                if device != "cpu":
                    times["decoder_us_per_step"] = decoder_us_per_step(v.engine, ENGINE_BATCHES, 5, event, deadline)
                report.add(f"{voice}_{name}", times)
        except Exception as exc:  # one run failing must not hide the others' results
            report.add(f"{voice}_{name}_error", "".join(traceback.format_exception(exc))[-1500:])
    for voice, runs in forced.items():
        report.add(f"{voice}_snr_db", snrs(runs))
    for voice, runs in unforced.items():
        report.add(f"{voice}_unforced_snr_db", snrs(runs))
        if "cuda_persistent" in runs and "cuda_phases" in runs:  # the device's gate stop against the host's
            report.add(f"{voice}_unforced_persistent_equals_phases",
                       bool(np.array_equal(runs["cuda_persistent"], runs["cuda_phases"])))


def snrs(runs: Mapping[str, np.ndarray]) -> dict[str, float]:
    """SNR in dB of each run against each reference run there is (inf: equal; NaN: lengths differ)."""
    refs = [n for n in SNR_REFERENCES if n in runs]
    return {f"{a}_vs_{b}": snr(runs[b], runs[a]) for b in refs for a in runs if a != b}


def snr(want: np.ndarray, got: np.ndarray) -> float:
    if len(want) != len(got):
        return float("nan")
    err = float(np.sum((want.astype(np.float64) - got) ** 2))
    return float("inf") if err == 0 else round(10 * np.log10(float(np.sum(want.astype(np.float64) ** 2)) / err), 2)


def unforced_times(voice: Any, text: str, config: SynthesisConfig) -> tuple[dict[str, Any], np.ndarray]:
    """One synthesis stopping at the gate: ms to first and last chunk, the decoder steps run, and its audio.

    The steps are read from each utterance the synthesizer opened (``Utterance.frames``
    counts frames past the gate too): ``phases`` and ``fused`` decode whole batches of
    ``gate_check_interval`` steps, ``persistent`` stops on the device after the step whose
    gate fired, so their steps differ while their audio may not.
    """
    engine = voice.engine
    opened: list[Any] = []
    inner = engine.open_utterance

    def open_utterance(ids: Sequence[int], max_steps: int) -> Any:
        utterance = inner(ids, max_steps)
        opened.append(utterance)
        return utterance

    engine.open_utterance = open_utterance   # an instance attribute over the method, for this one synthesis
    try:
        t0 = time.perf_counter()
        chunks: list[AudioChunk] = []
        first = 0.0
        for chunk in voice.synthesize(text, config):
            if not chunks:
                first = (time.perf_counter() - t0) * 1000.0
            chunks.append(chunk)
        total = (time.perf_counter() - t0) * 1000.0
    finally:
        del engine.open_utterance
    frames = sum(u.frames for u in opened)
    audio = concatenate(chunks)
    return {"ttfa_ms": round(first, 3), "total_ms": round(total, 3), "chunks": len(chunks),
            "audio_samples": len(audio), "frames_decoded": frames,
            "steps_decoded": frames // engine.config.decoder.frames_per_step,
            "truncated": any(c.truncated for c in chunks)}, audio


def decoder_us_per_step(engine: Any, batches: tuple[int, ...], repeats: int, event: Callable[[], Any],
                        deadline: float, symbols: int = 60) -> dict[str, float]:
    """Median µs per decoder step at each batch size (``b{B}`` by CUDA events, ``b{B}_host`` by the clock).

    Two warm-up batches first (bind, and capture where the mode captures CUDA graphs); a
    batch size is skipped once ``deadline`` (time.monotonic) has passed.
    """
    d = engine.config.decoder
    k, r = d.gate_check_interval, d.frames_per_step
    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    start, end = event(), event()
    try:
        for B in batches:
            if time.monotonic() > deadline or B > engine.config.batching.max_rows:
                continue
            utterances: list[Any] = []
            try:
                for _ in range(B):  # one by one, so that those opened before a failing open are closed
                    utterances.append(engine.open_utterance(list(range(3, 3 + symbols)), (repeats + 2) * k * r))
                masks = ((rng.random((k, 1, 2, d.prenet_dim)) >= 0.5) * 2.0).astype(np.float32)
                items = [(u, masks) for u in utterances]
                for _ in range(2):
                    engine.decode_batch(items)
                device, host = [], []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    start.record(engine.stream_a)
                    engine.decode_batch(items)  # ends in the host wait for the gates
                    end.record(engine.stream_a)
                    end.synchronize()
                    host.append((time.perf_counter() - t0) * 1e6 / k)
                    device.append(start.elapsed_ms(end) * 1000.0 / k)
                out[f"b{B}"] = round(float(np.median(device)), 2)
                out[f"b{B}_host"] = round(float(np.median(host)), 2)
            finally:
                for u in utterances:
                    u.close()
    finally:
        start.close()
        end.close()
    return out


def speech_times(voice: Any, text: str, config: SynthesisConfig, runs: int) -> tuple[dict[str, float], np.ndarray]:
    """Median ms to the first and to the last chunk over ``runs`` syntheses; and the last run's audio."""
    first, last, audio = [], [], np.zeros(0, np.float32)
    for _ in range(runs):
        t0 = time.perf_counter()
        chunks: list[AudioChunk] = []
        for chunk in voice.synthesize(text, config):
            if not chunks:
                first.append((time.perf_counter() - t0) * 1000.0)
            chunks.append(chunk)
        last.append((time.perf_counter() - t0) * 1000.0)
        audio = concatenate(chunks)
    return {"ttfa_ms": round(float(np.median(first)), 3), "total_ms": round(float(np.median(last)), 3),
            "chunks": len(chunks)}, audio
