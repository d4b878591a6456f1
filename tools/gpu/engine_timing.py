"""Whole-engine timing for the GPU check (issue 26): the decoder as the engine runs it, and first audio.

- :func:`decoder_us_per_step`: ``B`` sentences open on one engine, batches of
  ``gate_check_interval`` steps through ``engine.decode_batch`` (what streaming runs: mask
  upload, the steps, frame copies, the gate read and the host wait), timed by CUDA events
  on the decoder's stream and by the host clock; medians, µs per step.
- :func:`speech_times`: one sentence through the synthesizer, time to first audio and to
  the last chunk by the host clock (what a caller waits); medians.

Used by cuda_backend_check.py's engine stage; the CPU tests run both on the fake device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rtvoice import SynthesisConfig
from rtvoice.audio import concatenate


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
        chunks = []
        for chunk in voice.synthesize(text, config):
            if not chunks:
                first.append((time.perf_counter() - t0) * 1000.0)
            chunks.append(chunk)
        last.append((time.perf_counter() - t0) * 1000.0)
        audio = concatenate(chunks)
    return {"ttfa_ms": round(float(np.median(first)), 3), "total_ms": round(float(np.median(last)), 3),
            "chunks": len(chunks)}, audio
