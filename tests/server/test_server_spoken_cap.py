"""Text that is short as sent but long as read out is refused up front, by every protocol.

The input limits count characters as sent; reading expands them (``ﷺ`` is 28 letters
read out), so 4000 of them under the 4096-character limit would be 112,000 characters of
speech. ``SynthesisConfig.max_spoken_chars`` (32,768) bounds what is read out: over it the
request gets one clear error and no audio; ordinary text at the input limit is spoken.
Real clients (httpx, websockets, the wyoming package's) against the live servers of
``conftest.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from server_support import MAX_STEPS, LiveServer, start_server, stop_server
from websockets.sync.client import ClientConnection, connect
from wyoming.audio import AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.tts import Synthesize

from rtvoice.config import MAX_SPOKEN_CHARS
from rtvoice.server import LimitsConfig, ServerConfig

WIDE = "\ufdfa"
"""ﷺ: one character sent, 28 read out (anyascii's transliteration of the ligature)."""
ORDINARY = "The 8:15 to Leeds leaves from platform 3, calling at York and Doncaster. "


def ordinary_text(chars: int) -> str:
    """``chars`` characters of an ordinary announcement, repeated (1.2 times as long read out)."""
    text = (ORDINARY * (chars // len(ORDINARY) + 1))[: chars - 1]
    return text[:-1] + "x." if text.endswith(" ") else text + "."


def says_all_three(message: str, sent: int) -> bool:
    """The error names the characters as sent, as read out, and the limit (one line)."""
    return ("\n" not in message and f"{sent} characters, {sent * 28} when read out" in message
            and f"the limit is {MAX_SPOKEN_CHARS} read out" in message)


# -- HTTP -------------------------------------------------------------------------------


def test_http_text_long_read_out_is_refused_before_any_audio(server: LiveServer) -> None:
    """4000 ``ﷺ`` (under max_input_chars) are 112,000 characters read out: 400, as for too long input."""
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"input": WIDE * 4000, "response_format": "pcm"})
    assert response.status_code == 400, (response.status_code, len(response.content))
    error = response.json()["error"]
    assert error["code"] == "string_above_max_length" and error["param"] == "input", error
    assert says_all_three(error["message"], 4000), error


def test_http_ordinary_text_at_the_input_limit_is_still_spoken(server: LiveServer) -> None:
    text = ordinary_text(server.config.limits.max_input_chars)
    assert len(text) == server.config.limits.max_input_chars
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"input": text, "response_format": "pcm"})
    assert response.status_code == 200, response.text[:300]
    assert len(response.content) >= 14 * 2 * MAX_STEPS * 256  # at least one sentence per 300 characters


# -- WebSocket --------------------------------------------------------------------------


def events_until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    """The JSON events up to and with the first of ``kind`` (audio frames counted as {"type": "audio"})."""
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] != kind:
        message = ws.recv(timeout=30)
        events.append(json.loads(message) if isinstance(message, str) else {"type": "audio", "bytes": len(message)})
    return events


def test_websocket_text_long_read_out_is_refused_and_the_session_goes_on(server: LiveServer) -> None:
    """One message of 1200 ``ﷺ`` (under max_pending_chars) is 33,600 read out: backlog_full, nothing spoken."""
    with connect(server.ws_url, additional_headers=server.headers, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        ws.send(json.dumps({"type": "text", "text": WIDE * 1200}))
        ws.send(json.dumps({"type": "text", "text": "Hello there."}))
        ws.send(json.dumps({"type": "end"}))
        events = events_until(ws, "done")
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "backlog_full", errors
    assert "1200 characters, 33600 read out, and 0 wait read out" in errors[0]["message"], errors
    assert f"the limit is {MAX_SPOKEN_CHARS} read out" in errors[0]["message"], errors
    started = [e for e in events if e["type"] == "started"]
    assert [e["text"] for e in started] == ["Hello there."], started  # the refused text: not a word of it
    assert events.index(errors[0]) < events.index(started[0])


def test_websocket_refuses_the_piece_that_would_cross_the_limit_read_out(server: LiveServer) -> None:
    """What waits counts: 1000 ``ﷺ`` are accepted (28,000 read out), 600 more then cross 32,768 and are refused.

    The first text is being spoken meanwhile (its first sentence, 8400 read out, has left
    the queue), so the refusal counts what still waits; the first text is spoken whole.
    """
    with connect(server.ws_url, additional_headers=server.headers, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        ws.send(json.dumps({"type": "text", "text": WIDE * 1000}))
        ws.send(json.dumps({"type": "text", "text": WIDE * 600}))
        events = events_until(ws, "error")
        ws.send(json.dumps({"type": "end"}))
        events += events_until(ws, "done")
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "backlog_full", errors
    waiting = re.search(r"600 characters, (\d+) read out, and (\d+) wait read out", errors[0]["message"])
    assert waiting is not None, errors
    assert int(waiting[1]) == 600 * 28 and int(waiting[1]) + int(waiting[2]) > MAX_SPOKEN_CHARS, errors
    finished = [e for e in events if e["type"] == "finished"]
    started = [e for e in events if e["type"] == "started"]
    assert "".join(e["text"] for e in started) == WIDE * 1000  # all of the accepted text, none of the refused
    assert len(finished) == len(started) == 4


FILL = WIDE * 1170 + " "
"""Four sentences, 32,760 read out: accepted only while at most 8 characters wait read out."""


def queue_ssml_behind_speech(ws: ClientConnection, document: str) -> list[dict[str, Any]]:
    """Start one long sentence speaking, then queue ``document`` (taken whole, as SSML) to wait behind it.

    The flush takes the sentence's trailing space out of the buffer (an SSML document comes
    whole only into an empty one); ``started`` shows the sentence has left the queue, so
    ``document`` is all that waits.
    """
    ws.send(json.dumps({"type": "text", "text": WIDE * 300 + " "}))  # one sentence, 8400 read out
    ws.send(json.dumps({"type": "flush"}))
    events = events_until(ws, "started")
    ws.send(json.dumps({"type": "text", "text": document}))
    return events


def send_fill(ws: ClientConnection) -> list[dict[str, Any]]:
    """Send :data:`FILL`, then a ``config`` whose answer shows FILL was accepted or refused before it."""
    ws.send(json.dumps({"type": "text", "text": FILL}))
    ws.send(json.dumps({"type": "config"}))
    return events_until(ws, "config")


def test_websocket_ssml_that_cannot_be_read_waits_counted_as_sent(server: LiveServer) -> None:
    """Malformed SSML has no reading: while it waits it counts its characters as sent, not nothing.

    Its 130 characters plus FILL's 32,760 read out cross 32,768, so FILL is refused
    naming 130 waiting; counted as nothing, FILL would be accepted. The document then
    gets its own error when its turn comes.
    """
    document = "<speak>Hello there" + " and more" * 12 + "<oop"  # never closed
    assert len(document) == 130
    with connect(server.ws_url, additional_headers=server.headers, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        events = queue_ssml_behind_speech(ws, document)
        events += send_fill(ws)
        assert [e["type"] for e in events].count("started") == 1, events  # the document still waited
        ws.send(json.dumps({"type": "end"}))
        events += events_until(ws, "done")
    errors = [e for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["backlog_full", "invalid_text"], errors
    assert "1171 characters, 32760 read out, and 130 wait read out" in errors[0]["message"], errors
    assert "Malformed SSML" in errors[1]["message"] and errors[1]["id"] == 1, errors
    started = [e for e in events if e["type"] == "started"]
    assert [e["text"] for e in started] == [WIDE * 300], started  # the refused FILL: not a word of it


def test_websocket_ssml_waits_counted_as_read_out_not_its_markup(server: LiveServer) -> None:
    """Readable SSML counts its text as read out: 40 breaks and "Hi." are 778 characters sent, 3 read out.

    FILL's 32,760 and those 3 stay within 32,768, so FILL is accepted; counted as sent,
    the markup would have refused it.
    """
    document = "<speak>" + '<break time="1ms"/>' * 40 + "Hi.</speak>"
    assert len(document) == 778
    with connect(server.ws_url, additional_headers=server.headers, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        events = queue_ssml_behind_speech(ws, document)
        events += send_fill(ws)
        assert [e["type"] for e in events].count("started") == 1, events  # the document still waited
        ws.send(json.dumps({"type": "cancel"}))
        events += events_until(ws, "cancelled")
    assert [e for e in events if e["type"] == "error"] == [], events
    assert events[-1]["dropped"] == 5, events[-1]  # the document and FILL's four sentences waited, all accepted


@pytest.fixture(scope="module")
def few_turns_server(server_config: ServerConfig) -> Iterator[LiveServer]:
    """At most 3 sentences and ends waiting in a WebSocket session (``LimitsConfig.max_queued_turns``)."""
    live = start_server(replace(server_config, wyoming_port=None, limits=LimitsConfig(max_queued_turns=3)))
    yield live
    stop_server(live)


def test_websocket_queued_turns_are_bounded_by_the_limits_config(few_turns_server: LiveServer) -> None:
    """While a long sentence is spoken, ends pile up: those beyond 3 waiting are ``backlog_full``."""
    with connect(few_turns_server.ws_url, additional_headers=few_turns_server.headers, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        ws.send(json.dumps({"type": "text", "text": WIDE * 300 + " "}))  # one sentence, 8400 read out
        for _ in range(5):
            ws.send(json.dumps({"type": "end"}))
        events = events_until(ws, "error")
        ws.send(json.dumps({"type": "cancel"}))
        events += events_until(ws, "cancelled")
    errors = [e for e in events if e["type"] == "error"]  # the fourth and fifth (the third too, if the
    assert len(errors) in (2, 3), errors                   # sentence had not yet left the queue)
    assert all(e["code"] == "backlog_full" and "turns" in e["message"] for e in errors), errors


# -- Wyoming ----------------------------------------------------------------------------


async def test_wyoming_text_long_read_out_is_an_error_event_and_no_audio(server: LiveServer) -> None:
    """A ``synthesize`` of 4000 ``ﷺ``: one error event, no audio-start; the connection then speaks on."""
    assert server.wyoming_port is not None
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port, connect_timeout=5, read_timeout=20) as wyoming:
        await wyoming.write_event(Synthesize(text=WIDE * 4000).event())
        reply = await wyoming.read_event()
        assert reply is not None and Error.is_type(reply.type), reply
        error = Error.from_event(reply)
        assert error.code == "string_above_max_length" and says_all_three(error.text or "", 4000), error
        await wyoming.write_event(Synthesize(text="Hello there.").event())
        reply = await wyoming.read_event()
        assert reply is not None and AudioStart.is_type(reply.type), reply


async def test_wyoming_ordinary_text_at_the_input_limit_is_still_spoken(server: LiveServer) -> None:
    assert server.wyoming_port is not None
    text = ordinary_text(server.config.limits.max_input_chars)
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port, connect_timeout=5, read_timeout=20) as wyoming:
        await wyoming.write_event(Synthesize(text=text).event())
        reply = await wyoming.read_event()
        assert reply is not None and AudioStart.is_type(reply.type), reply
        while (event := await wyoming.read_event()) is not None and event.type != "audio-stop":
            assert not Error.is_type(event.type), event

