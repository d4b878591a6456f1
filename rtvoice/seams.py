"""How closely streamed audio matches whole-utterance audio, against context and chunk size.

For each (chunk frames, context frames) the same text, seed and decoder length are spoken
whole and streamed; the report gives the SNR of streamed against whole, the time to first
audio, the number of chunks, and how many frames the vocoder ran per frame heard (each
chunk's context is vocoded again by its neighbour). The last row is the voice's own
defaults, whose later chunks double up to ``streaming.max_chunk_frames``. ``rtvoice bench
--seams`` prints it; the curve in docs/benchmarks.md and the voice defaults were chosen from it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .audio import concatenate
from .config import ResolvedSynthesis, SynthesisConfig, VoiceConfig
from .synthesizer import ChunkVocoder, Clock, Progress, Sentence
from .voice import Voice


@dataclass(frozen=True)
class SeamPoint:
    chunk_frames: int
    context_frames: int
    snr_db: float
    time_to_first_audio_s: float
    chunks: int
    max_chunk_frames: int = 0
    """Later chunks doubled up to this (the voice's defaults); 0: every later chunk ``chunk_frames``."""
    vocoded_per_heard: float = 0.0
    """Frames the vocoder ran per frame of the sentence: the work streaming repeats (1.0 = whole)."""


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    err = float(np.sum((reference.astype(np.float64) - other) ** 2))
    return float("inf") if err == 0 else 10 * float(np.log10(np.sum(reference.astype(np.float64) ** 2) / err))


def vocoded_per_heard(voice: VoiceConfig, settings: ResolvedSynthesis, frames: int) -> float:
    """Frames in the vocoder's windows per frame of a ``frames``-long sentence, cut as streaming cuts it."""
    chunks = ChunkVocoder(voice, settings, 1, Clock(voice.audio.sample_rate))
    progress = Progress(Sentence(0, "", ()), None, frames, True)  # type: ignore[arg-type]  # windows() reads no audio
    return sum(w.hi - w.lo for w in chunks.windows(progress)) / frames


def sweep(voice: Voice, text: str, steps: int, chunks: Sequence[int] = (16, 32, 64),
          contexts: Sequence[int] = (0, 2, 4, 8, 16, 32), seed: int = 0, rate: float | None = None
          ) -> list[SeamPoint]:
    """Measure the (chunk, context) grid; the first sentence of ``text`` only.

    ``rate``: the speaking rate; chunks and context then count time-scaled frames.
    """
    whole = concatenate(voice.synthesize(text, SynthesisConfig(seed=seed, force_steps=steps, whole=True,
                                                               sentence_pause_s=0.0, rate=rate)))
    grid = [SynthesisConfig(seed=seed, force_steps=steps, sentence_pause_s=0.0, chunk_frames=chunk,
                            first_chunk_frames=chunk, context_frames=ctx, rate=rate)
            for chunk in chunks for ctx in contexts]
    grid.append(SynthesisConfig(seed=seed, force_steps=steps, sentence_pause_s=0.0, rate=rate))  # the voice's own
    points = []
    for config in grid:
        for _ in voice.synthesize(text, config):  # warm-up: first use of a shape is not what we measure
            pass
        start = time.perf_counter()
        out, first = [], None
        for c in voice.synthesize(text, config):
            first = first if first is not None else time.perf_counter() - start
            out.append(c)
        resolved = config.resolve(voice.config)
        grows = resolved.max_chunk_frames > resolved.chunk_frames
        heard = sum(len(c.samples) for c in out if c.sentence_index == 0) // voice.config.audio.hop_length
        points.append(SeamPoint(resolved.chunk_frames, resolved.context_frames, snr_db(whole, concatenate(out)),
                                first or 0.0, len(out), resolved.max_chunk_frames if grows else 0,
                                vocoded_per_heard(voice.config, resolved, max(heard, 1))))
    return points


def format_points(points: Sequence[SeamPoint]) -> str:
    lines = ["| chunk frames | context frames | SNR streamed vs whole (dB) | time to first audio (ms) | chunks "
             "| frames vocoded per frame heard |",
             "| --- | --- | --- | --- | --- | --- |"]
    for p in points:
        chunk = f"{p.chunk_frames} doubling to {p.max_chunk_frames} (voice default)" if p.max_chunk_frames else \
            str(p.chunk_frames)
        lines.append(f"| {chunk} | {p.context_frames} | {p.snr_db:.1f} | "
                     f"{1e3 * p.time_to_first_audio_s:.1f} | {p.chunks} | {p.vocoded_per_heard:.2f} |")
    return "\n".join(lines)
