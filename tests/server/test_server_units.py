"""The server's small pieces alone: sentence buffer, PCM conversion, admission, framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

import numpy as np
import pytest

from rtvoice.audio import AudioChunk, Timing
from rtvoice.errors import VoiceError
from rtvoice.server.audio_out import PcmConverter, silence_pcm
from rtvoice.server.config import LimitsConfig, ServerConfig
from rtvoice.server.errors import ApiError
from rtvoice.server.http_stream import AudioStreamResponse
from rtvoice.server.incremental import SentenceBuffer
from rtvoice.server.limits import Admission
from rtvoice.server.voices import discover
from rtvoice.server.wyoming import MalformedEvent, read_event


def feed(buffer: SentenceBuffer, pieces: list[str]) -> list[str]:
    return [sentence for piece in pieces for sentence in buffer.add(piece)]


def test_sentence_buffer_hands_on_a_sentence_once_whitespace_follows_it() -> None:
    buffer = SentenceBuffer(300)
    assert feed(buffer, ["Hello", " there", "."]) == []  # "there." might go on
    assert buffer.add(" ") == ["Hello there."]
    assert feed(buffer, ["Dr", ".", " Smith paid $3", ".", "50", "!"]) == []  # neither dot ends a sentence
    assert buffer.add(" How") == ["Dr. Smith paid $3.50!"]
    assert buffer.flush() == ["How"]
    assert len(buffer) == 0 and buffer.flush() == []


def test_sentence_buffer_cuts_text_without_full_stops_at_the_sentence_limit() -> None:
    buffer = SentenceBuffer(40)
    out = feed(buffer, ["word " * 3] * 20)
    assert out and all(len(s) <= 40 for s in out)
    assert " ".join(out + buffer.flush()).split() == ["word"] * 60


def test_sentence_buffer_clear_drops_the_tail() -> None:
    buffer = SentenceBuffer(300)
    buffer.add("Half a sent")
    buffer.clear()
    assert buffer.flush() == []


def chunk(samples: np.ndarray, is_last: bool) -> AudioChunk:
    return AudioChunk(samples.astype(np.float32), 22050, 0, 0, is_last, Timing(0.1, 0.2, len(samples) / 22050))


def test_pcm_converter_passes_chunks_through_without_conversion() -> None:
    c = chunk(np.linspace(-1, 1, 1000), True)
    assert PcmConverter(22050, 22050).convert(c) is c.audio_int16_bytes


@pytest.mark.parametrize(("out_rate", "speed"), [(24000, 1.0), (22050, 2.0), (22050, 0.5), (24000, 1.5)])
def test_pcm_converter_resamples_across_chunks_to_the_exact_length(out_rate: int, speed: float) -> None:
    t = np.arange(22050) / 22050
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    converter = PcmConverter(22050, out_rate, speed)
    pieces = [converter.convert(chunk(part, i == 4)) for i, part in enumerate(np.array_split(tone, 5))]
    pcm = np.frombuffer(b"".join(pieces), "<i2").astype(np.float32) / 32767
    assert abs(len(pcm) - 22050 * out_rate / 22050 / speed) <= 2
    peak = np.abs(np.fft.rfft(pcm)).argmax() / len(pcm) * out_rate
    assert abs(peak - 220 * speed) < 3  # the tone moved with the tempo: speed is by resampling


def test_silence_pcm_length() -> None:
    assert silence_pcm(0.15, 22050) == bytes(2 * 3307)


async def test_admission_counts_clients_and_queues_syntheses() -> None:
    admission = Admission(LimitsConfig(max_streams_per_client=2, max_active_streams=1, max_queued_streams=1))
    with admission.client("a"), admission.client("a"):
        with pytest.raises(ApiError) as caught, admission.client("a"):
            pass
        assert caught.value.status == 429
        with admission.client("b"):
            assert admission.streams_of("b") == 1
    assert admission.streams_of("a") == 0
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.synthesis():
            await release.wait()

    async with asyncio.TaskGroup() as group:
        group.create_task(hold(), name="first")
        await asyncio.sleep(0)
        group.create_task(hold(), name="queued")
        await asyncio.sleep(0)
        assert (admission.active, admission.queued) == (1, 1)
        with pytest.raises(ApiError) as busy:
            async with admission.synthesis():
                pass
        assert busy.value.status == 503
        release.set()
    assert (admission.active, admission.queued) == (0, 0)
    assert await admission.wait_idle(0.1)


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1024)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_wyoming_reader_merges_data_and_payload() -> None:
    event = await read_event(reader_of(b'{"type": "synthesize", "data": {"a": 1}, "data_length": 14, '
                                       b'"payload_length": 3}\n{"text": "hi"}abc'), 100)
    assert event is not None
    assert (event.type, event.data, event.payload) == ("synthesize", {"a": 1, "text": "hi"}, b"abc")


@pytest.mark.parametrize("data", [b"nope\n", b"[]\n", b'{"type": 3}\n', b'{"type": "x", "data_length": -1}\n',
                                  b'{"type": "x", "payload_length": 101}\n', b'{"type": "x", "data_length": true}\n',
                                  b'{"type": "x", "data_length": 2}\n[]', b"{" * 2000 + b"\n"])
async def test_wyoming_reader_refuses_broken_or_oversized_events(data: bytes) -> None:
    with pytest.raises(MalformedEvent):
        await read_event(reader_of(data), 100)


@pytest.mark.parametrize("data", [b"", b'{"type": "x"}', b'{"type": "x", "payload_length": 10}\nabc'])
async def test_wyoming_reader_returns_none_when_the_client_half_closes(data: bytes) -> None:
    assert await read_event(reader_of(data), 100) is None


async def test_audio_response_drops_a_client_that_stops_reading_and_closes_the_body() -> None:
    closed = asyncio.Event()

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                yield b"\x00" * 100
        finally:
            closed.set()

    async def stuck_send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()  # the client never takes the first chunk

    async def receive() -> dict[str, object]:
        await asyncio.Event().wait()
        return {}

    gen = body()
    first = await anext(gen)
    response = AudioStreamResponse(first, gen, media_type="audio/pcm", send_timeout_s=0.2)
    async with asyncio.timeout(5):
        await response({"type": "http"}, receive, stuck_send)  # type: ignore[arg-type]
    assert response.outcome == "slow_client" and closed.is_set()


async def test_audio_response_closes_the_body_when_the_client_disconnects() -> None:
    closed = asyncio.Event()

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                await asyncio.sleep(0.01)
                yield b"\x00"
        finally:
            closed.set()

    async def send(message: object) -> None:
        pass

    async def receive() -> dict[str, object]:
        await asyncio.sleep(0.1)
        return {"type": "http.disconnect"}

    gen = body()
    response = AudioStreamResponse(await anext(gen), gen, media_type="audio/pcm")
    async with asyncio.timeout(5):
        await response({"type": "http"}, receive, send)
    assert response.outcome == "disconnected" and closed.is_set()


def make_voice(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "voice.json").write_text("{}")
    return folder


def test_discover_serves_voice_folders_by_name_and_skips_the_rest(tmp_path: Path) -> None:
    for name in ("b", "a", "bad name", ".hidden"):
        make_voice(tmp_path / "voices" / name)
    (tmp_path / "voices" / "empty").mkdir()
    extra = make_voice(tmp_path / "extra" / "main")
    found = discover(ServerConfig(voice=extra, voices_dir=tmp_path / "voices"))
    assert [name for name, _ in found] == ["main", "a", "b"]


def test_discover_refuses_duplicate_names_and_empty_folders(tmp_path: Path) -> None:
    make_voice(tmp_path / "voices" / "a")
    with pytest.raises(VoiceError, match="named 'a'"):
        discover(ServerConfig(voice=make_voice(tmp_path / "x" / "a"), voices_dir=tmp_path / "voices"))
    (tmp_path / "none").mkdir()
    with pytest.raises(VoiceError, match="holds no voice"):
        discover(ServerConfig(voices_dir=tmp_path / "none"))
    with pytest.raises(VoiceError, match="cannot be served"):
        discover(ServerConfig(voice=make_voice(tmp_path / "x" / "caf\u00e9 voice")))


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_streams_per_client"):
        LimitsConfig(max_streams_per_client=0)
    with pytest.raises(ValueError, match="send_timeout_s"):
        LimitsConfig(send_timeout_s=0)
