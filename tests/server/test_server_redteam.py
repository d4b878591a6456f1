"""Attacks of a careless or hostile client that the other server suites do not make.

Real clients against the live servers of ``conftest.py``: the ``wyoming`` package's
client, ``websockets`` and ``httpx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from server_support import (
    SENTENCE_BYTES,
    LiveServer,
    free_port,
    read_until,
    read_until_closed,
    start_server,
    stop_server,
    wyoming_client,
    wyoming_events_in,
)
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from wyoming.audio import AudioChunk, AudioStop
from wyoming.error import Error
from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from rtvoice.server import LimitsConfig, ServerConfig


@pytest.fixture(scope="module")
def small_backlog_server(server_config: ServerConfig) -> Iterator[LiveServer]:
    """50 characters of text may wait for a sentence end (fewer than a sentence may have)."""
    live = start_server(replace(server_config, wyoming_port=free_port(), limits=LimitsConfig(max_pending_chars=50)))
    yield live
    stop_server(live)


PACE_SEND_TIMEOUT_S = 4.0


@pytest.fixture(scope="module")
def pace_server(server_config: ServerConfig) -> Iterator[LiveServer]:
    """A 4 s send timeout and 8 KiB server send buffers (a slow link: a stalled reader stalls the server soon)."""
    live = start_server(replace(server_config, wyoming_port=None,
                                limits=LimitsConfig(send_timeout_s=PACE_SEND_TIMEOUT_S)), send_buffer=8192)
    yield live
    stop_server(live)


def read_at_pace(server: LiveServer, text: str, bytes_per_s: float, limit_s: float) -> tuple[int, int | None, float]:
    """POST ``text`` for 24 kHz PCM and read the answer at most ``bytes_per_s`` (after a 0.5 s head start).

    Returns the body bytes read, the body's length if the server finished it (a final
    empty chunk), else ``None``, and the seconds it took.
    """
    body = json.dumps({"input": text, "response_format": "pcm"}).encode()
    auth = f"Authorization: Bearer {server.config.token}\r\n".encode()
    request = (b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
               + auth + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    received = b""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(request)
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < limit_s:
            allowed = int((elapsed + 0.5) * bytes_per_s) - len(received)
            if allowed <= 0:
                time.sleep(0.05)
                continue
            sock.settimeout(max(0.05, limit_s - elapsed))
            try:
                data = sock.recv(min(allowed, 65536))
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            received += data
        took = time.monotonic() - start
    head, _, chunked = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    complete = chunked.endswith(b"\r\n0\r\n\r\n")
    return len(chunked), (len(chunked) if complete else None), took


def test_a_client_reading_slower_than_real_time_is_dropped_and_a_real_time_one_is_not(pace_server: LiveServer) -> None:
    """A reader at half of real time is dropped once it is ``send_timeout_s`` behind; a real-time one is not.

    It takes every chunk within ``send_timeout_s``, so the per-send timeout never fires:
    it would hold its synthesis slot for twice the audio's length. A client that plays
    as it reads (real time) gets all of it.
    """
    text = " ".join(f"Sentence number {i}." for i in range(20))
    real_time = 24000 * 2  # bytes of 24 kHz 16-bit PCM per second
    stopped = pace_server.metric("rtvoice_syntheses_total", protocol="http", outcome="stopped")
    got, complete, took = read_at_pace(pace_server, text, real_time / 2, limit_s=30)
    assert complete is None, f"a half-real-time reader got all {got} bytes in {took:.1f} s"
    assert took < 20, took
    pace_server.wait_idle()
    assert pace_server.metric("rtvoice_syntheses_total", protocol="http", outcome="stopped") == stopped + 1
    got, complete, took = read_at_pace(pace_server, text, real_time, limit_s=40)
    assert complete is not None and complete > 20 * 0.25 * real_time, (got, took)


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


# -- WebSocket --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_connection_server(server_config: ServerConfig) -> Iterator[LiveServer]:
    """At most 3 open HTTP/WebSocket connections in all, and room for all of them at one address."""
    limits = LimitsConfig(max_connections=3, max_connections_per_client=32, idle_timeout_s=60)
    live = start_server(replace(server_config, wyoming_port=free_port(), limits=limits))
    yield live
    stop_server(live)


def test_websockets_from_many_addresses_are_held_to_max_connections(three_connection_server: LiveServer) -> None:
    """A WebSocket beyond ``max_connections`` is refused with 503 (uvicorn's own 503 skips upgrades).

    Without it, clients at many addresses (each under ``max_connections_per_client``)
    could open any number of WebSockets and keep them open with a message a minute.
    """
    server = three_connection_server
    opened, refused = 0, []
    with contextlib.ExitStack() as held:
        for n in range(2, 8):  # six addresses on the loopback network
            sock = held.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=5,
                                                               source_address=(f"127.0.0.{n}", 0)))
            try:
                ws = held.enter_context(connect(server.ws_url, sock=sock, additional_headers=server.headers,
                                                open_timeout=5))
            except InvalidStatus as exc:
                refused.append(exc.response)
                continue
            assert json.loads(ws.recv(timeout=5))["type"] == "ready"
            opened += 1
        assert (opened, len(refused)) == (3, 3)
        for response in refused:
            assert response.status_code == 503
            assert json.loads(response.body)["error"]["code"] == "server_busy", response.body
    deadline = time.monotonic() + 5  # the places are free again once they are closed
    while True:
        try:
            with connect(server.ws_url, additional_headers=server.headers, open_timeout=5) as ws:
                assert json.loads(ws.recv(timeout=5))["type"] == "ready"
            break
        except InvalidStatus:
            assert time.monotonic() < deadline, "the closed WebSockets still count"
            time.sleep(0.1)


def test_the_websocket_finished_event_says_when_the_step_limit_cut_a_sentence(server: LiveServer) -> None:
    """The tiny voice never ends a sentence by itself: each is cut at ``max_decoder_steps``, and ``finished`` says so.

    (HTTP cannot say it once the audio streams: it counts and logs it, as the WebSocket does too.)
    """
    with connect(server.ws_url, additional_headers=server.headers, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        ws.send(json.dumps({"type": "text", "text": "Hello there."}))
        ws.send(json.dumps({"type": "end"}))
        events = []
        while not events or events[-1]["type"] != "done":
            message = ws.recv(timeout=20)
            if isinstance(message, str):
                events.append(json.loads(message))
    (finished,) = [e for e in events if e["type"] == "finished"]
    assert finished["truncated"] is True, finished


def test_a_websocket_that_never_reads_is_dropped_and_stalls_nobody(deadline_server: LiveServer) -> None:
    """A client that sends text and never reads holds its slot ``send_timeout_s`` at most; others are served."""
    server = deadline_server
    stopped = server.metric("rtvoice_syntheses_total", protocol="websocket", outcome="stopped")
    text = " ".join(f"Sentence {i}." for i in range(60))  # far more audio than the socket buffers hold
    with contextlib.ExitStack() as held:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        stalled = held.enter_context(connect(server.ws_url, sock=sock, additional_headers=server.headers,
                                             max_queue=1, open_timeout=5))
        stalled.send(json.dumps({"type": "text", "text": text}))  # and never reads again
        time.sleep(0.5)
        other = httpx.Client(base_url=server.base_url, headers={**server.headers, "Content-Type": "application/json"},
                             timeout=20, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with other:
            start = time.monotonic()
            response = other.post("/v1/audio/speech", json={"input": "Meanwhile.", "response_format": "pcm"})
            took = time.monotonic() - start
        assert response.status_code == 200 and len(response.content) > 0
        assert took < 3, took
        deadline = time.monotonic() + 15
        while server.metric("rtvoice_syntheses_total", protocol="websocket", outcome="stopped") == stopped:
            assert time.monotonic() < deadline, "the client that never reads was never dropped"
            time.sleep(0.1)
    server.wait_idle()


# -- Wyoming ----------------------------------------------------------------------------


async def test_a_wyoming_client_gone_mid_audio_stops_its_synthesis(server: LiveServer) -> None:
    """A client that leaves after the first chunk of a long text: the synthesis stops, not all 80 sentences."""
    assert server.wyoming_port is not None
    stopped = await asyncio.to_thread(server.metric, "rtvoice_syntheses_total", protocol="wyoming", outcome="stopped")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.wyoming_port)
    text = " ".join(f"Sentence number {i}." for i in range(80))
    writer.write((json.dumps({"type": "synthesize", "data": {"text": text}}) + "\n").encode())
    await writer.drain()
    while b"audio-chunk" not in await reader.readline():
        pass
    writer.transport.abort()  # no goodbye: the socket just goes away
    await asyncio.to_thread(server.wait_idle, 10)
    now = await asyncio.to_thread(server.metric, "rtvoice_syntheses_total", protocol="wyoming", outcome="stopped")
    assert now == stopped + 1


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


def first_wyoming_event(sock: socket.socket) -> dict[str, object]:
    """The first whole Wyoming event the server sends on ``sock`` (header and data merged)."""
    received = b""
    while True:
        data = sock.recv(65536)
        assert data, f"closed after {received!r}"
        received += data
        line, newline, rest = received.partition(b"\n")
        if newline and len(rest) >= (json.loads(line).get("data_length") or 0):
            return wyoming_events_in(received)[0]


def test_wyoming_connections_from_many_addresses_are_held_to_max_connections(
        three_connection_server: LiveServer) -> None:
    """The Wyoming port, too, holds at most ``max_connections`` (apart from the HTTP port's), whatever the addresses."""
    server = three_connection_server
    assert server.wyoming_port is not None
    describe = b'{"type": "describe"}\n'
    with contextlib.ExitStack() as held:
        answers = []
        for n in range(2, 6):  # four addresses, one connection each
            sock = held.enter_context(socket.create_connection(("127.0.0.1", server.wyoming_port), timeout=5,
                                                               source_address=(f"127.0.0.{n}", 0)))
            sock.sendall(describe)
            answers.append(first_wyoming_event(sock))
        assert [a["type"] for a in answers] == ["info", "info", "info", "error"], answers
        assert answers[-1]["code"] == "server_busy", answers[-1]
        assert sock.recv(1) == b"", "the refused connection is closed"
    deadline = time.monotonic() + 5  # the places are free again once they are closed
    while True:
        with socket.create_connection(("127.0.0.1", server.wyoming_port), timeout=5) as sock:
            sock.sendall(describe)
            if b'"info"' in sock.recv(65536):
                break
        assert time.monotonic() < deadline, "the closed connections still count"
        time.sleep(0.1)


async def test_a_second_wyoming_stream_start_says_what_the_first_leaves_unspoken(server: LiveServer) -> None:
    """``synthesize-start`` inside a stream ends the old one with an error counting its unspoken text."""
    async with wyoming_client(server) as wyoming:
        await wyoming.write_event(SynthesizeStart().event())
        await wyoming.write_event(SynthesizeChunk(text="Hello there").event())  # no sentence end yet
        await wyoming.write_event(SynthesizeStart().event())
        await wyoming.write_event(SynthesizeChunk(text="Bye.").event())
        await wyoming.write_event(SynthesizeStop().event())
        events = await read_until(wyoming, SynthesizeStopped().event().type)
    kinds = [e.type for e in events if not AudioChunk.is_type(e.type)]
    assert kinds == ["error", "audio-start", "audio-stop", "synthesize-stopped"], kinds
    error = Error.from_event(events[0])
    assert error.code == "invalid_event" and "11 characters" in (error.text or ""), error
    assert sum(len(e.payload or b"") for e in events) == SENTENCE_BYTES  # "Bye."
