"""Hostile input through a real Mosquitto: every say and cancel gets exactly one answer.

The daemon (native topics and Rhasspy Hermes) must answer each bad message once -- a
``failed`` event, and for ``hermes/tts/say`` also ``hermes/error/tts`` and ``sayFinished``
so that a Rhasspy dialogue never waits for ever -- with one log line and no traceback,
and keep serving. The property tests drive a daemon on its own event loop thread from
hypothesis, through the broker; test_mqtt_parsers_hostile.py feeds the pure parsers more.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from rtvoice import SynthesisConfig
from rtvoice.announce import Announcer, AnnouncerConfig, BrokerSettings, MessageError
from rtvoice.announce.messages import parse_cancel

if TYPE_CHECKING:
    from rtvoice import Voice

    from .conftest import Mosquitto, Recorder

FIVE_THOUSAND_DIGITS = '{"text": "Hello.", "id": ' + "7" * 5000 + "}"
DEEP = "[" * 20_000
WAIT_S = 20.0


def bad_payloads(limit: int) -> list[bytes | str]:
    """Twenty bad messages of every kind the issue names."""
    return [
        FIVE_THOUSAND_DIGITS, DEEP, "{" * 30_000, bytes(range(256)), b"\xff\xfe\x00", b"caf\xe9",
        '{"text": "Hello \\ud800."}', '{"text": 5}', '{"text": null}', '{"text": ["a"]}', '{"text": {}}',
        '{"text": "x", "volume": NaN}', '{"text": "x", "volume": 1e999}', '{"text": "x", "chime": "yes"}',
        '{"text": "x", "id": [[[[[[]]]]]]}', '{"text": "x", "id": 1.5}', "[1, 2, 3]", '{"text": "x", "colour": "red"}',
        "x" * (limit + 1), '{"text": "x", "priority": {"a": 1}}',
    ]


class LogLines(logging.Handler):
    """Records what the daemon logs at WARNING and above."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger("rtvoice.announce")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def assert_quiet(lines: LogLines, messages: int) -> None:
    """At most one line per bad message, none with a traceback, each a single line."""
    assert len(lines.records) <= messages, [r.getMessage() for r in lines.records]
    for record in lines.records:
        assert record.exc_info is None and record.stack_info is None, record.getMessage()
        assert "\n" not in record.getMessage() and "Traceback" not in record.getMessage()


async def test_each_bad_say_gets_one_failed_event_and_one_log_line(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        log_lines: LogLines) -> None:
    config = announcer_config(refusal_log_burst=100)
    p = config.prefix
    bad = bad_payloads(config.max_payload_bytes)
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for payload in bad:
            await rec.publish(f"{p}say", payload)
        await rec.publish(f"{p}say", '{"text": "Still here.", "id": "ok"}')
        await rec.wait_events(p, "finished", {"ok"})
        await asyncio.sleep(0.3)  # nothing more comes

    failed = rec.events(p, "failed")
    assert len(failed) == len(bad), [f["reason"] for f in failed]
    reasons = [f["reason"] for f in failed]
    assert reasons[:3] == ["invalid_field", "invalid_json", "invalid_json"]  # 5000 digits, 20,000 [, 30,000 {
    assert reasons[6] == "invalid_text" and "surrogate" in failed[6]["error"]  # as HTTP and WebSocket refuse it
    assert "internal_error" not in reasons
    assert all("sys." not in f["error"] and "NoneType" not in f["error"] for f in failed)
    assert [e["id"] for e in rec.events(p, "started")] == ["ok"]
    assert_quiet(log_lines, len(bad))


async def test_a_flood_of_bad_messages_writes_a_bounded_log(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        log_lines: LogLines) -> None:
    config = announcer_config(refusal_log_burst=5, refusal_log_window_s=600)
    p = config.prefix
    async with recorder(f"{p}failed") as rec, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for n in range(60):
            await rec.publish(f"{p}say", f'{{"text": {n}}}')
        await rec.wait_for(lambda: len(rec.on(f"{p}failed")) == 60)
    assert_quiet(log_lines, 60)
    lines = [r.getMessage() for r in log_lines.records]
    assert len(lines) == 6, lines  # five refusals, then one summary at shutdown
    assert lines[-1].startswith("55 more refused message(s) not logged")


async def test_each_bad_hermes_say_gets_an_error_and_say_finished(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        log_lines: LogLines) -> None:
    config = announcer_config(hermes=True, refusal_log_burst=100)
    p = config.prefix
    # Hermes ignores fields it does not know (chime, priority, ...): those would be spoken.
    bad = [b for b in bad_payloads(config.max_payload_bytes)
           if not any(field in str(b) for field in ('"chime"', '"colour"', '"priority"'))]
    bad += ['{"text": "x", "siteId": [1], "id": "r1"}', '{"siteId": "kitchen", "id": "r2", "sessionId": "s2"}']
    async with recorder("hermes/#", f"{p}failed") as rec, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for payload in bad:
            await rec.publish("hermes/tts/say", payload)
        await rec.wait_for(lambda: len(rec.on("hermes/tts/sayFinished")) >= len(bad))
        await asyncio.sleep(0.3)

    answers = [m for m in rec.messages if m.topic in ("hermes/error/tts", "hermes/tts/sayFinished")]
    # Error then sayFinished, once per message, in order (before: the first two got nothing at all).
    assert [m.topic for m in answers] == ["hermes/error/tts", "hermes/tts/sayFinished"] * len(bad)
    finished = [m.json() for m in rec.on("hermes/tts/sayFinished")]
    assert finished[0] == {"id": None, "siteId": "default", "sessionId": None}
    assert finished[-2]["id"] == "r1" and finished[-2]["siteId"] == "default"  # a bad siteId: default's answer
    assert finished[-1] == {"id": "r2", "siteId": "kitchen", "sessionId": "s2"}
    assert len(rec.on(f"{p}failed")) == len(bad)
    assert_quiet(log_lines, len(bad))


async def test_each_bad_cancel_gets_one_failed_event(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        log_lines: LogLines) -> None:
    config = announcer_config(refusal_log_burst=100)
    p = config.prefix
    bad = [b for b in bad_payloads(config.max_payload_bytes) if not isinstance(b, str) or b.startswith(("{", "["))]
    bad += ['{"id": "a/b"}', '{"all": false}', "a+b", "x" * 200]
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for payload in bad:
            await rec.publish(f"{p}cancel", payload)
        await rec.publish(f"{p}cancel", "nothing-by-this-id")  # readable: answered by what it stops (nothing)
        await rec.publish(f"{p}say", '{"text": "Still here.", "id": "ok"}')
        await rec.wait_events(p, "finished", {"ok"})
        await asyncio.sleep(0.3)

    failed = rec.events(p, "failed")
    assert len(failed) == len(bad)
    assert all(f["request"] == "cancel" and f["id"] is None for f in failed)
    assert_quiet(log_lines, len(bad))


async def test_hermes_serves_every_site_unless_site_ids_are_given(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder]) -> None:
    # Before: without --site-id only "default" was served, and a kitchen request got no answer at all.
    every = announcer_config(hermes=True, hermes_play_finished_extra_s=0.0)
    async with recorder("hermes/#") as rec, Announcer(tiny_voice, every) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for site in ("kitchen", "default", "garden"):
            await rec.publish("hermes/tts/say", json.dumps({"text": "Dinner.", "siteId": site, "id": f"e-{site}"}))
        await rec.wait_for(lambda: len(rec.on("hermes/tts/sayFinished")) == 3)
    assert [m.json()["siteId"] for m in rec.on("hermes/tts/sayFinished")] == ["kitchen", "default", "garden"]
    assert len([m for m in rec.messages if "/playBytes/e-kitchen" in m.topic]) == 1

    some = announcer_config(hermes=True, site_ids=("kitchen", "bedroom"), hermes_play_finished_extra_s=0.0)
    async with recorder("hermes/#") as rec, Announcer(tiny_voice, some) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for site in ("garage", "kitchen", "default", "bedroom"):
            await rec.publish("hermes/tts/say", json.dumps({"text": "Dinner.", "siteId": site, "id": f"s-{site}"}))
        await rec.wait_for(lambda: len(rec.on("hermes/tts/sayFinished")) == 2)
        await asyncio.sleep(0.5)  # garage and default are another service's: no answer comes
    assert [m.json()["id"] for m in rec.on("hermes/tts/sayFinished")] == ["s-kitchen", "s-bedroom"]


async def test_an_unexpected_error_is_still_answered_once(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        log_lines: LogLines, monkeypatch: pytest.MonkeyPatch) -> None:
    # A bug (here injected: the text check raises something that is not a refusal) must not leave a
    # message unanswered: the boundary answers internal_error, on Hermes with error/tts and sayFinished.
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("injected")

    config = announcer_config(hermes=True)
    p = config.prefix
    async with recorder(f"{p}failed", "hermes/#") as rec, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        monkeypatch.setattr(tiny_voice, "synthesize", broken)
        await rec.publish(f"{p}say", '{"text": "Hello.", "id": "n1"}')
        await rec.publish("hermes/tts/say", '{"text": "Hello.", "id": "h1", "siteId": "hall"}')
        await rec.wait_for(lambda: len(rec.on(f"{p}failed")) == 2 and bool(rec.on("hermes/tts/sayFinished")))
        monkeypatch.undo()
        await asyncio.sleep(0.3)
    failed = [m.json() for m in rec.on(f"{p}failed")]
    assert [(f["reason"], f["source"]) for f in failed] == [("internal_error", "native"), ("internal_error", "hermes")]
    assert "ZeroDivisionError" not in failed[0]["error"]  # no Python internals to the client
    assert [f["id"] for f in failed] == ["n1", "h1"]
    assert [m.json()["context"] for m in rec.on("hermes/error/tts")] == ["h1"]
    assert [m.json() for m in rec.on("hermes/tts/sayFinished")] == [{"id": "h1", "siteId": "hall", "sessionId": None}]
    assert_quiet(log_lines, 2)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise KeyError("VmRSS")


ROUND = 600
"""Bad messages in each measured round (1500 before, 26 s more here; the leak bound a message is kept)."""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_memory_stays_flat_over_thousands_of_bad_messages(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig],
        recorder: Callable[..., Recorder]) -> None:
    """A leak grows with every message; allocator warm-up does not, so compare two equal rounds.

    Python's own allocations (tracemalloc) are the exact measure: anything the daemon keeps
    of a refused message (its payload, a task, a log record) shows there. RSS is a coarse
    second check for leaks below Python; in a process of a whole test suite (about 1 GiB)
    it moves by several MiB on its own, so it only bounds gross growth.
    """
    import tracemalloc

    # One refusal-log window for the whole test: the burst it logs falls in the warm-up. With the
    # default 60 s window, a machine ~1.5x slower than ours rolls it over during the second round,
    # and pytest's log capture keeps those 11 records and the frames their exceptions reference
    # (+150 KiB measured here with a 30 s window: a flake, not a leak; -p no:logging: -8.9 KiB).
    config = announcer_config(hermes=True, refusal_log_window_s=3600.0)
    p = config.prefix
    bad = [b for b in bad_payloads(config.max_payload_bytes)
           if not any(field in str(b) for field in ('"chime"', '"colour"', '"priority"'))]
    topics = [f"{p}say", "hermes/tts/say", f"{p}cancel"]
    answered = 0

    async with recorder(f"{p}failed") as rec, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)

        async def send(n: int) -> tuple[int, float]:
            """Send n bad messages, wait for their n answers, forget them; Python bytes and RSS after."""
            nonlocal answered
            for i in range(n):
                await rec.publish(topics[i % len(topics)], bad[i % len(bad)])
            await rec.wait_for(lambda: len(rec.messages) >= n)
            await asyncio.sleep(0.2)  # a second answer to any message would arrive here
            answered += len(rec.messages)
            assert len(rec.messages) == n  # one failed event each (cancel included), no more
            rec.messages.clear()  # the recorder's own memory stays out of the measure
            gc.collect()
            return tracemalloc.get_traced_memory()[0], rss_mib()

        tracemalloc.start()
        try:
            await send(300)  # warm-up: caches, buffers, the broker session
            first = await send(ROUND)
            second = await send(ROUND)
        finally:
            tracemalloc.stop()
    assert answered == 300 + 2 * ROUND
    python_kib = (second[0] - first[0]) / 1024
    print(f"over the second {ROUND} bad messages: Python heap {python_kib:+.1f} KiB, "
          f"RSS {first[1]:.1f} -> {second[1]:.1f} MiB")
    # Keeping even 100 bytes of each message would be +59 KiB; the bound is 68 bytes a message, as it
    # was with 100 KiB over 1500 (measured here: -2.7 and +3.0 KiB over 600).
    assert python_kib < 40, python_kib
    assert second[1] - first[1] < 16, (first[1], second[1])


# --- Property tests through the broker: a daemon on its own thread, driven from hypothesis ---

class Daemon:
    """An :class:`Announcer` running on its own event loop thread (hypothesis tests are synchronous)."""

    def __init__(self, voice: Voice, config: AnnouncerConfig) -> None:
        self.voice = voice
        self.config = config
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="test.daemon")
        self.error: BaseException | None = None

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with Announcer(self.voice, self.config) as announcer:
                await asyncio.wait_for(announcer.wait_connected(), WAIT_S)
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            raise

    def __enter__(self) -> Daemon:
        self._thread.start()
        assert self._ready.wait(WAIT_S) and self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT_S)
        assert self.error is None, self.error


class Client:
    """A plain paho MQTT 5 client that records everything on ``topics``."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.sent: dict[str, int] = {}
        self.refused_cancels = 0
        self._changed = threading.Condition()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"hostile-{uuid.uuid4().hex[:6]}",
                                   protocol=paho.MQTTv5)
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *args: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        result, _ = self._client.subscribe([(topic, 1) for topic in topics])
        assert result == paho.MQTT_ERR_SUCCESS
        assert subscribed.wait(WAIT_S), "no SUBACK"

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._changed:
            self.messages.append((message.topic, bytes(message.payload)))
            self._changed.notify_all()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def publish(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)
        self.sent[topic] = self.sent.get(topic, 0) + 1

    def count(self, topic: str) -> int:
        with self._changed:
            return sum(1 for t, _ in self.messages if t == topic)

    def wait_count(self, topics: tuple[str, ...], n: int) -> None:
        """Wait until messages on ``topics`` number ``n`` at least."""
        deadline = time.monotonic() + WAIT_S
        with self._changed:
            while sum(1 for t, _ in self.messages if t in topics) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"only {sum(1 for t, _ in self.messages if t in topics)} of {n} answers"
                self._changed.wait(left)


@pytest.fixture(scope="module")
def daemon(tiny_voice: Voice, module_broker: Mosquitto) -> Iterator[tuple[Daemon, Client, LogLines]]:
    settings_ = BrokerSettings.from_url(module_broker.url, client_id=f"rtv-{uuid.uuid4().hex[:8]}")
    config = AnnouncerConfig(settings_, prefix=f"h{uuid.uuid4().hex[:6]}/", hermes=True,
                             hermes_play_finished_extra_s=0.0, synthesis=SynthesisConfig(max_decoder_steps=24))
    lines = LogLines()
    logger = logging.getLogger("rtvoice.announce")
    logger.addHandler(lines)
    client = Client(module_broker.port, [f"{config.prefix}#", "hermes/tts/sayFinished", "hermes/error/tts"])
    try:
        with Daemon(tiny_voice, config) as running:
            yield running, client, lines
    finally:
        client.close()
        logger.removeHandler(lines)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
FIELDS = st.sampled_from(["text", "id", "priority", "voice", "volume", "chime", "all", "siteId", "sessionId"])
OBJECTS = st.dictionaries(FIELDS, JSON, max_size=5)


def as_payload(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


PAYLOADS = st.binary(max_size=200) | (JSON | OBJECTS).map(as_payload)
E2E = settings(max_examples=120, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@E2E
@given(payload=PAYLOADS)
def test_every_native_say_gets_exactly_one_answer(daemon: tuple[Daemon, Client, LogLines], payload: bytes) -> None:
    running, client, _ = daemon
    p = running.config.prefix
    terminal = (f"{p}finished", f"{p}failed")
    before = sum(client.count(t) for t in terminal)
    client.publish(f"{p}say", payload)
    client.wait_count(terminal, before + 1)


@E2E
@given(payload=PAYLOADS)
def test_every_hermes_say_gets_say_finished(daemon: tuple[Daemon, Client, LogLines], payload: bytes) -> None:
    running, client, _ = daemon
    before = client.count("hermes/tts/sayFinished")
    client.publish("hermes/tts/say", payload)
    client.wait_count(("hermes/tts/sayFinished",), before + 1)


@E2E
@given(payload=PAYLOADS)
def test_every_unreadable_cancel_gets_one_failed_event(daemon: tuple[Daemon, Client, LogLines],
                                                       payload: bytes) -> None:
    running, client, _ = daemon
    p = running.config.prefix
    try:
        parse_cancel(payload, max_bytes=running.config.max_payload_bytes)
        refused = False
    except MessageError:
        refused = True
    before = client.count(f"{p}failed")
    client.publish(f"{p}cancel", payload)
    if refused:
        client.refused_cancels += 1
        client.wait_count((f"{p}failed",), before + 1)


def test_zz_the_property_runs_got_one_answer_each_and_no_traceback(
        daemon: tuple[Daemon, Client, LogLines]) -> None:
    """After the property tests on the same daemon: no message got two answers (nor none)."""
    running, client, lines = daemon
    p = running.config.prefix
    time.sleep(0.5)  # a second answer to the last message would be here by now
    with client._changed:
        events = [(t, json.loads(payload)) for t, payload in client.messages
                  if t in (f"{p}finished", f"{p}failed")]
        say_finished = sum(1 for t, _ in client.messages if t == "hermes/tts/sayFinished")
        errors = sum(1 for t, _ in client.messages if t == "hermes/error/tts")
    terminal = [e for _, e in events]
    native = [e for e in terminal if e["source"] == "native" and e.get("request") != "cancel"]
    hermes_ = [e for e in terminal if e["source"] == "hermes"]
    cancels = [e for e in terminal if e.get("request") == "cancel"]
    assert client.sent[f"{p}say"] > 0 and client.sent["hermes/tts/say"] > 0
    assert len(native) == client.sent[f"{p}say"]
    assert len(hermes_) == say_finished == client.sent["hermes/tts/say"]
    assert errors == sum(1 for e in hermes_ if e["event"] == "failed")
    assert len(cancels) == client.refused_cancels
    assert not [e for e in terminal if e.get("reason") == "internal_error"]
    for record in lines.records:
        assert record.exc_info is None and "Traceback" not in record.getMessage()
    assert not [r for r in lines.records if r.levelno >= logging.ERROR], [r.getMessage() for r in lines.records]
