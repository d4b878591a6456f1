"""Live-server helpers shared by the server tests.

A uniquely named module, not conftest, so that test files import it unambiguously when
the whole suite runs (tests/mqtt has a conftest too).
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from rtvoice.server import ServerConfig, uvicorn_config

TOKEN = "test-token"
#: The tiny random voice never stops on its own; a short cap keeps every synthesis quick.
MAX_STEPS = 24
SENTENCE_BYTES = 2 * MAX_STEPS * 256
"""PCM bytes of one sentence at the test voice's step limit (16-bit samples, 256 a frame)."""


@dataclass
class LiveServer:
    """A running server and how to reach it."""

    config: ServerConfig
    port: int
    wyoming_port: int | None
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/audio/stream"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}

    def client(self, **kwargs: object) -> httpx.Client:
        """An HTTP client with the token; its bodies say they are JSON unless a request says otherwise."""
        headers = {**self.headers, "Content-Type": "application/json"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of /metrics (0 when absent)."""
        text = httpx.get(f"{self.base_url}/metrics", headers=self.headers, timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Wait until no synthesis runs (the active-streams gauge is 0)."""
        deadline = time.monotonic() + timeout_s
        while self.metric("rtvoice_active_streams") > 0:
            assert time.monotonic() < deadline, "syntheses still running"
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(process: subprocess.Popen[Any], port: int, limit_s: float = 60) -> None:
    """Wait until the ``rtvoice serve`` in ``process`` answers /health on ``port``.

    Fails with the process's output if it exits first, or after ``limit_s``.
    """
    deadline = time.monotonic() + limit_s
    while True:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "rtvoice serve did not come up"
        time.sleep(0.1)


def start_server(config: ServerConfig, *, send_buffer: int | None = None) -> LiveServer:
    """Start ``config`` on a free port in a thread; returns once it accepts requests.

    ``send_buffer`` fixes the kernel's send buffer of every accepted HTTP connection (a
    slow link): a client that stops reading then stalls the server after a few chunks,
    not after the megabytes loopback's autotuning would buffer.
    """
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so; without it
    # Nagle and delayed ACKs add 40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:  # accepted sockets inherit it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = replace(config, port=port)
    server = uvicorn.Server(uvicorn_config(config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "server failed to start"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    return LiveServer(config, port, config.wyoming_port, server, thread)


def stop_server(live: LiveServer) -> None:
    live.server.should_exit = True
    live.thread.join(timeout=30)
    assert not live.thread.is_alive(), "server did not stop"


class ServerLog(logging.Handler):
    """Collect what the servers of this process log (uvicorn's and rtvoice's loggers).

    Attach it after the server started: uvicorn's logging setup drops handlers it did
    not make.
    """

    LOGGERS = ("uvicorn", "rtvoice")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> ServerLog:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)

    def errors(self) -> list[str]:
        """Every record at ERROR or above, or with a traceback, as text."""
        return [f"{r.name}: {r.getMessage()}" for r in self.records if r.levelno >= logging.ERROR or r.exc_info]


def wyoming_events_in(data: bytes) -> list[dict[str, Any]]:
    """The Wyoming events framed in ``data``, each a header's type with its data merged in.

    Data given inline and in ``data_length`` bytes are merged; payloads are skipped.
    """
    events = []
    while data:
        line, _, data = data.partition(b"\n")
        header = json.loads(line)
        merged = dict(header.get("data") or {})
        if header.get("data_length"):
            merged.update(json.loads(data[:header["data_length"]]))
            data = data[header["data_length"]:]
        data = data[header.get("payload_length") or 0:]
        events.append({"type": header["type"], **merged})
    return events


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Read ``sock`` until the server closes it; returns the bytes and the seconds it took.

    Fails when the server still holds the connection after ``limit_s``.
    """
    start = time.monotonic()
    sock.settimeout(limit_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
            sock.settimeout(max(0.01, limit_s - (time.monotonic() - start)))
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server still held the connection after {limit_s} s") from None
    return received, time.monotonic() - start


def wyoming_client(server: LiveServer) -> AsyncTcpClient:
    """A Wyoming client of the live server's Wyoming port."""
    assert server.wyoming_port is not None
    return AsyncTcpClient("127.0.0.1", server.wyoming_port, connect_timeout=5, read_timeout=20)


async def read_until(wyoming: AsyncTcpClient, *types: str) -> list[Event]:
    """Wyoming events up to and including the first of ``types``; the server must not close first."""
    events = []
    while True:
        event = await wyoming.read_event()
        assert event is not None, "server closed the connection"
        events.append(event)
        if event.type in types:
            return events
