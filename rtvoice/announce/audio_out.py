"""An announcement's audio on its way to MQTT: one WAV message, or numbered WAV parts.

One WAV per announcement is what most consumers want, but a 5000-character announcement
is over four minutes of audio: an 11 MB message that the daemon holds (several times over,
as float samples, WAV bytes and the MQTT packet) until the broker has it. So a WAV
message is capped (``max_wav_bytes``); longer native audio, or all of it with
``audio_format="parts"``, goes out as it is synthesized in parts of ``part_bytes``:

- ``<prefix>audio/<id>/<n>`` (n = 0, 1, ...): a complete 16-bit mono WAV each; their
  samples in order are the announcement's audio;
- ``<prefix>audio/<id>/end``: JSON ``{"id", "parts", "samples", "sample_rate",
  "duration_s", "complete"}`` after the last part (``complete`` is false when the
  announcement was stopped or failed part-way).

Hermes ``playBytes`` is one WAV per request by protocol, so Hermes audio is never split
(its length is bounded by the voice's text limit).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import Float32Array, to_int16, wav_header
from .config import AnnouncerConfig, AudioFormat
from .events import Events
from .messages import Announcement

log = logging.getLogger("rtvoice.announce")

WAV_HEADER_BYTES = 44


@dataclass(frozen=True)
class AudioPublishing:
    """How announcement audio is published (from :class:`AnnouncerConfig`)."""

    format: AudioFormat = "wav"
    max_wav_bytes: int = 8 * 1024 * 1024
    part_bytes: int = 256 * 1024

    @classmethod
    def of(cls, config: AnnouncerConfig) -> AudioPublishing:
        return cls(config.audio_format, config.max_wav_bytes, min(config.audio_part_bytes, config.max_wav_bytes))


class AudioOut:
    """Collects (or streams out) one announcement's audio as 16-bit PCM.

    Args:
        events: Where parts and the final WAV go.
        item: The announcement.
        sample_rate: The voice's sample rate.
        publishing: Format and sizes.
    """

    def __init__(self, events: Events, item: Announcement, sample_rate: int, publishing: AudioPublishing) -> None:
        self._events = events
        self._item = item
        self._rate = sample_rate
        self._volume = np.float32(item.volume)
        self._hermes = item.hermes is not None
        self._max_wav_bytes = publishing.max_wav_bytes
        self._part_bytes = publishing.part_bytes - publishing.part_bytes % 2  # whole samples
        self._parts = publishing.format == "parts" and not self._hermes
        self._pending = bytearray()
        self._sent_parts = 0
        self._sent_bytes = 0
        self.samples = 0
        self._ended = False

    def add(self, samples: Float32Array) -> None:
        """Take a chunk's samples (volume applied now); sends the parts that are full."""
        pcm = to_int16(samples * self._volume).astype("<i2").tobytes()
        self._pending += pcm
        self.samples += len(samples)
        if not self._parts and not self._hermes and len(self._pending) + WAV_HEADER_BYTES > self._max_wav_bytes:
            log.info("announcement %s is longer than one %d-byte WAV message: published in parts",
                     self._item.id, self._max_wav_bytes)
            self._parts = True
        if self._parts:
            self._send_parts(final=False)

    def _send_parts(self, *, final: bool) -> None:
        while len(self._pending) >= self._part_bytes or (final and self._pending):
            data = bytes(self._pending[:self._part_bytes])
            del self._pending[:self._part_bytes]
            wav = wav_header(self._rate, len(data) // 2) + data
            self._events.audio_part(self._item, self._sent_parts, wav)
            self._sent_parts += 1
            self._sent_bytes += len(wav)

    def wav(self) -> bytes:
        """The whole audio as one WAV (not in parts mode); the kept samples are released."""
        assert not self._parts
        data, self._pending = bytes(self._pending), bytearray()
        return wav_header(self._rate, len(data) // 2) + data

    def finish(self) -> dict[str, Any]:
        """Publish what is left (one WAV, or the last part and the end marker).

        Returns:
            The ``audio`` field of the ``finished`` event: how and where it was published.
        """
        if self._hermes:
            raise RuntimeError("Hermes audio goes out as playBytes: use wav()")
        if not self._parts:
            wav = self.wav()
            self._events.audio(self._item, wav)
            return {"format": "wav", "bytes": len(wav)}
        self.end(complete=True)
        return {"format": "parts", "parts": self._sent_parts, "bytes": self._sent_bytes}

    def end(self, *, complete: bool) -> None:
        """In parts mode, send the rest (when complete) and the end marker, once."""
        if not self._parts or self._ended:
            return
        self._ended = True
        if complete:
            self._send_parts(final=True)
        self._pending = bytearray()
        self._events.audio_end(self._item, {
            "parts": self._sent_parts, "samples": self.samples, "sample_rate": self._rate,
            "duration_s": round(self.samples / self._rate, 4), "complete": complete})


def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps it otherwise).

    Why: after a long announcement, its megabytes of samples and WAV bytes are freed, but
    glibc raises its mmap threshold to the size of what was freed, so the next large
    buffers come from the heap, whose free space is seldom returned: the daemon's RSS
    stays at its peak. ``malloc_trim(0)`` returns it. A no-op where glibc is absent.
    """
    if _TRIM is not None:
        _TRIM(0)
