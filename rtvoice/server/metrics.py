"""Prometheus metrics of one server, in a registry of its own (no global state).

Exposed at ``GET /metrics``:

- ``rtvoice_http_requests_total{route,code}``: HTTP requests by route and status code
  (unknown paths are counted as ``route="other"``, so random paths add no series).
- ``rtvoice_syntheses_total{protocol,outcome}``: syntheses by protocol (``http``,
  ``websocket``, ``wyoming``) and outcome (``ok``; ``stopped``: cancelled, or the client went
  away; ``rejected``: unspeakable text; ``error``).
- ``rtvoice_time_to_first_audio_seconds{protocol}``: from the request (queue wait included)
  to its first audio chunk.
- ``rtvoice_realtime_factor{protocol}``: seconds of audio per second of synthesis, per
  finished synthesis (higher is faster; below 1 a listener would hear gaps).
- ``rtvoice_audio_seconds_total{protocol}``: seconds of audio sent.
- ``rtvoice_truncated_sentences_total{protocol}``: sentences the decoder's step limit cut
  short (their end may be unspoken; each is also logged as a warning).
- ``rtvoice_active_streams`` / ``rtvoice_queued_streams``: syntheses running / waiting.
- ``rtvoice_gpu_memory_used_bytes{device}`` / ``rtvoice_gpu_memory_total_bytes{device}``:
  only when a voice runs on a CUDA GPU and cuda-python is usable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import exposition as _exposition

from ..errors import RtvoiceError
from .limits import Admission

log = logging.getLogger("rtvoice.server")

CONTENT_TYPE: Final[str] = _exposition.CONTENT_TYPE_LATEST
TTFA_BUCKETS: Final = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
RTF_BUCKETS: Final = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)


class Metrics:
    """The server's counters, histograms and gauges, and their text exposition."""

    def __init__(self, admission: Admission) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter("rtvoice_http_requests", "HTTP requests by route and status code.",
                                     ["route", "code"], registry=r)
        self.syntheses = Counter("rtvoice_syntheses", "Syntheses by protocol and outcome.",
                                 ["protocol", "outcome"], registry=r)
        self.time_to_first_audio = Histogram(
            "rtvoice_time_to_first_audio_seconds", "Seconds from a request (queue wait included) to its first audio.",
            ["protocol"], buckets=TTFA_BUCKETS, registry=r)
        self.realtime_factor = Histogram(
            "rtvoice_realtime_factor", "Seconds of audio per second of synthesis, per finished synthesis.",
            ["protocol"], buckets=RTF_BUCKETS, registry=r)
        self.audio_seconds = Counter("rtvoice_audio_seconds", "Seconds of audio sent.", ["protocol"], registry=r)
        self.truncated_sentences = Counter(
            "rtvoice_truncated_sentences", "Sentences the decoder's step limit cut short.", ["protocol"], registry=r)
        active = Gauge("rtvoice_active_streams", "Syntheses running now.", registry=r)
        active.set_function(lambda: admission.active)
        queued = Gauge("rtvoice_queued_streams", "Syntheses waiting for a free slot.", registry=r)
        queued.set_function(lambda: admission.queued)
        self._cuda_devices: list[int] = []
        self._gpu_used = Gauge("rtvoice_gpu_memory_used_bytes", "GPU memory in use (all processes).",
                               ["device"], registry=r)
        self._gpu_total = Gauge("rtvoice_gpu_memory_total_bytes", "GPU memory in all.", ["device"], registry=r)

    def watch_gpus(self, indices: Iterable[int]) -> None:
        """Report the memory of these GPU indices (those the voices run on) from now on."""
        self._cuda_devices = sorted(set(indices))

    async def render(self) -> bytes:
        """The Prometheus text exposition, GPU memory read fresh."""
        for index in self._cuda_devices:
            try:
                free, total = await asyncio.to_thread(_mem_get_info, index)
            except RtvoiceError as exc:
                log.debug("no GPU memory reading for cuda:%d: %s", index, exc)
                continue
            self._gpu_used.labels(f"cuda:{index}").set(total - free)
            self._gpu_total.labels(f"cuda:{index}").set(total)
        return generate_latest(self.registry)


def _mem_get_info(index: int) -> tuple[int, int]:
    """(free, total) bytes of GPU ``index``; runs on a helper thread, never on a voice's GPU thread."""
    from ..cuda import mem_get_info, set_device

    set_device(index)
    return mem_get_info()


def cuda_indices(devices: Iterable[str]) -> list[int]:
    """The GPU indices among voice devices such as ``cpu``, ``cuda`` and ``cuda:1``."""
    out = []
    for device in devices:
        if device == "cuda":
            out.append(0)
        elif device.startswith("cuda:") and device[5:].isdigit():
            out.append(int(device[5:]))
    return out
