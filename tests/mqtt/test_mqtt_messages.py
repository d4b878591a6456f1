"""Parsing and encoding of the announcer's messages, its queue and settings: no broker needed."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from rtvoice.announce import hermes
from rtvoice.announce.config import AnnouncerConfig, BrokerSettings, Topics
from rtvoice.announce.errors import ConfigError, MessageError, Reason
from rtvoice.announce.link import Backoff, BrokerLink
from rtvoice.announce.messages import Announcement, HermesRequest, Priority, event_payload, parse_cancel, parse_say
from rtvoice.announce.queue import AnnouncementQueue
from rtvoice.announce.sinks import chime

LIMIT = 1024


def say(payload: bytes | str) -> Announcement:
    return parse_say(payload.encode() if isinstance(payload, str) else payload, max_bytes=LIMIT)


def refused(payload: bytes | str) -> MessageError:
    with pytest.raises(MessageError) as info:
        say(payload)
    return info.value


def test_plain_text_is_an_announcement_with_a_fresh_id() -> None:
    a, b = say("Platform two."), say("Platform two.")
    assert a.text == "Platform two." and a.priority is Priority.NORMAL and a.voice is None
    assert a.volume == 1.0 and not a.chime and a.source == "native"
    assert a.id != b.id and len(a.id) == 32


def test_json_fields() -> None:
    a = say(json.dumps({"text": "Fire drill.", "id": "d-1", "priority": "urgent", "voice": "tiny",
                        "volume": 0.5, "chime": True}))
    assert (a.text, a.id, a.priority, a.voice, a.volume, a.chime) == ("Fire drill.", "d-1", Priority.URGENT,
                                                                       "tiny", 0.5, True)
    assert say('{"text": "x", "id": 7, "priority": "LOW"}').id == "7"
    assert say('  {"text": "x", "priority": "low"}').priority is Priority.LOW


@pytest.mark.parametrize(("payload", "reason", "ident"), [
    ('{"text": "unterminated', Reason.INVALID_JSON, None),
    ("[1, 2]", Reason.INVALID_FIELD, None),
    ('{"id": "a"}', Reason.INVALID_FIELD, "a"),
    ('{"text": 5, "id": "a"}', Reason.INVALID_FIELD, "a"),
    ('{"text": "x", "id": "a", "priority": "loud"}', Reason.INVALID_FIELD, "a"),
    ('{"text": "x", "id": "a", "priority": 2}', Reason.INVALID_FIELD, "a"),
    ('{"text": "x", "id": "a", "volume": "max"}', Reason.INVALID_FIELD, "a"),
    ('{"text": "x", "id": "a", "volume": true}', Reason.INVALID_FIELD, "a"),
    ('{"text": "x", "id": "a", "volume": 2.5}', Reason.INVALID_FIELD, "a"),
    ('{"text": "x", "id": "a", "chime": "yes"}', Reason.INVALID_FIELD, "a"),
    ('{"text": "x", "id": "a", "voice": 3}', Reason.INVALID_FIELD, "a"),
    ('{"text": "x", "id": "a", "prority": "urgent"}', Reason.INVALID_FIELD, "a"),
    ('{"text": "x", "id": "a/b"}', Reason.INVALID_FIELD, None),
    ('{"text": "x", "id": ""}', Reason.INVALID_FIELD, None),
    ('{"text": "", "id": "a"}', Reason.EMPTY_TEXT, "a"),
    ("   \n", Reason.EMPTY_TEXT, None),
    (b"caf\xe9 au lait", Reason.INVALID_UTF8, None),
    ("x" * (LIMIT + 1), Reason.PAYLOAD_TOO_LARGE, None),
])
def test_bad_say_payloads_are_refused_with_a_reason(payload: str | bytes, reason: Reason, ident: str | None) -> None:
    error = refused(payload)
    assert error.reason is reason
    assert error.id == ident
    assert str(error)


def test_cancel_payloads() -> None:
    assert parse_cancel(b"", max_bytes=LIMIT) is None
    assert parse_cancel(b"*", max_bytes=LIMIT) is None
    assert parse_cancel(b'{"all": true}', max_bytes=LIMIT) is None
    assert parse_cancel(b" a1 ", max_bytes=LIMIT) == "a1"
    assert parse_cancel(b'{"id": "a1"}', max_bytes=LIMIT) == "a1"
    for bad in (b"{", b'{"all": false}', b'{"id": "a/b"}', b"\xff"):
        with pytest.raises(MessageError):
            parse_cancel(bad, max_bytes=LIMIT)


def test_hermes_say_fields_follow_rhasspy_hermes() -> None:
    payload = {"text": "Hello.", "siteId": "kitchen", "id": "r1", "sessionId": "s1", "lang": "en_US"}
    a = hermes.parse_say(json.dumps(payload).encode(), site_ids=("kitchen",), max_bytes=LIMIT)
    assert a is not None and a.source == "hermes" and a.text == "Hello." and a.id == "r1"
    assert a.hermes == HermesRequest("kitchen", "r1", "s1", "en_US", "r1")
    assert json.loads(hermes.say_finished(a.hermes)) == {"id": "r1", "siteId": "kitchen", "sessionId": "s1"}
    assert hermes.play_bytes_topic("kitchen", "r1") == "hermes/audioServer/kitchen/playBytes/r1"
    assert json.loads(hermes.tts_error("boom", site_id="x", request=a.hermes)) == {
        "error": "boom", "siteId": "kitchen", "context": "r1", "sessionId": "s1"}


def test_hermes_say_defaults_and_other_sites() -> None:
    assert hermes.parse_say(b'{"text": "Hi.", "siteId": "bedroom"}', site_ids=("kitchen",), max_bytes=LIMIT) is None
    a = hermes.parse_say(b'{"text": "Hi."}', site_ids=("default",), max_bytes=LIMIT)
    assert a is not None and a.hermes is not None
    assert a.hermes.id is None and a.hermes.session_id is None and a.hermes.request_id == a.id
    assert json.loads(hermes.say_finished(a.hermes)) == {"id": None, "siteId": "default", "sessionId": None}
    slash = hermes.parse_say(b'{"text": "Hi.", "id": "a/b"}', site_ids=("default",), max_bytes=LIMIT)
    assert slash is not None and slash.hermes is not None
    assert slash.hermes.id == "a/b" and "/" not in slash.hermes.request_id  # id echoed, topic kept valid


def test_hermes_bad_say_keeps_the_request_for_the_answer() -> None:
    with pytest.raises(MessageError) as info:
        hermes.parse_say(b'{"siteId": "default", "id": "r9", "sessionId": "s"}', site_ids=("default",), max_bytes=LIMIT)
    assert info.value.reason is Reason.INVALID_FIELD
    assert info.value.hermes is not None and info.value.hermes.id == "r9"
    with pytest.raises(MessageError) as info:
        hermes.parse_say(b"not json", site_ids=("default",), max_bytes=LIMIT)
    assert info.value.reason is Reason.INVALID_JSON
    assert info.value.hermes is not None and info.value.hermes.id is None  # still answered, to siteId default
    assert hermes.parse_play_finished(b'{"id": "r1", "siteId": "default"}', max_bytes=LIMIT) == "r1"
    assert hermes.parse_play_finished(b"\xff", max_bytes=LIMIT) is None


def test_queue_orders_by_priority_then_arrival_and_requeues_in_place() -> None:
    q = AnnouncementQueue()
    a = [Announcement(id=f"n{i}", text="x") for i in range(3)]
    urgent = Announcement(id="u", text="x", priority=Priority.URGENT)
    low = Announcement(id="l", text="x", priority=Priority.LOW)
    entries = [q.put(x) for x in (low, a[0], a[1], urgent, a[2])]
    assert [x.id for x in q.drain()] == ["u", "n0", "n1", "n2", "l"]
    for x in (a[1], a[2]):
        q.put(x)
    q.put(a[0], order=entries[1].order)  # an interrupted announcement goes back ahead of its tier
    assert [x.id for x in q.remove("n1")] == ["n1"]
    assert [x.id for x in q.drain()] == ["n0", "n2"]
    assert len(q) == 0


async def test_queue_get_waits_for_a_put() -> None:
    q = AnnouncementQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.put(Announcement(id="a", text="x"))
    assert (await asyncio.wait_for(getter, 1)).announcement.id == "a"


def test_broker_urls() -> None:
    s = BrokerSettings.from_url("mqtt://user:p%40ss@example.org:1884")
    assert (s.host, s.port, s.username, s.password, s.tls) == ("example.org", 1884, "user", "p@ss", False)
    assert "p@ss" not in repr(s)
    assert BrokerSettings.from_url("mqtts://example.org").port == 8883
    assert BrokerSettings.from_url("mqtts://example.org").tls
    assert BrokerSettings.from_url("localhost").port == 1883
    assert BrokerSettings.from_url("mqtt://h", username="u", tls=None).username == "u"
    for bad in ("http://h", "mqtt://h:99999", "mqtt://:1883", "mqtt://h/topic"):
        with pytest.raises(ConfigError):
            BrokerSettings.from_url(bad)


def test_config_and_topics() -> None:
    broker = BrokerSettings("h", client_id="w1")
    t = Topics.of(AnnouncerConfig(broker))
    assert (t.say, t.cancel, t.status, t.event("failed"), t.audio("a1")) == (
        "rtvoice/say", "rtvoice/cancel", "rtvoice/status", "rtvoice/failed", "rtvoice/audio/a1")
    assert t.shared(t.say) == "rtvoice/say"
    g = Topics.of(AnnouncerConfig(broker, prefix="home/pa/", group="speakers"))
    assert g.shared(g.say) == "$share/speakers/home/pa/say"
    assert g.status == "home/pa/status/w1"
    for bad in ({"prefix": "rtvoice"}, {"prefix": "a/#/"}, {"group": "a/b"}, {"site_ids": ("",)},
                {"site_ids": ("a", "b/c")}):
        with pytest.raises(ConfigError):
            AnnouncerConfig(broker, **bad)  # type: ignore[arg-type]


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    b = Backoff(0.5, 4.0)
    delays = [b.next() for _ in range(6)]
    for delay, nominal in zip(delays, (0.5, 1, 2, 4, 4, 4), strict=True):
        assert nominal * 0.5 <= delay <= nominal
    b.reset()
    assert b.next() <= 0.5


def test_event_payload_and_chime() -> None:
    a = Announcement(id="a1", text="x", voice="tiny")
    body = json.loads(event_payload("finished", "w1", a, timings={"audio_s": 1.0}))
    assert body == {"event": "finished", "id": "a1", "worker": "w1", "source": "native", "priority": "normal",
                    "voice": "tiny", "timings": {"audio_s": 1.0}}
    assert json.loads(event_payload("failed", "w1", None, id=None, reason="invalid_json"))["id"] is None
    tone = chime(22050)
    assert tone.dtype == np.float32 and len(tone) == int(0.25 * 22050) * 2 + int(0.15 * 22050)
    assert 0.1 < np.abs(tone).max() <= 0.35


async def test_outbox_drops_oldest_audio_never_events_when_over_its_size() -> None:
    link = BrokerLink(BrokerSettings("127.0.0.1", client_id="w"), subscriptions=[], status_topic="s",
                      inbox=asyncio.Queue(), max_outbox_bytes=250)
    link.publish("audio/0", b"x" * 100, droppable=True)  # first in line: may be in flight, kept
    link.publish("event/1", b"e" * 10)
    link.publish("audio/1", b"x" * 100, droppable=True)
    link.publish("audio/2", b"x" * 100, droppable=True)  # 310 bytes: audio/1 goes
    link.publish("event/2", b"e" * 100)  # 310 again: audio/2 goes
    assert link.pending == ["audio/0", "event/1", "event/2"]
    link.publish("event/3", b"e" * 200)  # over, but only events are left to drop: all kept
    assert link.pending == ["audio/0", "event/1", "event/2", "event/3"]
    assert not await link.flush(0.01)  # never connected: nothing delivered
