"""The MQTT connection, kept up: the only module of rtvoice that imports aiomqtt.

:class:`BrokerLink` connects, subscribes, marks the daemon ``online`` (retained, with a
Last Will saying ``offline``), hands every received message to an inbox queue and
publishes an outbox, all with QoS 1. When the broker goes away it reconnects with
exponential backoff; the outbox and everything already in the inbox survive, so no
queued announcement or event is lost to a broker restart.

The session is persistent (MQTT 5 ``clean_start=False`` with a session expiry;
MQTT 3.1.1 ``clean_session=False``), so the broker keeps this client's subscriptions and
queues QoS 1 messages published while it is disconnected. A fresh aiomqtt client is
made per connection: nothing paho remembers about a dead connection is reused, and the
outbox alone decides what is (re)sent -- at least once. Received messages are at least once
too: :class:`Redeliveries` drops the broker's resending of one already received.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import random
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .audio_out import release_memory
from .config import BrokerSettings

log = logging.getLogger("rtvoice.announce")

QOS = 1
ONLINE = b"online"
OFFLINE = b"offline"
RELEASE_AFTER_BYTES = 1024 * 1024
"""Once a message this large has reached the broker, freed heap is returned to the system."""
REDELIVERY_MEMORY = 256
"""Received QoS 1 messages remembered to recognise a redelivery: far more than a broker keeps
unacknowledged in flight to one client (Mosquitto: 20)."""


@dataclass(frozen=True)
class Incoming:
    """A received message, free of aiomqtt types."""

    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool = False
    droppable: bool = False
    """May be dropped when the outbox overflows (audio); events never are."""


class Backoff:
    """Reconnect delays: ``first_s`` doubling up to ``max_s``, each scaled by 0.5-1.0 (jitter)."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self._first = first_s
        self._max = max_s
        self._attempt = 0

    def next(self) -> float:
        delay = min(self._max, self._first * 2.0**self._attempt)
        self._attempt = min(self._attempt + 1, 30)
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self._attempt = 0


class Redeliveries:
    """Recognises the broker's redelivery of a QoS 1 message that this client already received.

    Why: QoS 1 is at least once. A message whose PUBACK the broker had not processed when the
    connection dropped (a broker restart, a network cut) is sent again when the persistent
    session resumes; the daemon, which keeps what it received across reconnections, would
    speak it twice. aiomqtt's ``Message`` carries neither the DUP flag nor CONNACK's
    session-present flag, so a redelivery is told by what the protocol keeps: it repeats the
    topic, QoS, payload and packet id of a message received on an earlier connection
    (MQTT-4.4.0-1), and it arrives before the broker has acknowledged the new connection's
    subscriptions (Mosquitto resends right after CONNACK). A message published again later is
    a new one with a new packet id, and a session the broker lost sends nothing before the
    subscriptions, so neither is dropped. Remembers the last ``size`` QoS 1 and 2 messages.
    """

    def __init__(self, size: int = REDELIVERY_MEMORY) -> None:
        self._size = size
        self._seen: collections.OrderedDict[tuple[str, int, int, bytes], None] = collections.OrderedDict()

    def seen_again(self, topic: str, payload: bytes, *, qos: int, mid: int, resumed: bool) -> bool:
        """Remember a received message; True if it is a redelivery of one received before.

        Args:
            topic: The message's topic.
            payload: Its payload.
            qos: The QoS it was delivered with.
            mid: Its packet id, which a redelivery keeps.
            resumed: It arrived before the subscriptions of its connection were acknowledged.
        """
        if qos == 0:  # never redelivered, and its packet id is always 0
            return False
        key = (topic, qos, mid, hashlib.sha256(payload).digest())
        again = resumed and key in self._seen
        self._seen[key] = None
        self._seen.move_to_end(key)
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return again


class BrokerLink:
    """One logical MQTT connection that outlives broker restarts. Run :meth:`run` as a task.

    Args:
        settings: Broker address, credentials and session settings.
        subscriptions: Topic filters subscribed (QoS 1) on every connection.
        status_topic: Gets retained ``online`` on connect; the Last Will sets ``offline``.
        inbox: Where received messages go, in order.
        max_outbox_bytes: Droppable messages beyond this are dropped while disconnected.
    """

    def __init__(self, settings: BrokerSettings, *, subscriptions: Sequence[str], status_topic: str,
                 inbox: asyncio.Queue[Incoming], max_outbox_bytes: int) -> None:
        self._settings = settings
        self._subscriptions = tuple(subscriptions)
        self._status_topic = status_topic
        self._inbox = inbox
        self._max_outbox_bytes = max_outbox_bytes
        self._outbox: collections.deque[Outgoing] = collections.deque()
        self._outbox_bytes = 0
        self._outbox_changed = asyncio.Event()
        self._outbox_empty = asyncio.Event()
        self._outbox_empty.set()
        self._connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self._failures = 0
        self._redeliveries = Redeliveries()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    @property
    def pending(self) -> list[str]:
        """Topics of the messages waiting in the outbox, oldest first."""
        return [m.topic for m in self._outbox]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, droppable: bool = False) -> None:
        """Queue a QoS 1 message; it is sent in order, now or after the next reconnection."""
        self._outbox.append(Outgoing(topic, payload, retain, droppable))
        self._outbox_bytes += len(payload)
        self._outbox_empty.clear()
        self._outbox_changed.set()
        self._trim_outbox()

    def _trim_outbox(self) -> None:
        # Index 0 may be in flight; drop from the oldest droppable after it.
        while self._outbox_bytes > self._max_outbox_bytes:
            index = next((i for i, m in enumerate(self._outbox) if i and m.droppable), None)
            if index is None:
                return
            victim = self._outbox[index]
            del self._outbox[index]
            self._outbox_bytes -= len(victim.payload)
            log.warning("outbox over %d bytes (the broker is away or slow): dropped %s (%d bytes)",
                        self._max_outbox_bytes, victim.topic, len(victim.payload))

    async def flush(self, timeout: float) -> bool:
        """Wait until the outbox is delivered; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._outbox_empty.wait(), timeout)
        except TimeoutError:
            log.warning("%d message(s) not delivered to the broker before shutdown", len(self._outbox))
            return False
        return True

    async def unsubscribe(self, topics: Sequence[str], timeout: float) -> None:
        """Stop new messages on ``topics`` now (if connected); errors are logged, not raised."""
        client = self._client
        if client is None or not topics:
            return
        try:
            await client.unsubscribe(list(topics), timeout=timeout)
        except aiomqtt.MqttError as exc:
            log.warning("could not unsubscribe from %s: %s", ", ".join(topics), exc)

    async def run(self) -> None:
        """Stay connected until cancelled; cancelling disconnects cleanly (no Last Will)."""
        while True:
            try:
                await self._serve()
            except* aiomqtt.MqttError as group:
                # Say it once per outage; the retries behind it are only info.
                (log.info if self._failures else log.warning)(
                    "MQTT connection to %s lost or refused: %s", self._settings.describe(),
                    "; ".join(str(e) for e in group.exceptions))
                self._failures += 1
            delay = self._backoff.next()
            log.info("reconnecting to %s in %.1f s", self._settings.describe(), delay)
            await asyncio.sleep(delay)

    async def _serve(self) -> None:
        async with self._new_client() as client:
            log.info("connected to %s as %s", self._settings.describe(), self._settings.client_id)
            self._backoff.reset()
            self._failures = 0
            for topic in self._subscriptions:
                await client.subscribe(topic, qos=QOS)
            # Redeliveries come before the SUBACKs; so may a message or two right after the last one.
            resent = len(client.messages)
            await client.publish(self._status_topic, ONLINE, qos=QOS, retain=True)
            self._client = client
            self._connected.set()
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self._receive(client, resent), name="rtvoice[announce].mqtt.receive")
                    tasks.create_task(self._send(client), name="rtvoice[announce].mqtt.send")
            finally:
                self._connected.clear()
                self._client = None

    async def _receive(self, client: aiomqtt.Client, resent: int) -> None:
        """Pass messages to the inbox, but not redeliveries; the first ``resent`` may be those."""
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes):
                payload = b"" if payload is None else str(payload).encode()
            topic, resumed, resent = str(message.topic), resent > 0, resent - 1
            if self._redeliveries.seen_again(topic, payload, qos=message.qos, mid=message.mid, resumed=resumed):
                log.info("dropped a redelivery of a message on %s already received (QoS 1 is at least once)", topic)
                continue
            await self._inbox.put(Incoming(topic, payload, bool(message.retain)))

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            while not self._outbox:
                self._outbox_changed.clear()
                await self._outbox_changed.wait()
            item = self._outbox[0]
            await client.publish(item.topic, item.payload, qos=QOS, retain=item.retain)
            # PUBACK received: it is the broker's now. (A failure above leaves it first in line.)
            self._outbox.popleft()
            size = len(item.payload)
            self._outbox_bytes -= size
            del item
            if size >= RELEASE_AFTER_BYTES:
                release_memory()
            if not self._outbox:
                self._outbox_empty.set()

    def _new_client(self) -> aiomqtt.Client:
        s = self._settings
        v5 = s.protocol == "5"
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = s.session_expiry_s
        tls = None
        if s.tls:
            tls = ssl.create_default_context(cafile=s.tls_ca_file)
        return aiomqtt.Client(
            s.host, s.port,
            username=s.username, password=s.password,
            identifier=s.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self._status_topic, OFFLINE, qos=QOS, retain=True),
            clean_session=None if v5 else False,
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,  # v5: resume the session
            keepalive=s.keepalive_s,
            properties=properties,
            tls_context=tls,
            logger=logging.getLogger("rtvoice.announce.mqtt"),
        )
