"""How closely streamed audio matches whole-utterance audio, against context and chunk size.

For each (chunk frames, context frames) the same text, seed and decoder length are spoken
whole and streamed; the report gives the SNR of streamed against whole, the time to first
audio, and the number of chunks. ``rtvoice bench --seams`` prints it; the curve in docs/benchmarks.md
and the voice defaults were chosen from it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .audio import concatenate
from .config import SynthesisConfig
from .voice import Voice


@dataclass(frozen=True)
class SeamPoint:
    chunk_frames: int
    context_frames: int
    snr_db: float
    time_to_first_audio_s: float
    chunks: int


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    err = float(np.sum((reference.astype(np.float64) - other) ** 2))
    return float("inf") if err == 0 else 10 * float(np.log10(np.sum(reference.astype(np.float64) ** 2) / err))


def sweep(voice: Voice, text: str, steps: int, chunks: Sequence[int] = (16, 32, 64),
          contexts: Sequence[int] = (0, 2, 4, 8, 16, 32), seed: int = 0, rate: float | None = None
          ) -> list[SeamPoint]:
    """Measure the (chunk, context) grid; the first sentence of ``text`` only.

    ``rate``: the speaking rate; chunks and context then count time-scaled frames.
    """
    base = SynthesisConfig(seed=seed, force_steps=steps, sentence_pause_s=0.0, rate=rate)
    whole = concatenate(voice.synthesize(text, SynthesisConfig(seed=seed, force_steps=steps, whole=True,
                                                               sentence_pause_s=0.0, rate=rate)))
    points = []
    for chunk in chunks:
        for ctx in contexts:
            config = SynthesisConfig(seed=base.seed, force_steps=steps, sentence_pause_s=0.0, chunk_frames=chunk,
                                     first_chunk_frames=chunk, context_frames=ctx, rate=rate)
            for _ in voice.synthesize(text, config):  # warm-up: first use of a shape is not what we measure
                pass
            start = time.perf_counter()
            out, first = [], None
            for c in voice.synthesize(text, config):
                first = first if first is not None else time.perf_counter() - start
                out.append(c)
            points.append(SeamPoint(chunk, ctx, snr_db(whole, concatenate(out)), first or 0.0, len(out)))
    return points


def format_points(points: Sequence[SeamPoint]) -> str:
    lines = ["| chunk frames | context frames | SNR streamed vs whole (dB) | time to first audio (ms) | chunks |",
             "| --- | --- | --- | --- | --- |"]
    for p in points:
        lines.append(f"| {p.chunk_frames} | {p.context_frames} | {p.snr_db:.1f} | "
                     f"{1e3 * p.time_to_first_audio_s:.1f} | {p.chunks} |")
    return "\n".join(lines)
