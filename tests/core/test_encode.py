"""rtvoice.encode: PyAV's encoders as rtvoice streams them (issue 24 part 4)."""

from __future__ import annotations

import io
import threading

import av
import numpy as np
import pytest

from rtvoice.encode import FORMATS, Encoder, format_for_path
from rtvoice.errors import RtvoiceError

RATE = 22050


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize("name", ["mp3", "opus", "aac", "flac", "m4a"])
def test_bytes_come_while_encoding_and_decode_to_the_same_length(name: str) -> None:
    audio = tone(2.0)
    with Encoder(FORMATS[name], RATE) as encoder:
        parts = [encoder.encode(audio[i:i + 4410]) for i in range(0, len(audio), 4410)]
        parts.append(encoder.finish())
    if FORMATS[name].streams:
        assert sum(len(p) > 0 for p in parts[:-1]) >= 5  # streamed: most chunks already give bytes
    with av.open(io.BytesIO(b"".join(parts))) as container:
        frames = list(container.decode(container.streams.audio[0]))
    seconds = sum(f.samples for f in frames) / frames[0].sample_rate
    assert 2.0 <= seconds <= 2.0 + 0.1


def test_pcm_and_wav_need_no_ffmpeg_and_carry_the_samples() -> None:
    audio = tone(0.1)
    with Encoder(FORMATS["pcm"], RATE) as pcm, Encoder(FORMATS["wav"], RATE) as wav:
        raw = pcm.encode(audio) + pcm.finish()
        streamed = wav.encode(audio) + wav.finish()
    assert len(raw) == 2 * len(audio) and streamed[44:] == raw and streamed[:4] == b"RIFF"


def test_close_from_another_thread_waits_for_the_chunk_being_encoded() -> None:
    """The server encodes in a worker thread; a client that leaves closes the encoder from the loop."""
    encoder = Encoder(FORMATS["mp3"], RATE)
    big = tone(20.0)
    outcome: list[object] = []
    started = threading.Event()

    def work() -> None:
        started.set()
        try:
            outcome.append(len(encoder.encode(big)))
        except RtvoiceError as exc:  # closed before it got the lock
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    started.wait()
    encoder.close()
    thread.join(timeout=30)
    assert len(outcome) == 1
    with pytest.raises(RtvoiceError, match="closed"):
        encoder.encode(big[:100])


def test_format_for_path() -> None:
    assert format_for_path("a.MP3").name == "mp3" and format_for_path("b.ogg").name == "opus"
    assert format_for_path("/dev/stdout").name == "wav" and format_for_path("x.wav", "flac").name == "flac"
    with pytest.raises(RtvoiceError, match="'.wma'"):
        format_for_path("x.wma")
