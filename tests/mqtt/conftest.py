"""A real Mosquitto broker per test, and an MQTT client that records what the daemon says.

The broker is Debian's ``mosquitto`` (``apt-get install -y mosquitto mosquitto-clients``),
started on a free port with a generated config: a listener on 127.0.0.1, anonymous
access and on-disk persistence, so that a restarted broker keeps sessions, queued QoS 1
messages and retained status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rtvoice import SynthesisConfig
from rtvoice.announce import AnnouncerConfig, BrokerSettings
from rtvoice.audio import AudioChunk

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
TIMEOUT_S = 30.0
"""Upper bound of every wait; the tests normally take a fraction of it."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    """One broker process on 127.0.0.1 with persistence in its own folder."""

    def __init__(self, folder: Path) -> None:
        assert MOSQUITTO is not None
        self.folder = folder
        self.port = _free_port()
        self.config = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "autosave_interval 0\n"  # saved on shutdown, which is what the restart test needs
            "max_queued_messages 10000\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "user root\n"  # run as whoever we are (mosquitto drops root to 'mosquitto' otherwise)
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None
        assert MOSQUITTO is not None
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text() if self.log.exists() else '?'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file and exits."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto mosquitto-clients)")
    server = Mosquitto(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for a whole module (for property tests that run many examples against one daemon)."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto mosquitto-clients)")
    server = Mosquitto(tmp_path_factory.mktemp("broker"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """An outside MQTT 5 client with a persistent session, as a test's eyes and hands.

    It records every message on ``topics``, reconnects on its own when the broker
    restarts, and publishes the test's input.
    """

    def __init__(self, port: int, topics: list[str]) -> None:
        self.port = port
        self.topics = topics
        self.messages: list[Received] = []
        self.connected = asyncio.Event()
        self._changed = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._id = f"recorder-{uuid.uuid4().hex[:8]}"

    async def __aenter__(self) -> Recorder:
        self._task = asyncio.create_task(self._run(), name="test.recorder")
        await asyncio.wait_for(self.connected.wait(), TIMEOUT_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 600
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self._id,
                                          protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                                          properties=properties) as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self._client = client
                    self.connected.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                        self.messages.append(Received(str(m.topic), payload, bool(m.retain)))
                        self._changed.set()
            except aiomqtt.MqttError:
                self.connected.clear()
                self._client = None
                await asyncio.sleep(0.1)

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        await asyncio.wait_for(self.connected.wait(), TIMEOUT_S)
        assert self._client is not None
        await self._client.publish(topic, payload, qos=1, retain=retain)

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]

    def events(self, prefix: str, *kinds: str) -> list[dict[str, Any]]:
        """Event payloads on ``<prefix><kind>`` for the given kinds, in arrival order."""
        topics = {f"{prefix}{kind}" for kind in kinds}
        return [m.json() for m in self.messages if m.topic in topics]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
        """Wait until ``condition()`` holds, re-checking after every message."""
        async def until() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            seen = "\n".join(f"  {m.topic} {m.payload[:200]!r}" for m in self.messages)
            raise AssertionError(f"condition not met within {timeout} s; messages:\n{seen}") from None

    async def wait_events(self, prefix: str, kind: str, ids: set[str], timeout: float = TIMEOUT_S) -> None:
        await self.wait_for(lambda: ids <= {e["id"] for e in self.events(prefix, kind)}, timeout)


class Relay:
    """A TCP relay between a client (the daemon) and the broker, which the test can make lose packets.

    Everything is passed on both ways until :meth:`swallow_upstream`: from then on, what the
    client sends (its PUBACKs, say) is dropped on the way, as if the network or the broker
    had lost it. :meth:`cut` then closes every relayed connection -- the broker sees the
    client go, the client sees the broker go -- and relays normally again, for the
    reconnection. Use ``async with`` on it.
    """

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.port = 0
        self.swallowed = bytearray()
        """What the client sent since :meth:`swallow_upstream`."""
        self._swallowing = False
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", self.broker_port)
        except OSError:  # the broker is down: so is this connection
            client_writer.close()
            return
        self._links.add((client_writer, broker_writer))
        for task in (asyncio.create_task(self._pump(client_reader, broker_writer, upstream=True)),
                     asyncio.create_task(self._pump(broker_reader, client_writer, upstream=False))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if upstream and self._swallowing:
                    self.swallowed += data
                    self._changed.set()
                    continue
                writer.write(data)
                await writer.drain()
        writer.close()

    def swallow_upstream(self) -> None:
        self._swallowing = True
        self.swallowed.clear()

    async def wait_swallowed(self, condition: Callable[[bytes], bool], timeout: float = TIMEOUT_S) -> None:
        """Wait until what was swallowed satisfies ``condition``."""
        async def until() -> None:
            while not condition(bytes(self.swallowed)):
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(until(), timeout)

    def cut(self) -> None:
        """Close every relayed connection now; later connections are relayed normally."""
        for client_writer, broker_writer in self._links:
            client_writer.close()
            broker_writer.close()
        self._links.clear()
        self._swallowing = False


@pytest.fixture
def relay(broker: Mosquitto) -> Callable[[], Relay]:
    """A factory of :class:`Relay` to the test broker (use ``async with`` on what it returns)."""
    return lambda: Relay(broker.port)


@pytest.fixture
def recorder(broker: Mosquitto) -> Callable[..., Recorder]:
    """A factory of :class:`Recorder` on the test broker (use ``async with`` on what it returns)."""
    return lambda *topics: Recorder(broker.port, list(topics))


@pytest.fixture
def announcer_config(broker: Mosquitto) -> Callable[..., AnnouncerConfig]:
    """An AnnouncerConfig for the test broker, a unique prefix and client id, and short speech."""

    def make(**changes: Any) -> AnnouncerConfig:
        broker_changes = {k: changes.pop(k) for k in ("client_id", "port", "protocol", "reconnect_min_s",
                                                      "reconnect_max_s") if k in changes}
        settings = BrokerSettings.from_url(broker.url, client_id=f"rtv-{uuid.uuid4().hex[:8]}",
                                           reconnect_min_s=0.2, reconnect_max_s=2.0)
        defaults: dict[str, Any] = {"prefix": f"t{uuid.uuid4().hex[:6]}/", "shutdown_grace_s": 5.0,
                                    "synthesis": SynthesisConfig(max_decoder_steps=24)}
        config = AnnouncerConfig(settings, **{**defaults, **changes})
        return config.with_broker(**broker_changes) if broker_changes else config

    return make


class PacedSink:
    """A pretend sound card: takes each chunk's duration (divided by ``speed``) to play it."""

    audible = True

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self.played: list[int] = []
        """Samples played per finished announcement."""

    async def play(self, chunks: AsyncIterator[AudioChunk], sample_rate: int, volume: float) -> None:
        n = 0
        async for chunk in chunks:
            await asyncio.sleep(chunk.duration_s / self.speed)
            n += len(chunk.samples)
        self.played.append(n)

    async def aclose(self) -> None:
        pass


@pytest.fixture
def paced_sink() -> Callable[..., PacedSink]:
    return PacedSink
