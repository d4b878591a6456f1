"""Audio value objects and the one place audio becomes WAV bytes.

Every consumer (WAV writer, player, HTTP, WebSocket, MQTT, Wyoming) reads the same few
properties of :class:`AudioChunk`; there is exactly one "chunks -> WAV" function.
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Timing:
    """How fast synthesis is going, as seen when a chunk was yielded."""

    time_to_first_audio_s: float
    """Seconds from the request to the first audio chunk of this synthesis."""
    elapsed_s: float
    """Seconds from the request to this chunk."""
    audio_s: float
    """Seconds of audio yielded so far, this chunk included."""

    @property
    def rtf(self) -> float:
        """Real-time factor so far: seconds of audio per second of compute (higher is faster)."""
        return self.audio_s / self.elapsed_s if self.elapsed_s > 0 else float("inf")


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """A piece of synthesized audio. ``samples`` is a fresh float32 array in [-1, 1] (ours to give)."""

    samples: Float32Array
    sample_rate: int
    sentence_index: int
    """Which sentence of the request this chunk belongs to."""
    offset_samples: int
    """Position of the first sample within the whole request's audio."""
    is_last: bool
    """True on the final chunk of the request."""
    timing: Timing
    truncated: bool = False
    """True on the last chunk of a sentence the decoder's step limit cut short (its gate never
    fired, so its end may be unspoken). Servers count it; the core also logs a warning."""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @cached_property
    def audio_int16(self) -> npt.NDArray[np.int16]:
        """Samples as 16-bit PCM, clipped."""
        return to_int16(self.samples)

    @cached_property
    def audio_int16_bytes(self) -> bytes:
        """Little-endian 16-bit mono PCM, as WAV, Wyoming and OpenAI's ``pcm`` format carry it."""
        return self.audio_int16.astype("<i2").tobytes()


def to_int16(samples: Float32Array) -> npt.NDArray[np.int16]:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def concatenate(chunks: Iterable[AudioChunk]) -> Float32Array:
    """Join chunks into one float32 array (for tests and whole-file writers)."""
    parts = [c.samples for c in chunks]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def wav_header(sample_rate: int, n_samples: int | None = None) -> bytes:
    """A 44-byte mono 16-bit WAV header.

    With ``n_samples=None`` the sizes are set to the maximum, the usual convention for a WAV
    streamed before its length is known.
    """
    data_bytes = 0xFFFFFFFF - 36 if n_samples is None else 2 * n_samples
    return b"RIFF" + struct.pack(
        "<I4s4sIHHIIHH4sI", min(36 + data_bytes, 0xFFFFFFFF), b"WAVE", b"fmt ", 16, 1, 1,
        sample_rate, 2 * sample_rate, 2, 16, b"data", data_bytes,
    )


def write_wav(target: str | Path | BinaryIO, chunks: Iterable[AudioChunk], sample_rate: int) -> int:
    """Write chunks as a 16-bit mono WAV as they arrive; returns the number of samples.

    Streams: each chunk is written when it is yielded, so a long text never sits whole in
    memory. ``sample_rate`` is needed up front for the header.
    """
    own = not hasattr(target, "write")
    handle: BinaryIO = open(target, "wb") if own else target  # type: ignore[arg-type,assignment]
    try:
        with wave.open(handle, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(sample_rate)
            n = 0
            for chunk in chunks:
                if chunk.sample_rate != sample_rate:
                    raise ValueError(f"chunk at {chunk.sample_rate} Hz in a {sample_rate} Hz WAV")
                wav.writeframes(chunk.audio_int16_bytes)
                n += len(chunk.samples)
        return n
    finally:
        if own:
            handle.close()


def wav_bytes(samples: Float32Array, sample_rate: int) -> bytes:
    """A complete in-memory WAV of ``samples`` (for MQTT/Hermes payloads)."""
    return wav_header(sample_rate, len(samples)) + to_int16(samples).astype("<i2").tobytes()


def read_wav(source: str | Path | bytes) -> tuple[Float32Array, int]:
    """Read a 16-bit mono WAV -> (float32 samples, sample rate); used by tests and tools."""
    handle = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    with handle, wave.open(handle, "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError("expected 16-bit mono WAV")
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return (data.astype(np.float32) / 32767.0), wav.getframerate()
