"""A careless publisher through a real Mosquitto: a flood of valid announcements.

Valid ``say`` messages cost memory while they wait and delay everyone else's, so the
queue is bounded: past ``AnnouncerConfig.max_queued`` each gets its one ``failed`` event
(``queue_full``) at once, and the daemon goes on speaking what it accepted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from rtvoice.announce import Announcer, AnnouncerConfig

if TYPE_CHECKING:
    from rtvoice import Voice

    from .conftest import PacedSink, Recorder


async def test_a_flood_of_valid_says_is_refused_past_the_queue_bound(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        paced_sink: Callable[..., PacedSink]) -> None:
    config = announcer_config(max_queued=3, refusal_log_burst=100)
    p = config.prefix
    ids = [f"a{i}" for i in range(12)]
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config, sink=paced_sink(speed=0.5)) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for announcement_id in ids:
            await rec.publish(f"{p}say", json.dumps({"text": "Hello there.", "id": announcement_id}))
        await rec.wait_events(p, "failed", set(ids[5:]))  # one speaking, three waiting, then full
        await rec.wait_events(p, "finished", set(ids[:3]), timeout=60)
        await rec.publish(f"{p}say", json.dumps({"text": "Room again.", "id": "later"}))
        await rec.wait_events(p, "finished", {"later"}, timeout=30)
    failed = rec.events(p, "failed")
    assert len(failed) >= len(ids) - 5, failed  # the fifth may or may not have found room
    assert {f["reason"] for f in failed} == {"queue_full"}, failed
    assert all("3" in f["error"] and "\n" not in f["error"] for f in failed), failed
    finished = {e["id"] for e in rec.events(p, "finished")}
    assert finished | {f["id"] for f in failed} == set(ids) | {"later"}  # each say got one answer
    assert not finished & {f["id"] for f in failed}


async def test_a_flood_of_hermes_says_gets_an_error_and_say_finished_past_the_bound(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        paced_sink: Callable[..., PacedSink]) -> None:
    """A Rhasspy dialogue never waits for ever: a refused Hermes say gets error/tts and sayFinished."""
    config = announcer_config(hermes=True, max_queued=2, refusal_log_burst=100)
    ids = [f"h{i}" for i in range(8)]
    async with recorder("hermes/#") as rec, Announcer(tiny_voice, config, sink=paced_sink(speed=0.5)) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for request_id in ids:
            await rec.publish("hermes/tts/say", json.dumps({"text": "Hello there.", "id": request_id,
                                                            "siteId": "default"}))
        await rec.wait_for(lambda: {m.json()["id"] for m in rec.on("hermes/tts/sayFinished")} >= set(ids), 60)
    errors = [m.json() for m in rec.on("hermes/error/tts")]
    assert len(errors) >= len(ids) - 4, errors  # one speaking, two waiting; the fourth may find room
    assert all("max_queued" in e["error"] for e in errors), errors
    assert sorted(m.json()["id"] for m in rec.on("hermes/tts/sayFinished")) == ids  # one each
