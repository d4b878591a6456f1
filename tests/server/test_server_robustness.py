"""Bad input, vanished and slow clients, and limits: the server answers 4xx and lives on."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import LiveServer
from websockets.sync.client import connect

FIELDS = ["model", "input", "voice", "response_format", "speed", "instructions", "stream_format"]
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=5), scalars, max_size=3)
VALID = {"model": "tts-1", "input": "Hi.", "voice": "tiny", "response_format": "pcm", "speed": 1.0}
json_bodies = (
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=7)
    # A valid body with a few fields replaced reaches the checks behind the first one.
    | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3).map(
        lambda changes: {**VALID, **changes})
)


@pytest.fixture(scope="module")
def http(fuzz_server: LiveServer) -> Iterator[httpx.Client]:
    """One client for every example (making an httpx client is slow)."""
    with fuzz_server.client() as client:
        yield client
    assert fuzz_server.metric("rtvoice_http_requests_total", code="500") == 0


def check_refusal(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_bodies)
def test_fuzzed_json_bodies_never_get_a_5xx(http: httpx.Client, body: dict[str, object]) -> None:
    check_refusal(http.post("/v1/audio/speech", content=json.dumps(body)))


@settings(max_examples=100, deadline=None, database=None)
@given(body=st.binary(max_size=2000) | st.text(max_size=300).map(str.encode),
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))
def test_fuzzed_raw_bodies_never_get_a_5xx(http: httpx.Client, body: bytes, content_type: str) -> None:
    check_refusal(http.post("/v1/audio/speech", content=body, headers={"content-type": content_type}))


def raw_exchange(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    """Send ``data`` on a fresh connection, optionally half-close it, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            return b""  # the server closed first: fine
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def abusive_requests(token: str) -> list[tuple[bytes, bool]]:
    auth = f"Authorization: Bearer {token}\r\n".encode()

    def post(body: bytes, extra: bytes = b"", length: int | None = None) -> bytes:
        n = len(body) if length is None else length
        head = b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + auth + extra
        return head + f"Content-Length: {n}\r\n\r\n".encode() + body

    cases = [
        (b"GARBAGE\r\n\r\n", True),
        (b"GET / HTTP/9.9\r\n\r\n", True),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n", True),
        (post(b'{"input": "hi"', length=500), True),  # half-closed before the body is complete
        (post(b'{"input": "\xff\xfe invalid utf-8"}'), True),
        (post(b'{"input": "Hi.", "voice": "tiny"}', length=-5), True),
        (post(b"[" * 3000 + b"]" * 3000), True),
        (post(b'{"input": "Hi."}', b"Transfer-Encoding: chunked\r\n"), True),
        (b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
         True),
        (post(b'{"input": "Hello there.", "voice": "tiny"}'), True),  # a good request, half-closed: still answered
        (post(b'{"input": "Hello there.", "voice": "tiny"}', b"Connection: close\r\n"), False),
        (post(b"x" * 70_000), True),  # over max_body_bytes
        (b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n"
         + b"".join(b"4000\r\n" + b"y" * 0x4000 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n", True),
        (b"GET /v1/audio/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + auth
         + b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: bad\r\n\r\n", True),
        (b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n", True),
        (b"DELETE /v1/audio/voices HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n", True),
        (b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 10\r\n\r\n", True),
        (b"", True),
    ]
    return cases


def test_abusive_raw_requests_never_get_a_5xx(server: LiveServer) -> None:
    assert server.config.token is not None
    for data, half_close in abusive_requests(server.config.token):
        reply = raw_exchange(server.port, data, half_close=half_close)
        status_line = reply.split(b"\r\n", 1)[0]
        if status_line:
            status = int(status_line.split()[1])
            assert status < 500, (data[:80], status_line)
    with server.client() as client:  # still fine afterwards
        assert client.post("/v1/audio/speech", json={"input": "Still alive.", "voice": "tiny"}).status_code == 200
    assert server.metric("rtvoice_http_requests_total", code="500") == 0
    server.wait_idle()


def test_body_over_the_limit_is_413(strict_server: LiveServer) -> None:
    with strict_server.client() as client:
        response = client.post("/v1/audio/speech", content=b'{"input": "' + b"a" * 3000 + b'"}')
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        chunked = client.post("/v1/audio/speech", content=iter([b'{"input": "', b"a" * 3000, b'"}']))
        assert chunked.status_code == 413


def test_vanished_http_client_stops_its_synthesis(server: LiveServer) -> None:
    text = " ".join(f"Sentence number {i}." for i in range(60))
    stopped = server.metric("rtvoice_syntheses_total", protocol="http", outcome="stopped")
    with server.client() as client, client.stream("POST", "/v1/audio/speech", json={"input": text}) as response:
        assert response.status_code == 200
        next(response.iter_raw())
    start = time.perf_counter()  # the response was closed unread: the connection is gone
    server.wait_idle()
    assert time.perf_counter() - start < 2.0, "the synthesis went on without a client"
    assert server.metric("rtvoice_syntheses_total", protocol="http", outcome="stopped") == stopped + 1


def test_per_client_stream_limit_is_429_and_a_stalled_client_stalls_nobody(strict_server: LiveServer) -> None:
    text = " ".join(f"Sentence {i}." for i in range(45))
    body = json.dumps({"input": text}).encode()
    request = (b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    stalled = []
    for _ in range(2):  # two clients that ask and never read: this address's limit
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", strict_server.port))
        sock.sendall(request)
        stalled.append(sock)
    try:
        deadline = time.monotonic() + 10
        while strict_server.metric("rtvoice_active_streams") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with strict_server.client() as client:
            refused = client.post("/v1/audio/speech", json={"input": "One more."})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded" and refused.headers["retry-after"] == "1"
        # A WebSocket from the same address connects (idle connections are not streams),
        # but its sentence is refused while the address is at its limit, and says so.
        with connect(strict_server.ws_url, open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "ready"
            ws.send(json.dumps({"type": "text", "text": "One more."}))
            ws.send(json.dumps({"type": "flush"}))
            event = json.loads(ws.recv(timeout=5))
        assert (event["type"], event["code"], event["id"]) == ("error", "rate_limit_exceeded", 0)
        # Another client (another loopback address) gets its speech meanwhile.
        other = httpx.Client(base_url=strict_server.base_url, timeout=20,
                             transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with other:
            start = time.perf_counter()
            response = other.post("/v1/audio/speech", json={"input": "Another client.", "response_format": "pcm"})
        assert response.status_code == 200 and len(response.content) > 0
        assert time.perf_counter() - start < 10
    finally:
        for sock in stalled:
            sock.close()
    strict_server.wait_idle(timeout_s=15)
    with strict_server.client() as client:
        assert client.post("/v1/audio/speech", json={"input": "Free again."}).status_code == 200
