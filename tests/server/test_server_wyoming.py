"""The Wyoming listener against a live server, with the ``wyoming`` package's own client."""

from __future__ import annotations

import asyncio
import json

from server_support import SENTENCE_BYTES, LiveServer, read_until, wyoming_client
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)


async def test_describe_answers_info_with_the_voices(server: LiveServer) -> None:
    async with wyoming_client(server) as wyoming:
        await wyoming.write_event(Describe().event())
        event = await wyoming.read_event()
    assert event is not None and Info.is_type(event.type)
    info = Info.from_event(event)
    (program,) = info.tts
    assert program.name == "rtvoice" and program.supports_synthesize_streaming
    assert [v.name for v in program.voices] == ["other", "tiny"]
    assert all(v.languages == ["en_US"] and v.installed for v in program.voices)


async def test_synthesize_streams_audio_start_chunks_stop(server: LiveServer) -> None:
    async with wyoming_client(server) as wyoming:
        await wyoming.write_event(Synthesize(text="Hello there. How are you?",
                                             voice=SynthesizeVoice(name="tiny")).event())
        events = await read_until(wyoming, AudioStop().event().type)
    assert AudioStart.is_type(events[0].type) and AudioStop.is_type(events[-1].type)
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (22050, 2, 1)
    chunks = [AudioChunk.from_event(e) for e in events[1:-1]]
    assert len(chunks) >= 2 and all(AudioChunk.is_type(e.type) for e in events[1:-1])
    assert sum(len(c.audio) for c in chunks) == 2 * SENTENCE_BYTES + 2 * int(0.15 * 22050)
    assert [c.timestamp for c in chunks] == sorted(c.timestamp or 0 for c in chunks)


async def test_streaming_text_speaks_each_sentence_as_it_completes(server: LiveServer) -> None:
    async with wyoming_client(server) as wyoming:
        await wyoming.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tiny")).event())
        for piece in ("Hello", " there.", " How"):
            await wyoming.write_event(SynthesizeChunk(text=piece).event())
        first = await read_until(wyoming, "audio-stop")  # before the text has ended
        for piece in (" are you", "?"):
            await wyoming.write_event(SynthesizeChunk(text=piece).event())
        # Home Assistant also sends the whole text as "synthesize" for old servers: ignored.
        await wyoming.write_event(Synthesize(text="Hello there. How are you?").event())
        await wyoming.write_event(SynthesizeStop().event())
        rest = await read_until(wyoming, SynthesizeStopped().event().type)
    assert sum(len(e.payload or b"") for e in first) == SENTENCE_BYTES
    assert [e.type for e in rest].count("audio-start") == 1
    assert sum(len(e.payload or b"") for e in rest) == SENTENCE_BYTES


async def test_refusals_are_error_events_and_the_connection_stays(server: LiveServer) -> None:
    async with wyoming_client(server) as wyoming:
        for event in (Synthesize(text="Hi.", voice=SynthesizeVoice(name="../etc")).event(),
                      Synthesize(text="x" * 5000).event(),
                      Event(type="synthesize", data={"text": 42}),
                      Synthesize(text="\u200b").event()):
            await wyoming.write_event(event)
            reply = await wyoming.read_event()
            assert reply is not None and Error.is_type(reply.type), event
        await wyoming.write_event(Event(type="not-a-thing", data={"x": 1}))  # ignored, as the package does
        await wyoming.write_event(Synthesize(text="Fine.").event())
        events = await read_until(wyoming, "audio-stop")
    assert sum(len(e.payload or b"") for e in events) == SENTENCE_BYTES


async def test_broken_framing_closes_only_that_connection(server: LiveServer) -> None:
    assert server.wyoming_port is not None
    headers = [b"not json\n", b"[1]\n", b'{"type": 1}\n', b'{"type": "synthesize", "data_length": 1e12}\n',
               b'{"type": "synthesize", "payload_length": 99999999999}\n', b'{"type": "x", "data": [1]}\n',
               b'{"type": "synthesize", "data_length": 5}\n[1,2]', b"x" * 100_000 + b"\n"]
    for header in headers:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.wyoming_port)
        writer.write(header)
        await writer.drain()
        async with asyncio.timeout(5):
            rest = await reader.read()  # the server answers an error event, then closes
        writer.close()
        first = json.loads(rest.split(b"\n", 1)[0])
        assert first["type"] == "error", header[:40]
        assert b"invalid_event" in rest
    async with wyoming_client(server) as wyoming:  # the listener is fine
        await wyoming.write_event(Describe().event())
        event = await wyoming.read_event()
        assert event is not None and Info.is_type(event.type)
