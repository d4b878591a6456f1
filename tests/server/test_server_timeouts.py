"""Idle and slow clients are turned away on time; honest clients still get through (issue 23, part 2).

Real sockets against a live server whose timeouts are all ``DEADLINE_S`` (``deadline_server``),
and one with long timeouts and two streams per address (``crowded_server``) for crowding.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from conftest import DEADLINE_S
from server_support import TOKEN, LiveServer, ServerLog, read_until_closed, wyoming_events_in
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

SLACK_S = 2.0
"""How late a timeout may fire on a busy 2-core machine."""
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()


@contextmanager
def raw(port: int, source: str = "127.0.0.1") -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    try:
        yield sock
    finally:
        sock.close()


def status_of(reply: bytes) -> int:
    return int(reply.split(b"\r\n", 1)[0].split()[1])


def assert_on_time(elapsed: float, deadline_s: float) -> None:
    """Not late (a loaded machine may delay the close by up to ``SLACK_S``), and not at once."""
    assert deadline_s / 2 <= elapsed <= deadline_s + SLACK_S, f"closed after {elapsed:.2f} s, deadline {deadline_s}"


# -- HTTP -------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed_on_time(deadline_server: LiveServer) -> None:
    with raw(deadline_server.port) as sock:
        reply, elapsed = read_until_closed(sock, DEADLINE_S + SLACK_S + 1)
    assert reply == b""
    assert_on_time(elapsed, DEADLINE_S)


def test_half_sent_headers_are_closed_on_time(deadline_server: LiveServer) -> None:
    start = time.monotonic()
    with raw(deadline_server.port) as sock:
        sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\n" + AUTH)
        for _ in range(3):  # a byte now and then does not extend the deadline (slowloris)
            time.sleep(DEADLINE_S / 4)
            sock.sendall(b"X")
        reply, _ = read_until_closed(sock, DEADLINE_S + SLACK_S + 1)
    assert reply == b""
    assert_on_time(time.monotonic() - start, DEADLINE_S)


def test_half_sent_body_gets_408_on_time(deadline_server: LiveServer) -> None:
    with raw(deadline_server.port) as sock:
        sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + AUTH
                     + b"Content-Length: 15\r\n\r\n" + b'{"inp')
        reply, elapsed = read_until_closed(sock, DEADLINE_S + SLACK_S + 1)
    assert status_of(reply) == 408, reply[:200]
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "request_timeout"
    assert b"connection: close" in reply.lower()
    assert_on_time(elapsed, DEADLINE_S)


def test_an_unread_half_sent_body_is_closed_on_time(deadline_server: LiveServer) -> None:
    """A route that reads no body answers at once; the rest of the body may not hold the connection."""
    with raw(deadline_server.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n12345")
        start = time.monotonic()
        for _ in range(3):
            time.sleep(DEADLINE_S / 3)
            sock.sendall(b"6")
        reply, _ = read_until_closed(sock, 2 * DEADLINE_S + SLACK_S + 1)
        elapsed = time.monotonic() - start
    assert status_of(reply) == 200
    assert elapsed <= 2 * DEADLINE_S + SLACK_S  # the body deadline plus its grace second


def test_an_idle_keep_alive_connection_is_closed_on_time(deadline_server: LiveServer) -> None:
    with raw(deadline_server.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert status_of(first) == 200
        _, elapsed = read_until_closed(sock, DEADLINE_S + SLACK_S + 1)
    assert_on_time(elapsed, DEADLINE_S)


def test_a_second_request_trickled_on_a_keep_alive_connection_is_closed(deadline_server: LiveServer) -> None:
    """Uvicorn's keep-alive timer stops at the first byte; the head deadline does not."""
    with raw(deadline_server.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(sock.recv(65536)) == 200
        start = time.monotonic()
        sock.sendall(b"G")
        for _ in range(4):
            time.sleep(DEADLINE_S / 4)
            try:
                sock.sendall(b"E")
            except OSError:
                break
        read_until_closed(sock, DEADLINE_S + SLACK_S + 1)
    assert time.monotonic() - start <= DEADLINE_S + SLACK_S


def test_a_slow_honest_client_is_not_cut_off(deadline_server: LiveServer) -> None:
    """A request sent in pieces within the deadlines is answered."""
    body = json.dumps({"input": "Hello there.", "response_format": "pcm"}).encode()
    with raw(deadline_server.port) as sock:
        sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\n")
        time.sleep(DEADLINE_S / 3)
        sock.sendall(AUTH + b"Content-Type: application/json\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode())
        time.sleep(DEADLINE_S / 3)
        sock.sendall(body)
        reply, _ = read_until_closed(sock, 30)
    assert status_of(reply) == 200


def test_a_client_that_stops_reading_is_dropped_without_an_asgi_error(deadline_server: LiveServer) -> None:
    """A stalled reader is dropped after ``send_timeout_s``, and uvicorn logs no "without completing response"."""
    text = " ".join(f"Sentence number {i}." for i in range(100))
    body = json.dumps({"input": text}).encode()
    request = (b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + AUTH
               + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    slow = deadline_server.metric("rtvoice_syntheses_total", protocol="http", outcome="stopped")
    with ServerLog() as server_log:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            sock.connect(("127.0.0.1", deadline_server.port))
            sock.sendall(request)
            deadline = time.monotonic() + 60
            while deadline_server.metric("rtvoice_syntheses_total", protocol="http", outcome="stopped") == slow:
                assert time.monotonic() < deadline, "the stalled client was never dropped"
                time.sleep(0.1)
            deadline_server.wait_idle()
            time.sleep(0.3)  # uvicorn logs after the app returns
        finally:
            sock.close()
    assert not [e for e in server_log.errors() if "completing response" in e or "Exception" in e], server_log.errors()
    assert not server_log.errors()


# -- WebSocket --------------------------------------------------------------------------


def test_an_idle_websocket_is_closed_on_time(deadline_server: LiveServer) -> None:
    start = time.monotonic()
    with connect(deadline_server.ws_url, additional_headers=deadline_server.headers, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        event = json.loads(ws.recv(timeout=DEADLINE_S + SLACK_S + 1))
        assert event["type"] == "error" and event["code"] == "idle_timeout"
        with pytest.raises(ConnectionClosedOK):  # the server closes after saying why
            ws.recv(timeout=5)
    assert_on_time(time.monotonic() - start, DEADLINE_S)


def test_a_websocket_listening_to_long_speech_is_not_idle(deadline_server: LiveServer) -> None:
    """No message for longer than the idle timeout is fine while the server is speaking for the client."""
    text = " ".join("Go on now." for _ in range(80))  # 2 to 10 s of synthesis on 2 cores
    with connect(deadline_server.ws_url, additional_headers=deadline_server.headers, open_timeout=5) as ws:
        ws.recv(timeout=5)
        start = time.monotonic()
        ws.send(json.dumps({"type": "text", "text": text}))
        ws.send(json.dumps({"type": "end"}))
        kinds = []
        while True:
            message = ws.recv(timeout=30)
            if isinstance(message, str):
                kinds.append(json.loads(message)["type"])
                if kinds[-1] in ("done", "error"):
                    break
        elapsed = time.monotonic() - start
    assert kinds.count("finished") == 80 and kinds[-1] == "done", kinds[-5:]
    if elapsed <= DEADLINE_S:
        pytest.skip(f"the speech took {elapsed:.2f} s, not longer than the idle timeout")


# -- Wyoming ----------------------------------------------------------------------------


def wyoming_events(sock: socket.socket, limit_s: float) -> list[dict[str, object]]:
    """Every event the server sends until it closes the connection (headers with their data merged)."""
    reply, _ = read_until_closed(sock, limit_s)
    return wyoming_events_in(reply)


def event_line(kind: str, **data: object) -> bytes:
    return json.dumps({"type": kind, "data": data}).encode() + b"\n"


def test_a_silent_wyoming_connection_is_closed_on_time(deadline_server: LiveServer) -> None:
    assert deadline_server.wyoming_port is not None
    with raw(deadline_server.wyoming_port) as sock:
        start = time.monotonic()
        events = wyoming_events(sock, DEADLINE_S + SLACK_S + 1)
    assert [(e["type"], e.get("code")) for e in events] == [("error", "idle_timeout")]
    assert_on_time(time.monotonic() - start, DEADLINE_S)


def test_a_half_sent_wyoming_event_is_closed_on_time(deadline_server: LiveServer) -> None:
    assert deadline_server.wyoming_port is not None
    with raw(deadline_server.wyoming_port) as sock:
        sock.sendall(b'{"type": "synthesize", "data_length": 100}\n{"text": "Hel')
        start = time.monotonic()
        events = wyoming_events(sock, DEADLINE_S + SLACK_S + 1)
    assert [e["type"] for e in events] == ["error"]
    assert_on_time(time.monotonic() - start, DEADLINE_S)


def test_wyoming_refuses_addresses_outside_its_allow_list(deadline_server: LiveServer) -> None:
    assert deadline_server.wyoming_port is not None
    with ServerLog() as server_log:
        for _ in range(3):
            with raw(deadline_server.wyoming_port, source="127.0.0.2") as sock:
                events = wyoming_events(sock, 5)
            assert [(e["type"], e.get("code")) for e in events] == [("error", "forbidden")]
    warnings = [r for r in server_log.records if "refused a Wyoming client" in r.getMessage()
                and r.levelno >= logging.WARNING]
    assert len(warnings) <= 1  # once per address: a scanner cannot flood the log
    with raw(deadline_server.wyoming_port) as sock:  # 127.0.0.1 is on the list
        sock.sendall(event_line("describe"))
        sock.shutdown(socket.SHUT_WR)
        events = wyoming_events(sock, 5)
    assert [e["type"] for e in events] == ["info"]


def test_wyoming_allows_only_loopback_by_default_when_a_token_is_set() -> None:
    from rtvoice.server import ServerConfig

    def allowed(config: ServerConfig, address: str) -> bool:
        import ipaddress
        return any(ipaddress.ip_address(address) in net for net in config.wyoming_networks())

    assert allowed(ServerConfig(), "192.168.1.7")
    assert not allowed(ServerConfig(token="t"), "192.168.1.7") and allowed(ServerConfig(token="t"), "127.0.0.1")
    assert allowed(ServerConfig(token="t", wyoming_allow=("192.168.1.0/24",)), "192.168.1.7")
    with pytest.raises(ValueError, match="not an address or network"):
        ServerConfig(wyoming_allow=("kitchen",))


# -- crowding: idle sockets of one address do not lock out its honest clients -------------


def test_idle_sockets_do_not_lock_out_an_honest_client_of_the_same_address(crowded_server: LiveServer) -> None:
    """Thirty idle sockets of an address that may run two syntheses: its token holder is still served.

    Ten idle WebSockets, ten silent Wyoming and ten idle HTTP connections from 127.0.0.1;
    the honest client at that address still gets speech over HTTP, WebSocket and Wyoming.
    """
    assert crowded_server.wyoming_port is not None
    with ExitStack() as idle:
        for _ in range(10):
            idle.enter_context(connect(crowded_server.ws_url, additional_headers=crowded_server.headers,
                                       open_timeout=5))
            idle.enter_context(raw(crowded_server.wyoming_port))
            idle.enter_context(raw(crowded_server.port))
        time.sleep(0.2)
        with crowded_server.client() as client:
            response = client.post("/v1/audio/speech", json={"input": "Still served.", "response_format": "pcm"})
        assert response.status_code == 200 and len(response.content) > 0
        with connect(crowded_server.ws_url, additional_headers=crowded_server.headers, open_timeout=5) as ws:
            ws.recv(timeout=5)
            ws.send(json.dumps({"type": "text", "text": "Still served."}))
            ws.send(json.dumps({"type": "end"}))
            kinds = []
            while not kinds or kinds[-1] != "done":
                message = ws.recv(timeout=20)
                kinds.append("audio" if isinstance(message, bytes) else json.loads(message)["type"])
        assert "audio" in kinds and "error" not in kinds
        with raw(crowded_server.wyoming_port) as sock:
            sock.sendall(event_line("synthesize", text="Still served."))
            sock.shutdown(socket.SHUT_WR)
            events = wyoming_events(sock, 20)
        assert [e["type"] for e in events][0] == "audio-start" and events[-1]["type"] == "audio-stop"
    with httpx.Client(base_url=crowded_server.base_url, timeout=10) as client:
        assert client.get("/health").json()["active_streams"] == 0


def test_one_address_cannot_take_every_connection(capped_server: LiveServer) -> None:
    """Over ``max_connections_per_client`` (4) a connection is closed at once.

    Other addresses, and the same address once one of its connections closes, are served;
    WebSocket connections count until they close.
    """
    assert capped_server.wyoming_port is not None
    with ExitStack() as held:
        for _ in range(3):
            held.enter_context(raw(capped_server.port))
        websocket = held.enter_context(connect(capped_server.ws_url, additional_headers=capped_server.headers,
                                               open_timeout=5))
        time.sleep(0.2)
        with raw(capped_server.port) as fifth:
            reply, elapsed = read_until_closed(fifth, 5)
        assert reply == b"" and elapsed < 1
        other = httpx.Client(base_url=capped_server.base_url, headers=capped_server.headers, timeout=10,
                             transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with other:
            assert other.get("/v1/audio/voices").status_code == 200
        websocket.close()  # a WebSocket that closes frees its place
        time.sleep(0.3)
        with capped_server.client() as client:
            assert client.get("/v1/audio/voices").status_code == 200
    with ExitStack() as held:
        for _ in range(4):
            held.enter_context(raw(capped_server.wyoming_port))
        time.sleep(0.2)
        with raw(capped_server.wyoming_port) as fifth:
            events = wyoming_events(fifth, 5)
        assert [(e["type"], e.get("code")) for e in events] == [("error", "too_many_connections")]
        with raw(capped_server.wyoming_port, source="127.0.0.2") as sock:
            sock.sendall(event_line("describe"))
            sock.shutdown(socket.SHUT_WR)
            assert [e["type"] for e in wyoming_events(sock, 5)] == ["info"]


def test_an_idle_websocket_says_what_it_leaves_unspoken(deadline_server: LiveServer) -> None:
    with connect(deadline_server.ws_url, additional_headers=deadline_server.headers, open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send(json.dumps({"type": "text", "text": "Hello there"}))  # no sentence end, no flush
        event = json.loads(ws.recv(timeout=DEADLINE_S + SLACK_S + 1))
    assert event["code"] == "idle_timeout" and "11 characters" in event["message"]
