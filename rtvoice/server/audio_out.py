"""Audio as the server sends it: response formats, and speed/sample-rate conversion.

A synthesis yields :class:`~rtvoice.audio.AudioChunk` at the voice's rate. Each protocol
sends 16-bit little-endian mono PCM; :class:`PcmConverter` turns chunks into those bytes,
passing ``chunk.audio_int16_bytes`` through untouched when no conversion is asked for, and
otherwise resampling with soxr's streaming resampler (state carried across chunks, so
there are no clicks at the seams).

``speed`` is done by resampling: audio made at rate ``r`` is treated as if it were at
``r * speed`` and converted back to the output rate. That is cheap and exact in length,
but it shifts the pitch with the tempo (2.0 sounds an octave higher).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from ..audio import AudioChunk, to_int16, wav_header
from ..encode import FORMATS as ENCODED

OPENAI_PCM_RATE: Final = 24000
"""OpenAI's ``pcm`` format is raw 16-bit little-endian mono at 24 kHz; ours is too."""


@dataclass(frozen=True)
class ResponseFormat:
    """One ``response_format`` of the speech endpoint."""

    name: str
    media_type: str
    sample_rate: int | None
    """Fixed output rate, or ``None`` for the voice's own rate."""
    header: Callable[[int], bytes]
    """Bytes sent before the audio, given the output sample rate."""
    encoder: str | None = None
    """Name of the :data:`rtvoice.encode.FORMATS` entry the PCM goes through (mp3, opus, aac, flac)."""


def _no_header(sample_rate: int) -> bytes:
    return b""


def _streaming_wav_header(sample_rate: int) -> bytes:
    return wav_header(sample_rate, None)  # sizes unknown: the streaming convention


#: The formats the speech endpoint streams: all six of OpenAI's. ``mp3``, ``opus`` (Ogg),
#: ``aac`` (ADTS) and ``flac`` are encoded by PyAV as the audio comes (:mod:`rtvoice.encode`).
FORMATS: Final[dict[str, ResponseFormat]] = {
    "wav": ResponseFormat("wav", "audio/wav", None, _streaming_wav_header),
    "pcm": ResponseFormat("pcm", "audio/pcm", OPENAI_PCM_RATE, _no_header),
    **{name: ResponseFormat(name, ENCODED[name].media_type, None, _no_header, name)
       for name in ("mp3", "opus", "aac", "flac")},
}
OPENAI_FORMATS: Final = ("mp3", "opus", "aac", "flac", "wav", "pcm")


class PcmConverter:
    """Turns a request's chunks, in order, into 16-bit mono PCM at ``out_rate`` and ``speed``.

    One converter per synthesis: it carries the resampler's state from chunk to chunk.
    """

    def __init__(self, in_rate: int, out_rate: int, speed: float = 1.0) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.speed = speed
        self._resampler = None
        if speed != 1.0 or in_rate != out_rate:
            import soxr

            self._resampler = soxr.ResampleStream(in_rate * speed, out_rate, 1, dtype="float32", quality="HQ")

    def convert(self, chunk: AudioChunk) -> bytes:
        """Return ``chunk`` as PCM bytes; the last chunk (``is_last``) flushes the resampler."""
        if self._resampler is None:
            return chunk.audio_int16_bytes
        return self.convert_samples(chunk.samples, last=chunk.is_last)

    def convert_samples(self, samples: np.ndarray, *, last: bool = False) -> bytes:
        """Return float samples at the input rate as PCM bytes (silence, for example)."""
        if self._resampler is None:
            return to_int16(samples.astype(np.float32, copy=False)).astype("<i2").tobytes()
        out = self._resampler.resample_chunk(samples.astype(np.float32, copy=False), last=last)
        return to_int16(out).astype("<i2").tobytes()


def silence_pcm(seconds: float, sample_rate: int) -> bytes:
    """``seconds`` of 16-bit PCM silence at ``sample_rate``."""
    return bytes(2 * max(0, int(seconds * sample_rate)))  # int(), as the synthesizer cuts its pauses
