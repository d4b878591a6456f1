"""A hostile-input suite for HTTP, WebSocket and Wyoming (issue 23, "Done when" 2).

Thousands of generated inputs (random bytes, random JSON, random request heads and
headers, random WebSocket frames, random Wyoming events) against one live server. For
every input the server gives exactly one answer (or, for broken framing, one refusal and
a closed connection), never a 5xx, never a traceback in its log, and its memory stays flat.
The server speaks two mel frames a sentence, so valid requests end at once.
"""

from __future__ import annotations

import json
import os
import socket
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import (
    TOKEN,
    LiveServer,
    ServerLog,
    free_port,
    read_until_closed,
    start_server,
    stop_server,
    wyoming_events_in,
)
from websockets.sync.client import ClientConnection, connect

from rtvoice.config import SynthesisConfig
from rtvoice.errors import InputError
from rtvoice.inputs import loads
from rtvoice.server import LimitsConfig, ServerConfig

SETTINGS = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
MAX_RSS_GROWTH_MB = 40
"""Bound on RSS growth over the whole suite, after a warm-up (the process holds the server)."""

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
FIELDS = ["model", "input", "voice", "response_format", "speed", "instructions", "stream_format"]
VALID = {"input": "Hi.", "voice": "tiny", "response_format": "pcm"}
speech_bodies = (
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=6)
    | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=2).map(lambda changes: {**VALID, **changes})
)
token_chars = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~")
header_names = st.sampled_from(["Content-Type", "Content-Length", "Transfer-Encoding", "Connection", "Expect",
                                "Authorization", "Upgrade", "Host", "Accept"]) | st.text(token_chars, min_size=1,
                                                                                           max_size=12)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40) | st.sampled_from(
    ["application/json", "text/plain", "chunked", "close", "100-continue", f"Bearer {TOKEN}", "-1", "0", "5",
     "99999999999999999999", "websocket"])


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture(scope="module")
def hostile(server_config: ServerConfig) -> Iterator[LiveServer]:
    """2 mel frames a sentence, 2 s read and idle timeouts, small bodies and messages, a token and Wyoming."""
    limits = LimitsConfig(max_body_bytes=4096, max_message_bytes=4096, max_input_chars=300, max_pending_chars=600,
                          header_timeout_s=2, body_timeout_s=2, idle_timeout_s=2, send_timeout_s=2)
    live = start_server(replace(server_config, wyoming_port=free_port(), limits=limits,
                                synthesis=SynthesisConfig(max_decoder_steps=2)))
    yield live
    stop_server(live)


@pytest.fixture(scope="module")
def memory(hostile: LiveServer) -> Iterator[list[float]]:
    """RSS samples, one after each test; the suite's growth after the first is bounded."""
    samples: list[float] = []
    yield samples
    assert samples, "no test ran"
    print(f"RSS after each hostile test (MB): {', '.join(f'{mb:.1f}' for mb in samples)}")
    assert max(samples) - samples[0] < MAX_RSS_GROWTH_MB, f"RSS grew {samples} MB"


@pytest.fixture
def clean_log(hostile: LiveServer, memory: list[float]) -> Iterator[ServerLog]:
    """The server log of one test, which must hold no error and no traceback."""
    with ServerLog() as log:
        yield log
    hostile.wait_idle()
    assert not log.errors(), log.errors()[:5]
    assert hostile.metric("rtvoice_http_requests_total", code="500") == 0
    memory.append(rss_mb())


def check_error_body(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:300]
    if response.status_code != 200:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and "\n" not in error["message"]


def status_lines(reply: bytes, method: str = "GET") -> list[int]:
    """The status of every final HTTP response in ``reply`` (parsed: bodies are skipped, 1xx left out)."""
    statuses = []
    rest = reply
    while rest.startswith(b"HTTP/1.1 "):
        head, _, rest = rest.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        if status < 200:
            continue
        statuses.append(status)
        headers = {k.strip().lower(): v.strip()
                   for k, v in (line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)}
        if b"content-length" not in headers and b"transfer-encoding" not in headers:
            rest = b""  # uvicorn's own 400 for what is not HTTP: the body runs to the close
        elif method == "HEAD":
            continue
        elif headers.get(b"transfer-encoding") == b"chunked":
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16) if size_line else 0
                rest = rest[size + 2:]
                if size == 0:
                    break
        else:
            rest = rest[int(headers[b"content-length"]):]
    assert not rest, f"unparsed bytes after the responses: {rest[:80]!r}"
    return statuses


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return b""
        return read_until_closed(sock, 10)[0]


# -- HTTP -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http(hostile: LiveServer) -> Iterator[httpx.Client]:
    with hostile.client() as client:
        yield client


@settings(SETTINGS, max_examples=500)
@given(body=speech_bodies)
def test_random_json_bodies(http: httpx.Client, clean_log: ServerLog, body: dict[str, Any]) -> None:
    check_error_body(http.post("/v1/audio/speech", content=json.dumps(body)))


@settings(SETTINGS, max_examples=300)
@given(body=st.binary(max_size=600) | json_values.map(lambda v: json.dumps(v).encode()),
       content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"]))
def test_random_bodies(http: httpx.Client, clean_log: ServerLog, body: bytes, content_type: str) -> None:
    response = http.post("/v1/audio/speech", content=body, headers={"content-type": content_type})
    check_error_body(response)
    if content_type != "application/json":
        assert response.status_code == 415


@settings(SETTINGS, max_examples=400)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]) | st.text(token_chars, min_size=1,
                                                                                          max_size=8),
       path=st.sampled_from(["/v1/audio/speech", "/v1/audio/voices", "/health", "/metrics", "/v1/audio/stream",
                             "/", "/%00", "/../etc/passwd"]),
       headers=st.lists(st.tuples(header_names, header_values), max_size=6),
       body=st.binary(max_size=200) | speech_bodies.map(lambda b: json.dumps(b).encode()))
def test_random_requests_get_exactly_one_answer(hostile: LiveServer, clean_log: ServerLog, method: str, path: str,
                                                headers: list[tuple[str, str]], body: bytes) -> None:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n".encode()
    for name, value in headers:
        head += f"{name}: {value}\r\n".encode()
    if body:
        head += f"Content-Length: {len(body)}\r\n".encode()
    reply = exchange(hostile.port, head + b"\r\n" + body)
    # One answer, or a closed connection for what is not HTTP. Headers can make the body
    # mean something else (chunked, a shorter length): what is left over is parsed as a
    # next request, which is broken, and may get its own 400.
    statuses = status_lines(reply, method)
    assert statuses or not reply
    assert statuses[:1] != [500] and all(status < 500 or status == 503 for status in statuses), statuses
    assert all(status == 400 for status in statuses[1:]), statuses


@settings(SETTINGS, max_examples=300)
@given(data=st.binary(max_size=300))
def test_random_bytes_to_the_http_port(hostile: LiveServer, clean_log: ServerLog, data: bytes) -> None:
    statuses = status_lines(exchange(hostile.port, data))
    assert len(statuses) <= 1 and all(status < 500 for status in statuses), statuses


# -- WebSocket --------------------------------------------------------------------------


ws_messages = (
    st.text(max_size=60)
    | st.binary(max_size=60)
    | json_values.map(json.dumps)
    | st.fixed_dictionaries({"type": st.sampled_from(["text", "flush", "cancel", "config"]) | st.text(max_size=6)},
                            optional={"text": json_values, "voice": json_values, "speed": json_values}).map(json.dumps)
)


def expected_answers(message: str | bytes) -> tuple[int, int]:
    """How many answers (error, config or cancelled events without a sentence id) ``message`` may get: (min, max)."""
    if isinstance(message, bytes):
        return 1, 1
    try:
        data = loads(message)  # strict JSON, as the server reads it (no NaN, bounded numbers)
    except InputError:
        return 1, 1
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return 1, 1
    kind = data["type"]
    if kind in ("config", "cancel"):
        return 1, 1
    if kind == "text":
        return (0, 1) if isinstance(data.get("text"), str) else (1, 1)
    if kind == "flush":
        return 0, 0
    return 1, 1  # unknown type


@settings(SETTINGS, max_examples=250)
@given(messages=st.lists(ws_messages, min_size=1, max_size=5))
def test_random_websocket_frames(hostile: LiveServer, clean_log: ServerLog, messages: list[str | bytes]) -> None:
    with connect(hostile.ws_url, additional_headers=hostile.headers, open_timeout=5, max_size=2**22) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        for message in messages:
            ws.send(message)
        ws.send(json.dumps({"type": "end"}))
        answers = collect_until_done(ws)
    low = sum(expected_answers(m)[0] for m in messages)
    high = sum(expected_answers(m)[1] for m in messages)
    assert low <= len(answers) <= high, (messages, answers)
    for event in answers:
        if event["type"] == "error":
            assert isinstance(event["code"], str) and "\n" not in event["message"]


def collect_until_done(ws: ClientConnection) -> list[dict[str, Any]]:
    """The answers (events without a sentence id but ``done``) up to ``done``."""
    answers = []
    while True:
        message = ws.recv(timeout=20)
        if isinstance(message, bytes):
            continue
        event = json.loads(message)
        assert not [c for value in event.values() if isinstance(value, str) for c in value
                    if unicodedata.category(c) == "Cc" and c not in "\t\n\r"], event  # nothing echoed raw
        if event["type"] == "done":
            return answers
        if event["type"] in ("error", "config", "cancelled") and "id" not in event:
            answers.append(event)


# -- Wyoming ----------------------------------------------------------------------------


wyoming_types = st.sampled_from(["describe", "synthesize", "synthesize-start", "synthesize-chunk", "synthesize-stop",
                                 "audio-chunk", "ping"]) | st.text(max_size=10)
wyoming_data = (st.dictionaries(st.sampled_from(["text", "voice"]) | st.text(max_size=5), json_values, max_size=3)
                | st.fixed_dictionaries({"text": st.text(max_size=40)},
                                        optional={"voice": st.fixed_dictionaries({"name": json_values})}))


@st.composite
def wyoming_events(draw: st.DrawFn) -> tuple[bytes, str]:
    """One event, framed as the package frames it (sometimes broken): the bytes and what it is."""
    kind = draw(st.sampled_from(["event", "event", "event", "broken", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(min_size=1, max_size=200)), "malformed"
    event_type = draw(wyoming_types)
    data = json.dumps(draw(wyoming_data)).encode()
    payload = draw(st.binary(max_size=50))
    header: dict[str, Any] = {"type": event_type, "data_length": len(data), "payload_length": len(payload)}
    if kind == "broken":
        header[draw(st.sampled_from(["data_length", "payload_length"]))] = draw(json_values)
        return json.dumps(header).encode() + b"\n" + data + payload, "maybe-malformed"
    return json.dumps(header).encode() + b"\n" + data + payload, event_type


@settings(SETTINGS, max_examples=400)
@given(event=wyoming_events())
def test_random_wyoming_events(hostile: LiveServer, clean_log: ServerLog, event: tuple[bytes, str]) -> None:
    raw_event, kind = event
    assert hostile.wyoming_port is not None
    types = [e["type"] for e in wyoming_events_in(exchange(hostile.wyoming_port, raw_event))]
    if kind == "malformed":
        assert types in ([], ["error"]), types  # refused and closed (or an unfinished line at the end)
    elif kind == "maybe-malformed":  # a length may still be a valid one
        assert types.count("error") <= 1, types
    elif kind == "describe":
        assert types == ["info"]
    elif kind == "synthesize":  # an error, or audio (empty if nothing was speakable) from start to stop
        assert types == ["error"] or (types[0] == "audio-start" and types[-1] == "audio-stop"
                                      and "error" not in types), types
    elif kind == "synthesize-stop":
        assert types == ["synthesize-stopped"]
    elif kind in ("synthesize-start", "synthesize-chunk"):
        assert types in ([], ["error"]), types
    else:
        assert types == [], types  # unknown events are ignored, as the package does
