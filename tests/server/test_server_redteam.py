"""Attacks of a careless or hostile client that the other server suites do not make.

Real clients against the live servers of ``conftest.py``: the ``wyoming`` package's
client, ``websockets`` and ``httpx``.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest
from server_support import MAX_STEPS, LiveServer, free_port, read_until_closed, start_server, stop_server
from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from rtvoice.server import LimitsConfig, ServerConfig

SENTENCE_BYTES = 2 * MAX_STEPS * 256


def wyoming_client(server: LiveServer) -> AsyncTcpClient:
    assert server.wyoming_port is not None
    return AsyncTcpClient("127.0.0.1", server.wyoming_port, connect_timeout=5, read_timeout=20)


async def read_until(wyoming: AsyncTcpClient, *types: str) -> list[Event]:
    events = []
    while True:
        event = await wyoming.read_event()
        assert event is not None, "server closed the connection"
        events.append(event)
        if event.type in types:
            return events


@pytest.fixture(scope="module")
def small_backlog_server(server_config: ServerConfig) -> Iterator[LiveServer]:
    """50 characters of text may wait for a sentence end (fewer than a sentence may have)."""
    live = start_server(replace(server_config, wyoming_port=free_port(), limits=LimitsConfig(max_pending_chars=50)))
    yield live
    stop_server(live)


# -- HTTP -------------------------------------------------------------------------------


def test_a_request_framed_by_both_transfer_encoding_and_content_length_is_refused_and_closed(
        server: LiveServer) -> None:
    """RFC 9112 6.3: such a request may be a smuggling attempt; the server must close the connection after it.

    A proxy that frames by Content-Length and this server (by chunks) would disagree on
    where the next request starts; here it gets one 400 and the connection ends, so a
    request hidden behind it is never answered.
    """
    body = json.dumps({"input": "Hi.", "response_format": "pcm"}).encode()
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    auth = f"Authorization: Bearer {server.config.token}\r\n".encode()
    request = (b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + auth
               + b"Transfer-Encoding: chunked\r\n" + f"Content-Length: {len(chunked)}\r\n\r\n".encode() + chunked)
    hidden = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request + hidden)
        reply, _ = read_until_closed(sock, 10)
    assert reply.count(b"HTTP/1.1 ") == 1, reply[:400]
    head, _, answer = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"connection: close" in head.lower(), head
    error = json.loads(answer)["error"]
    assert error["code"] == "ambiguous_framing" and "Transfer-Encoding" in error["message"], error


# -- Wyoming ----------------------------------------------------------------------------


async def test_an_unspeakable_sentence_in_a_wyoming_stream_does_not_swallow_the_next(server: LiveServer) -> None:
    """One refused sentence of a chunk is an error naming it; the sentences after it are still spoken."""
    async with wyoming_client(server) as wyoming:
        await wyoming.write_event(SynthesizeStart().event())
        await wyoming.write_event(SynthesizeChunk(text="Hello there. ... Good bye. And then.").event())
        await wyoming.write_event(SynthesizeChunk(text=" --").event())  # an unspeakable tail, flushed by stop
        await wyoming.write_event(SynthesizeStop().event())
        events = await read_until(wyoming, SynthesizeStopped().event().type)
    kinds = [e.type for e in events if not AudioChunk.is_type(e.type)]
    assert kinds == ["audio-start", "audio-stop", "error", "audio-start", "audio-stop", "audio-start", "audio-stop",
                     "error", "synthesize-stopped"], kinds
    audio = sum(len(e.payload or b"") for e in events)
    assert audio == 3 * SENTENCE_BYTES  # "Hello there.", "Good bye.", "And then."
    errors = [Error.from_event(e) for e in events if Error.is_type(e.type)]
    assert [e.code for e in errors] == ["invalid_text", "invalid_text"], errors
    for error, refused in zip(errors, ('"..."', '"--"'), strict=True):  # each names what was not spoken
        assert refused in (error.text or "") and "not spoken" in (error.text or "") and "\n" not in (error.text or "")


async def test_a_wyoming_chunk_outside_a_stream_is_refused_not_dropped(server: LiveServer) -> None:
    """``synthesize-chunk`` without ``synthesize-start`` says its text is not spoken, and the connection goes on."""
    async with wyoming_client(server) as wyoming:
        await wyoming.write_event(SynthesizeChunk(text="Is anybody there? ").event())
        reply = await wyoming.read_event()
        assert reply is not None and Error.is_type(reply.type), reply
        error = Error.from_event(reply)
        assert error.code == "invalid_event" and "synthesize-start" in (error.text or ""), error
        await wyoming.write_event(SynthesizeStart().event())
        await wyoming.write_event(SynthesizeChunk(text="Now it is.").event())
        await wyoming.write_event(SynthesizeStop().event())
        events = await read_until(wyoming, SynthesizeStopped().event().type)
    assert sum(len(e.payload or b"") for e in events) == SENTENCE_BYTES
    assert [e.type for e in events if AudioStop.is_type(e.type)] == ["audio-stop"]


async def test_a_wyoming_backlog_refusal_says_how_much_text_waited(small_backlog_server: LiveServer) -> None:
    """``backlog_full`` counts the text that waited (not the emptied buffer), and the connection goes on."""
    async with wyoming_client(small_backlog_server) as wyoming:
        await wyoming.write_event(SynthesizeStart().event())
        await wyoming.write_event(SynthesizeChunk(text="Spoken. " + "x" * 80).event())
        events = await read_until(wyoming, "error")
        error = Error.from_event(events[-1])
        assert error.code == "backlog_full" and re.search(r"\b8[01] characters wait", error.text or ""), error
        await wyoming.write_event(SynthesizeChunk(text=" more. ").event())  # the refused stream's: ignored
        await wyoming.write_event(SynthesizeStop().event())
        rest = await read_until(wyoming, SynthesizeStopped().event().type)
    assert sum(len(e.payload or b"") for e in events) == SENTENCE_BYTES  # "Spoken."
    assert [e.type for e in rest] == ["synthesize-stopped"]
