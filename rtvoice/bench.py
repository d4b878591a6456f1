"""Benchmarks: time to first audio, latency, RTF, decoder µs/step, WaveGlow µs per audio second.

Also the mean number of chunks per vocoder call (vocoder batching, issue #7), which
``batching.vocoder_max = 1`` turns off for a side-by-side comparison.

Runs the real streaming pipeline (``Voice.stream``), with the decoder's and vocoder's
engine calls timed by a thin wrapper (host wall time of each call: the GPU backends
synchronize once per decoder batch and once per chunk, so the figures include GPU time).
``compare_torch`` runs rtvoice's PyTorch reference models on the same weights in the same
process, for a side-by-side ratio (build extra).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .config import SynthesisConfig
from .engine.protocol import Engine, Utterance, VocodeItem
from .voice import Voice

if TYPE_CHECKING:
    from .pipeline import Workers


@dataclass(frozen=True)
class Call:
    """One engine call on the host clock (``time.perf_counter``): what ran, from when to when."""

    part: str
    """``encoder`` (``open_utterance``), ``decoder`` or ``vocoder``."""
    start: float
    end: float


PARTS = ("encoder", "decoder", "vocoder")


def first_audio_parts(calls: Sequence[Call], start: float, first: float) -> dict[str, float]:
    """Where one stream's time to first audio went, in seconds, from the engine calls before it.

    Why: a first-audio figure alone does not say what to make faster (issue 26). Each part is
    the host time its calls spent between the request (``start``) and the first chunk
    (``first``), clipped to that span, with the number of calls; ``outside`` is the time no
    engine call ran (text preparation, thread hand-offs, cutting and cross-fading). The
    decoder and vocoder run on their own threads, so parts may overlap: ``outside`` comes from
    the union of the calls, not from their sum. Meaningful for one stream at a time only.
    """
    spans = sorted((max(c.start, start), min(c.end, first), c.part) for c in calls
                   if c.end > start and c.start < first)
    out: dict[str, float] = {}
    for part in PARTS:
        mine = [b - a for a, b, p in spans if p == part]
        out[f"{part}_s"], out[f"{part}_calls"] = sum(mine), len(mine)
    busy, reach = 0.0, start
    for a, b, _ in spans:  # length of the union of the spans, sorted by start
        if b > reach:
            busy += b - max(a, reach)
            reach = b
    out["outside_s"] = max(first - start - busy, 0.0)
    return out


class TimedEngine:
    """Wraps an engine to add up the host time spent in decode() and vocode(), and count batches."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.config, self.name, self.device = inner.config, inner.name, inner.device
        self.decode_s = 0.0
        self.decode_steps = 0
        self.vocode_s = 0.0
        self.vocode_samples = 0
        self.vocode_calls = 0
        self.vocode_chunks = 0
        self.calls: list[Call] = []
        """Every engine call of the round, for :func:`first_audio_parts`."""

    def reset(self) -> None:
        """Zero the counters (between benchmark rounds)."""
        self.decode_s = self.vocode_s = 0.0
        self.decode_steps = self.vocode_samples = self.vocode_calls = self.vocode_chunks = 0
        self.calls = []

    def open_utterance(self, ids: Sequence[int], max_steps: int) -> Utterance:
        t = time.perf_counter()
        utterance = self.inner.open_utterance(ids, max_steps)
        self.calls.append(Call("encoder", t, time.perf_counter()))
        return _TimedUtterance(self, utterance)

    def decode_batch(self, items: Sequence[tuple[Utterance, npt.NDArray[np.float32]]]
                     ) -> list[npt.NDArray[np.float32]]:
        """Times the whole batch; per-step figures then count each utterance's steps."""
        inner = [(u._inner if isinstance(u, _TimedUtterance) else u, m) for u, m in items]
        t = time.perf_counter()
        gates = self.inner.decode_batch(inner)
        self.calls.append(Call("decoder", t, end := time.perf_counter()))
        self.decode_s += end - t
        self.decode_steps += sum(len(m) for _, m in items)
        return gates

    def vocode_batch(self, items: Sequence[VocodeItem]) -> list[npt.NDArray[np.float32]]:
        """Times the whole batch; per-second figures then count every chunk's audio."""
        inner = [replace(i, utterance=i.utterance._inner) if isinstance(i.utterance, _TimedUtterance) else i
                 for i in items]
        t = time.perf_counter()
        audio = self.inner.vocode_batch(inner)
        self.calls.append(Call("vocoder", t, end := time.perf_counter()))
        self.vocode_s += end - t
        self.vocode_samples += sum(len(a) for a in audio)
        self.vocode_calls += 1
        self.vocode_chunks += len(items)
        return audio

    def close(self) -> None:
        self.inner.close()


class _TimedUtterance:
    def __init__(self, owner: TimedEngine, inner: Utterance) -> None:
        self._owner, self._inner = owner, inner

    @property
    def frames(self) -> int:
        return self._inner.frames

    def decode(self, prenet_masks: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        t = time.perf_counter()
        gates = self._inner.decode(prenet_masks)
        self._owner.calls.append(Call("decoder", t, end := time.perf_counter()))
        self._owner.decode_s += end - t
        self._owner.decode_steps += len(prenet_masks)
        return gates

    def mel(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        return self._inner.mel(start, stop)

    def vocode(self, start: int, stop: int, limit: int, noise: npt.NDArray[np.float32],
               mel: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
        t = time.perf_counter()
        audio = self._inner.vocode(start, stop, limit, noise, mel)
        self._owner.calls.append(Call("vocoder", t, end := time.perf_counter()))
        self._owner.vocode_s += end - t
        self._owner.vocode_samples += len(audio)
        self._owner.vocode_calls += 1
        self._owner.vocode_chunks += 1
        return audio

    def close(self) -> None:
        self._inner.close()


@dataclass(frozen=True)
class RunResult:
    time_to_first_audio_s: float
    latency_s: float
    audio_s: float
    decoder_steps: int
    mel_frames: int
    """Frames heard: ``decoder_steps`` times the voice's frames per step, less any overshoot."""
    decoder_us_per_step: float
    waveglow_us_per_audio_s: float
    vocoder_batch_mean: float
    """Chunks per vocoder call, over the round this run belongs to (1.0: nothing batched)."""
    first_audio_parts: dict[str, float] | None = None
    """:func:`first_audio_parts` of this run; ``None`` when streams ran concurrently."""

    @property
    def rtf(self) -> float:
        return self.audio_s / self.latency_s


@dataclass
class BenchReport:
    backend: str
    device: str
    gpu: str
    voice: str
    text_chars: int
    concurrency: int
    vocoder_batch: int
    """The most chunks one vocoder call could take (``BatchingConfig.vocoder_max``)."""
    runs: list[RunResult] = field(default_factory=list)
    gpu_memory_used_bytes: int | None = None
    torch: dict[str, float] | None = None
    batching: str = ""
    """GPU engines' decoder batching: max rows and CUDA graphs on or off."""

    def summary(self) -> dict[str, Any]:
        def stats(values: list[float]) -> dict[str, float]:
            """Times: higher is slower, so the slow tail is p99 (and max)."""
            return {"median": statistics.median(values), "p99": float(np.percentile(values, 99)),
                    "min": min(values), "max": max(values)}

        def speed_stats(values: list[float]) -> dict[str, float]:
            """Real-time factors: higher is faster, so the slow tail is p1 (and min), not p99."""
            return {"median": statistics.median(values), "p1": float(np.percentile(values, 1)),
                    "min": min(values), "max": max(values)}

        out: dict[str, Any] = {
            "backend": self.backend, "device": self.device, "gpu": self.gpu, "voice": self.voice,
            "text_chars": self.text_chars, "concurrency": self.concurrency, "vocoder_batch": self.vocoder_batch,
            "runs": len(self.runs),
            "decoder_steps": self.runs[0].decoder_steps if self.runs else 0,
            "mel_frames": self.runs[0].mel_frames if self.runs else 0,
            "audio_s": self.runs[0].audio_s if self.runs else 0.0,
            "time_to_first_audio_s": stats([r.time_to_first_audio_s for r in self.runs]),
            "latency_s": stats([r.latency_s for r in self.runs]),
            "rtf": speed_stats([r.rtf for r in self.runs]),
            "decoder_us_per_step": stats([r.decoder_us_per_step for r in self.runs]),
            "waveglow_us_per_audio_s": stats([r.waveglow_us_per_audio_s for r in self.runs]),
            "vocoder_batch_mean": stats([r.vocoder_batch_mean for r in self.runs]),
            "gpu_memory_used_bytes": self.gpu_memory_used_bytes,
            "batching": self.batching,
        }
        parts = [r.first_audio_parts for r in self.runs if r.first_audio_parts is not None]
        if parts:  # medians part by part: they need not add up to the median first audio
            out["first_audio_parts"] = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
        if self.torch is not None:
            out["torch"] = self.torch
            out["speedup_vs_torch"] = self.torch["latency_s"] / out["latency_s"]["median"]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary(), "runs": [asdict(r) | {"rtf": r.rtf} for r in self.runs]}


async def _one(workers: Workers, engine: TimedEngine, text: str, config: SynthesisConfig,
               ) -> tuple[float, float, float, int]:
    """One stream: its start and first-chunk times on the host clock, its end, and its samples."""
    from . import pipeline

    start = time.perf_counter()
    first = None
    samples = 0
    async for chunk in pipeline.stream(engine, workers, text, config):
        first = first if first is not None else time.perf_counter()
        samples += len(chunk.samples)
    end = time.perf_counter()
    return start, first if first is not None else end, end, samples


def run_bench(voice: Voice, text: str, *, steps: int | None, runs: int, warmup: int, concurrency: int = 1,
              chunk_frames: int | None = None, progress: Callable[[int, int], None] | None = None) -> BenchReport:
    """Warm up, then time ``runs`` rounds of ``concurrency`` simultaneous streams.

    Batching follows the voice's ``batching`` settings (``Voice.load(batching=...)``
    overrides them, as ``rtvoice bench --max-batch/--cuda-graphs/--vocoder-batch`` do).
    """
    from . import pipeline

    engine = TimedEngine(voice.engine)
    batching = voice.config.batching
    workers = pipeline.Workers(voice.config.name, batching)
    config = SynthesisConfig(force_steps=steps, chunk_frames=chunk_frames, sentence_pause_s=0.0)
    report = BenchReport(voice.choice.backend, voice.choice.device, _gpu_name(voice), voice.config.name,
                         len(text), concurrency, batching.vocoder_max)
    b = batching
    if voice.choice.device.startswith("cuda"):
        report.batching = (f"up to {min(b.max_batch, b.max_rows)} sentences per step, "
                           f"CUDA graphs {'on' if b.cuda_graphs else 'off'}")

    async def rounds() -> None:
        for i in range(warmup + runs):
            engine.reset()
            results = await asyncio.gather(*(_one(workers, engine, text, config) for _ in range(concurrency)))
            if i >= warmup:
                for start, first, end, samples in results:
                    audio_s = samples / voice.sample_rate
                    report.runs.append(RunResult(
                        first - start, end - start, audio_s, engine.decode_steps // concurrency,
                        samples // voice.config.audio.hop_length,
                        1e6 * engine.decode_s / max(engine.decode_steps, 1),
                        1e6 * engine.vocode_s / max(engine.vocode_samples / voice.sample_rate, 1e-9),
                        engine.vocode_chunks / max(engine.vocode_calls, 1),
                        first_audio_parts(engine.calls, start, first) if concurrency == 1 else None))
            if progress is not None:
                progress(i + 1, warmup + runs)

    try:
        asyncio.run(rounds())
    finally:
        workers.close()
    report.gpu_memory_used_bytes = _gpu_memory(voice)
    return report


def _gpu_name(voice: Voice) -> str:
    if not voice.choice.device.startswith("cuda"):
        return "none"
    from .cuda import get_device_info

    return get_device_info(int(voice.choice.device.split(":")[1])).name


def _gpu_memory(voice: Voice) -> int | None:
    if not voice.choice.device.startswith("cuda"):
        return None
    from .cuda import used_bytes

    return used_bytes()


def format_table(summary: dict[str, Any]) -> str:
    """A table for people; ``--json`` gives the same numbers for machines."""
    rows = [
        ("backend / device", f"{summary['backend']} on {summary['device']}"),
        ("gpu", summary["gpu"]),
        ("voice / text", f"{summary['voice']}, {summary['text_chars']} chars, "
                         f"{summary['decoder_steps']} decoder steps ({summary['mel_frames']} mel frames), "
                         f"{summary['audio_s']:.2f} s audio"),
        ("runs x concurrency", f"{summary['runs'] // max(summary['concurrency'], 1)} x {summary['concurrency']}"),
    ]
    if summary.get("batching"):
        rows.append(("decoder batching", summary["batching"]))
    for key, unit, scale in (("time_to_first_audio_s", "ms", 1e3), ("latency_s", "ms", 1e3),
                             ("decoder_us_per_step", "µs", 1.0), ("waveglow_us_per_audio_s", "µs", 1.0)):
        s = summary[key]
        rows.append((key, f"median {s['median'] * scale:,.2f} {unit}   p99 {s['p99'] * scale:,.2f} {unit}   "
                          f"worst {s['max'] * scale:,.2f} {unit}"))
    r = summary["rtf"]  # higher is faster: its slow tail is the low end
    rows.insert(-2, ("rtf", f"median {r['median']:,.2f}x   p1 {r['p1']:,.2f}x   worst {r['min']:,.2f}x "
                            "(audio seconds per second; slow tail)"))
    if summary.get("first_audio_parts"):
        p = summary["first_audio_parts"]
        rows.append(("first audio, its parts", "   ".join(
            f"{k} {p[f'{k}_s'] * 1e3:,.2f} ms ({p[f'{k}_calls']:.0f} calls)" for k in PARTS)
            + f"   outside engine calls {p['outside_s'] * 1e3:,.2f} ms (medians)"))
    v = summary["vocoder_batch_mean"]
    rows.append(("vocoder chunks per call", f"median {v['median']:.2f}   max {v['max']:.2f}   "
                                            f"(limit {summary['vocoder_batch']})"))
    if summary.get("gpu_memory_used_bytes") is not None:
        rows.append(("gpu memory used", f"{summary['gpu_memory_used_bytes'] / 2**20:,.0f} MiB"))
    if summary.get("torch"):
        t = summary["torch"]
        rows.append(("pytorch reference", f"latency {t['latency_s'] * 1e3:,.1f} ms, "
                                          f"decoder {t['decoder_us_per_step']:,.1f} µs/step, RTF {t['rtf']:.2f} "
                                          f"({t['precision']}, same weights, same process)"))
        rows.append(("speedup vs pytorch", f"{summary['speedup_vs_torch']:.2f}x (median latency)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
