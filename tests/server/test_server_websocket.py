"""The WebSocket endpoint against a live server, with the ``websockets`` client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from server_support import SENTENCE_BYTES, LiveServer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


async def events_until(ws: ClientConnection, last: str, timeout_s: float = 20.0) -> list[Any]:
    """Messages (dicts for JSON, bytes for audio) up to and including the event ``last``."""
    out: list[Any] = []
    async with asyncio.timeout(timeout_s):
        while True:
            message = await ws.recv()
            out.append(message if isinstance(message, bytes) else json.loads(message))
            if isinstance(out[-1], dict) and out[-1]["type"] == last:
                return out


def kinds(messages: list[Any]) -> list[str]:
    return ["audio" if isinstance(m, bytes) else m["type"] for m in messages]


def audio_bytes(messages: list[Any]) -> int:
    return sum(len(m) for m in messages if isinstance(m, bytes))


async def test_text_pieces_are_spoken_sentence_by_sentence(server: LiveServer) -> None:
    async with connect(server.ws_url, additional_headers=server.headers) as ws:
        ready = json.loads(await ws.recv())
        assert ready == {"type": "ready", "voice": "other", "voices": ["other", "tiny"], "sample_rate": 22050,
                         "encoding": "pcm_s16le", "channels": 1}
        for piece in ("Hello", " there", ".", " How are", " you"):
            await ws.send(json.dumps({"type": "text", "text": piece}))
        first = await events_until(ws, "finished")  # spoken before the text ends
        assert kinds(first)[0] == "started" and first[0]["text"] == "Hello there." and first[0]["id"] == 0
        assert audio_bytes(first) == SENTENCE_BYTES
        chunk_events = [m for m in first if isinstance(m, dict) and m["type"] == "chunk"]
        assert chunk_events and all(e["rtf"] > 0 and e["time_to_first_audio_s"] > 0 for e in chunk_events)
        await ws.send(json.dumps({"type": "text", "text": "?"}))
        await ws.send(json.dumps({"type": "end"}))
        rest = await events_until(ws, "done")
    started = [m for m in rest if isinstance(m, dict) and m["type"] == "started"]
    assert [s["text"] for s in started] == ["How are you?"]
    pause = 2 * int(0.15 * 22050)  # the pause between sentences of one turn
    assert audio_bytes(rest) == SENTENCE_BYTES + pause


async def test_flush_speaks_an_unfinished_sentence_and_config_switches_voice(server: LiveServer) -> None:
    async with connect(server.ws_url, additional_headers=server.headers) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "config", "voice": "tiny", "speed": 2.0}))
        assert json.loads(await ws.recv()) == {"type": "config", "voice": "tiny", "speed": 2.0, "sample_rate": 22050}
        await ws.send(json.dumps({"type": "text", "text": "no full stop"}))
        await ws.send(json.dumps({"type": "flush"}))
        messages = await events_until(ws, "finished")
    assert messages[0]["text"] == "no full stop"
    assert abs(audio_bytes(messages) - SENTENCE_BYTES / 2) <= 4  # speed 2: half as long


async def test_cancel_stops_speech_at_once_and_the_session_goes_on(server: LiveServer) -> None:
    text = " ".join(f"This is sentence number {i}." for i in range(40))
    async with connect(server.ws_url, additional_headers=server.headers) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "text", "text": text}))
        while not isinstance(await ws.recv(), bytes):  # speech has started
            pass
        await ws.send(json.dumps({"type": "cancel"}))
        after_cancel = await events_until(ws, "cancelled", timeout_s=5)
        assert after_cancel[-1]["dropped"] > 30
        assert kinds(after_cancel).count("started") <= 2
        await ws.send(json.dumps({"type": "text", "text": "New turn."}))
        await ws.send(json.dumps({"type": "end"}))
        messages = await events_until(ws, "done")
    # Nothing of the cancelled speech comes after "cancelled": only the new turn.
    assert [m["text"] for m in messages if isinstance(m, dict) and m["type"] == "started"] == ["New turn."]
    assert audio_bytes(messages) == SENTENCE_BYTES
    server.wait_idle()


async def test_bad_messages_get_error_events_and_the_session_survives(server: LiveServer) -> None:
    bad: list[str | bytes] = [
        "not json", "[1, 2]", '{"type": 5}', '{"type": "dance"}', '{"type": "text"}', '{"type": "text", "text": 7}',
        '{"type": "config", "voice": "../../etc"}', '{"type": "config", "speed": 9}', b"\x00\x01binary",
        '{"type": "text", "text": "\\ud800"}', json.dumps({"type": "text", "text": "x" * 2500}),
    ]
    async with connect(server.ws_url, additional_headers=server.headers) as ws:
        await ws.recv()
        codes = []
        for message in bad:
            await ws.send(message)
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert event["type"] == "error", message
            codes.append(event["code"])
        await ws.send(json.dumps({"type": "text", "text": "Still here."}))
        await ws.send(json.dumps({"type": "end"}))
        messages = await events_until(ws, "done")
    assert codes == ["invalid_json", "invalid_message", "invalid_message", "invalid_message", "invalid_message",
                     "invalid_message", "voice_not_found", "invalid_value", "invalid_message", "invalid_text",
                     "backlog_full"]
    assert audio_bytes(messages) == SENTENCE_BYTES


async def test_unspeakable_sentence_is_an_error_event_not_the_end(server: LiveServer) -> None:
    async with connect(server.ws_url, additional_headers=server.headers) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "text", "text": "\u200b\u200b. Fine."}))
        await ws.send(json.dumps({"type": "end"}))
        messages = await events_until(ws, "done")
    assert [m["code"] for m in messages if isinstance(m, dict) and m["type"] == "error"] == ["invalid_text"]
    assert audio_bytes(messages) == SENTENCE_BYTES


async def test_websocket_needs_the_token(server: LiveServer) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        with pytest.raises(InvalidStatus) as caught:
            async with connect(server.ws_url, additional_headers=headers):
                pass
        assert caught.value.response.status_code == 401


def websocket_syntheses(server: LiveServer) -> float:
    return sum(server.metric("rtvoice_syntheses_total", protocol="websocket", outcome=outcome)
               for outcome in ("ok", "stopped", "rejected", "error"))


async def test_client_that_vanishes_mid_speech_stops_its_synthesis(server: LiveServer) -> None:
    before = await asyncio.to_thread(websocket_syntheses, server)
    ws = await connect(server.ws_url, additional_headers=server.headers)
    await ws.recv()
    await ws.send(json.dumps({"type": "text", "text": " ".join(f"Sentence {i}." for i in range(40))}))
    while not isinstance(await ws.recv(), bytes):
        pass
    ws.transport.abort()  # no close frame: the socket just goes away
    await asyncio.sleep(1.0)
    await asyncio.to_thread(server.wait_idle)
    spoken = await asyncio.to_thread(websocket_syntheses, server) - before
    assert 1 <= spoken <= 4, f"{spoken} of 40 sentences were synthesized for a client that had gone"


async def test_oversized_message_closes_only_that_connection(strict_server: LiveServer) -> None:
    async with connect(strict_server.ws_url) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "text", "text": "x" * 5000}))  # over max_message_bytes (4096)
        with pytest.raises(ConnectionClosed) as caught:
            await asyncio.wait_for(ws.recv(), 5)
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009
    async with connect(strict_server.ws_url) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
