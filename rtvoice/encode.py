"""Compressed audio formats (mp3, Ogg Opus, AAC, FLAC) through PyAV, as the audio is made.

OpenAI's speech API offers mp3, opus, aac, flac, wav and pcm. WAV and raw PCM are a header
and 16-bit samples (:mod:`rtvoice.audio`); the others need a real encoder, and PyAV's
wheels carry FFmpeg with libmp3lame, libopus, its native AAC and FLAC. We never write an
encoder ourselves.

An :class:`Encoder` takes float chunks and gives back whatever bytes the muxer has ready,
so a file or an HTTP response grows while synthesis runs (Ogg pages are cut every
``OGG_PAGE_DURATION_US`` so Opus streams too). MP4/M4A needs to seek back to write its
index, so an ``.m4a`` encoder hands everything over at :meth:`Encoder.finish`.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np

from .audio import Float32Array, to_int16, wav_header
from .errors import RtvoiceError

OGG_PAGE_DURATION_US: Final = 100_000
"""Ogg cuts a page (and so lets bytes out) at least every 100 ms instead of its default 1 s."""
OPUS_RATE: Final = 24_000
"""libopus takes 8, 12, 16, 24 or 48 kHz; 24 kHz keeps all of a 22.05 kHz voice's band."""


@dataclass(frozen=True)
class AudioFormat:
    """One output format: how it is named, sent and encoded."""

    name: str
    """OpenAI's ``response_format`` name (``m4a`` is ours: AAC in MP4, files only)."""
    media_type: str
    extensions: tuple[str, ...]
    """File extensions ``rtvoice say --out`` picks this format by."""
    container: str | None = None
    """PyAV (FFmpeg) muxer; ``None``: WAV or raw PCM, written by rtvoice itself."""
    codec: str | None = None
    sample_rate: int | None = None
    """Rate the encoder runs at; ``None`` keeps the voice's."""
    streams: bool = True
    """False when the muxer must seek back (MP4): the bytes come at the end."""


FORMATS: Final[dict[str, AudioFormat]] = {f.name: f for f in (
    AudioFormat("wav", "audio/wav", (".wav", ".wave")),
    AudioFormat("pcm", "audio/pcm", (".pcm", ".raw")),
    AudioFormat("mp3", "audio/mpeg", (".mp3",), "mp3", "libmp3lame"),
    AudioFormat("opus", "audio/ogg", (".opus", ".ogg", ".oga"), "ogg", "libopus", OPUS_RATE),
    AudioFormat("aac", "audio/aac", (".aac",), "adts", "aac"),
    AudioFormat("flac", "audio/flac", (".flac",), "flac", "flac"),
    AudioFormat("m4a", "audio/mp4", (".m4a", ".mp4"), "ipod", "aac", streams=False),
)}


def format_for_path(path: str | Path, name: str | None = None) -> AudioFormat:
    """The format a file name asks for, by its extension (``.mp3``, ``.ogg``, ``.flac``...).

    Args:
        path: The file; no extension at all (``/dev/stdout``) means WAV.
        name: A format named outright (``--format``), which wins over the extension.

    Raises:
        RtvoiceError: the extension is none of :data:`FORMATS`'.
    """
    if name is not None:
        if name not in FORMATS:
            raise RtvoiceError(f"Unknown audio format {name[:40]!r}. Hint: use one of {', '.join(FORMATS)}.")
        return FORMATS[name]
    suffix = Path(path).suffix.lower()
    if not suffix:
        return FORMATS["wav"]
    for fmt in FORMATS.values():
        if suffix in fmt.extensions:
            return fmt
    known = ", ".join(e for f in FORMATS.values() for e in f.extensions)
    raise RtvoiceError(f"Cannot tell the audio format of {str(path)[:200]!r} from its extension "
                       f"{suffix or '(none)'!r}. Hint: end the file name in one of {known}.")


class Encoder:
    """Encodes one stream of float chunks into one format, handing bytes back as they are ready.

    Use as a context manager (the FFmpeg muxer is closed on exit); call :meth:`finish` once
    for the last bytes. ``wav`` gets a streaming header (sizes unknown) and ``pcm`` none.

    Threads: one caller at a time may encode (the server does it in a worker thread);
    :meth:`close` may come from another thread (a client gone mid-chunk) and waits for the
    chunk being encoded, so FFmpeg's context is never freed under it.
    """

    def __init__(self, fmt: AudioFormat, sample_rate: int) -> None:
        self.format = fmt
        self.sample_rate = sample_rate
        self._header = wav_header(sample_rate, None) if fmt.name == "wav" else b""
        self._buffer: io.BytesIO | _Sink | None = None
        self._container: Any = None
        self._stream: Any = None
        self._pts = 0
        self._lock = threading.Lock()
        if fmt.container is None:
            return
        import av  # only here: WAV and PCM never need FFmpeg

        self._buffer = io.BytesIO() if not fmt.streams else _Sink()
        options = {"page_duration": str(OGG_PAGE_DURATION_US)} if fmt.container == "ogg" else {}
        try:
            self._container = av.open(self._buffer, mode="w", format=fmt.container, options=options)
            self._stream = self._container.add_stream(fmt.codec, rate=fmt.sample_rate or sample_rate, layout="mono")
        except (av.FFmpegError, ValueError) as exc:
            self.close()
            raise RtvoiceError(f"This PyAV build cannot encode {fmt.name} ({fmt.codec}): {exc}") from exc

    def encode(self, samples: Float32Array) -> bytes:
        """Encode float samples in [-1, 1] at ``sample_rate``; returns the bytes ready so far."""
        pcm = to_int16(np.asarray(samples, dtype=np.float32))
        if self.format.container is None:
            out, self._header = self._header + pcm.astype("<i2").tobytes(), b""
            return out
        return self._encode_int16(pcm)

    def encode_pcm(self, data: bytes) -> bytes:
        """Encode 16-bit little-endian mono PCM (what the server's converters give)."""
        if self.format.container is None:
            out, self._header = self._header + data, b""
            return out
        return self._encode_int16(np.frombuffer(data, dtype="<i2").astype(np.int16))

    def _encode_int16(self, pcm: np.ndarray[Any, np.dtype[np.int16]]) -> bytes:
        if len(pcm) == 0:
            return b""
        with self._lock:
            return self._encode_locked(pcm)

    def _encode_locked(self, pcm: np.ndarray[Any, np.dtype[np.int16]]) -> bytes:
        if self._container is None:
            raise RtvoiceError(f"The {self.format.name} encoder is closed.")
        import av

        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        self._pts += len(pcm)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._take()

    def finish(self) -> bytes:
        """Flush the encoder and write the trailer; the last bytes of the file."""
        if self.format.container is None:
            out, self._header = self._header, b""
            return out
        with self._lock:
            return self._finish_locked()

    def _finish_locked(self) -> bytes:
        if self._container is None:
            raise RtvoiceError(f"The {self.format.name} encoder is closed.")
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None
        if isinstance(self._buffer, io.BytesIO):
            return self._buffer.getvalue()
        return self._take()

    def _take(self) -> bytes:
        return self._buffer.take() if isinstance(self._buffer, _Sink) else b""

    def close(self) -> None:
        """Release FFmpeg's muxer (idempotent); bytes not yet taken are dropped."""
        with self._lock:
            if self._container is not None:
                container, self._container = self._container, None
                container.close()

    def __enter__(self) -> Encoder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _Sink:
    """A write-only file for FFmpeg: bytes collect here until :meth:`take` (no seek: a stream)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out
