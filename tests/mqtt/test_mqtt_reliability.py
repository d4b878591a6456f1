"""Reliability against a real Mosquitto: a broker restart mid-queue, a redelivery, and a group of two workers."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from rtvoice.announce import Announcer, AnnouncerConfig

if TYPE_CHECKING:
    from rtvoice import Voice

    from .conftest import Mosquitto, PacedSink, Recorder, Relay


async def test_broker_restart_mid_queue_loses_nothing(
        tiny_voice: Voice, broker: Mosquitto, announcer_config: Callable[..., AnnouncerConfig],
        recorder: Callable[..., Recorder], paced_sink: Callable[..., PacedSink]) -> None:
    # The daemon waits >= 1.5 s before its first reconnection: time enough to publish to the
    # restarted broker while the daemon is provably still away.
    config = announcer_config(reconnect_min_s=3.0, reconnect_max_s=3.0)
    p = config.prefix
    before = [f"before-{n}" for n in range(4)]
    during = [f"during-{n}" for n in range(2)]
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config, sink=paced_sink()) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for ident in before:
            await rec.publish(f"{p}say", json.dumps({"text": f"Queued {ident}.", "id": ident}))
        await rec.wait_events(p, "started", {before[0]})

        broker.stop()  # three announcements still queued in the daemon, one being spoken
        for _ in range(200):
            if not announcer.connected:
                break
            await asyncio.sleep(0.01)
        assert not announcer.connected
        broker.start()
        for ident in during:  # the broker holds these for the daemon's persistent session
            await rec.publish(f"{p}say", json.dumps({"text": f"Sent while away {ident}.", "id": ident}))
        assert not announcer.connected, "the daemon reconnected too early for this test to mean anything"

        await rec.wait_events(p, "finished", {*before, *during})
        await asyncio.wait_for(announcer.wait_connected(), 10)

    finished = [e["id"] for e in rec.events(p, "finished")]
    assert Counter(finished) == Counter([*before, *during])  # each exactly once
    assert finished == [*before, *during]  # in order
    assert not rec.events(p, "failed")
    assert [m.payload for m in rec.on(f"{p}status")].count(b"online") >= 2  # marked online again


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize("outage", ["connection cut", "broker restart"])
async def test_redelivered_announcement_is_spoken_once(
        tiny_voice: Voice, broker: Mosquitto, announcer_config: Callable[..., AnnouncerConfig],
        recorder: Callable[..., Recorder], relay: Callable[[], Relay], paced_sink: Callable[..., PacedSink],
        outage: str, protocol: str) -> None:
    # QoS 1 is at least once: the daemon's PUBACK is lost on the way, so the broker sends the
    # announcement again (DUP, same packet id) when the daemon resumes its session. The same
    # announcement published again afterwards is a new message, and is spoken again.
    once = json.dumps({"text": "Said once per publication.", "id": "once"})
    async with relay() as link:
        config = announcer_config(port=link.port, protocol=protocol)
        p = config.prefix
        async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config, sink=paced_sink()) as announcer:
            await asyncio.wait_for(announcer.wait_connected(), 10)
            link.swallow_upstream()
            await rec.publish(f"{p}say", once)
            # The daemon has the message once it acknowledges it: a PUBACK, packet type 4.
            await link.wait_swallowed(lambda sent: sent[:1] == b"\x40")
            if outage == "broker restart":  # the broker saves the delivery as unacknowledged
                broker.stop()
                link.cut()
                broker.start()
            else:
                link.cut()
            await rec.wait_for(lambda: [m.payload for m in rec.on(f"{p}status")].count(b"online") >= 2)
            await rec.publish(f"{p}say", once)
            await rec.publish(f"{p}say", json.dumps({"text": "And then this.", "id": "after"}))
            await rec.wait_events(p, "finished", {"after"})  # spoken in order: a duplicate would be done by now

    assert [e["id"] for e in rec.events(p, "finished")] == ["once", "once", "after"]
    assert not rec.events(p, "failed")


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_group_workers_speak_each_announcement_once(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig],
        recorder: Callable[..., Recorder], protocol: str) -> None:
    first = announcer_config(group="speakers", protocol=protocol)
    second = announcer_config(group="speakers", prefix=first.prefix, protocol=protocol)
    p = first.prefix
    ids = [f"g{n}" for n in range(8)]
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, first) as one, Announcer(tiny_voice, second) as two:
        await asyncio.wait_for(asyncio.gather(one.wait_connected(), two.wait_connected()), 10)
        for ident in ids:
            await rec.publish(f"{p}say", json.dumps({"text": f"Announcement {ident}.", "id": ident}))
        await rec.wait_events(p, "finished", set(ids))
        await asyncio.sleep(0.3)  # a duplicate, if there were one, would show up by now

    finished = rec.events(p, "finished")
    assert Counter(e["id"] for e in finished) == Counter(ids)
    workers = Counter(e["worker"] for e in finished)
    assert set(workers) == {first.broker.client_id, second.broker.client_id}  # the broker shared the work
    # Each worker has its own retained status topic in a group.
    statuses = {m.topic for m in rec.messages if m.topic.startswith(f"{p}status/")}
    assert statuses == {f"{p}status/{first.broker.client_id}", f"{p}status/{second.broker.client_id}"}
    assert all(len(rec.on(f"{p}audio/{ident}")) == 1 for ident in ids)
