"""The announcer in-process against a real Mosquitto: events, audio, bad input, priorities, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest

from rtvoice.announce import Announcement, Announcer, AnnouncerConfig, MessageError, Priority, Reason
from rtvoice.announce.sinks import chime
from rtvoice.audio import read_wav

if TYPE_CHECKING:
    from rtvoice import Voice

    from .conftest import PacedSink, Recorder

LONG = " ".join(f"Sentence number {n} of a long announcement." for n in range(1, 9))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_say_publishes_events_and_wav(tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig],
                                            recorder: Callable[..., Recorder], protocol: str) -> None:
    config = announcer_config(protocol=protocol)
    p = config.prefix
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        await rec.wait_for(lambda: any(m.payload == b"online" for m in rec.on(f"{p}status")))
        await rec.publish(f"{p}say", "Platform two for the express service.")
        await rec.publish(f"{p}say", json.dumps({"text": "Mind the gap.", "id": "gap", "chime": True,
                                                 "volume": 0.5}))
        await rec.wait_for(lambda: len(rec.events(p, "finished")) == 2)

    events = rec.events(p, "started", "finished", "failed")
    assert [e["event"] for e in events] == ["started", "finished", "started", "finished"]
    first, gap = events[1], events[3]
    assert gap["id"] == "gap" and first["id"] == events[0]["id"] != "gap"
    assert gap["voice"] == "tiny" and gap["priority"] == "normal" and gap["worker"] == config.broker.client_id
    timings = gap["timings"]
    assert timings["audio_s"] > 0.65 and timings["time_to_first_audio_s"] <= timings["synthesis_s"]
    assert timings["rtf"] > 0 and timings["total_s"] >= timings["synthesis_s"]
    # No sink given: nothing plays here, so each WAV is published on <prefix>audio/<id>.
    (wav,) = rec.on(f"{p}audio/gap")
    samples, rate = read_wav(wav.payload)
    assert rate == tiny_voice.sample_rate
    assert abs(len(samples) / rate - timings["audio_s"]) < 0.01
    tone = chime(rate)  # the announcement starts with the chime, at the requested volume
    np.testing.assert_allclose(samples[:len(tone)], 0.5 * tone, atol=1e-4)
    assert abs(samples[len(tone):]).max() > 0.01  # then speech
    assert len(rec.on(f"{p}audio/{first['id']}")) == 1
    assert rec.on(f"{p}status")[-1].payload == b"offline"  # graceful exit says so


async def test_bad_input_fails_with_a_reason_and_the_daemon_keeps_serving(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder]) -> None:
    config = announcer_config()
    p = config.prefix
    bad: list[tuple[bytes | str, Reason]] = [
        ('{"text": "no end', Reason.INVALID_JSON),
        ('{"text": ["a", "list"]}', Reason.INVALID_FIELD),
        ('{"text": "x", "priority": "whenever"}', Reason.INVALID_FIELD),
        ('{"text": "x", "volume": "loud"}', Reason.INVALID_FIELD),
        ('{"text": "   "}', Reason.EMPTY_TEXT),
        ("", Reason.EMPTY_TEXT),
        ("x" * (config.max_payload_bytes + 1), Reason.PAYLOAD_TOO_LARGE),
        ("Long text. " * 500, Reason.TEXT_TOO_LONG),  # 5500 characters: over the voice's 5000
        (b"Caf\xe9 ouvert.", Reason.INVALID_UTF8),
        ('{"text": "Hello.", "id": "v1", "voice": "nobody"}', Reason.UNKNOWN_VOICE),
        ('{"text": "...", "id": "dots"}', Reason.INVALID_TEXT),
    ]
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for payload, _ in bad:
            await rec.publish(f"{p}say", payload)
        await rec.publish(f"{p}say", '{"text": "Still here.", "id": "ok"}')
        await rec.wait_events(p, "finished", {"ok"})

    failed = rec.events(p, "failed")
    assert [f["reason"] for f in failed] == [str(reason) for _, reason in bad]
    assert all(f["error"] and f["source"] == "native" for f in failed)
    assert failed[9]["id"] == "v1" and failed[10]["id"] == "dots" and failed[0]["id"] is None
    assert [e["id"] for e in rec.events(p, "started")] == ["ok"]


async def test_urgent_interrupts_and_equal_priorities_keep_their_order(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        paced_sink: Callable[..., PacedSink]) -> None:
    config = announcer_config()
    p = config.prefix
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config, sink=paced_sink(speed=2.0)) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        await rec.publish(f"{p}say", json.dumps({"text": LONG, "id": "long"}))
        await rec.wait_events(p, "started", {"long"})
        for ident, priority in (("n1", "normal"), ("low", "low"), ("n2", "normal"), ("u1", "urgent"),
                                ("u2", "urgent")):
            await rec.publish(f"{p}say", json.dumps({"text": f"Announcement {ident}.", "id": ident,
                                                     "priority": priority}))
        await rec.wait_events(p, "finished", {"long", "n1", "n2", "low", "u1", "u2"}, timeout=60)

    (interrupted,) = rec.events(p, "interrupted")
    assert interrupted == {**interrupted, "id": "long", "by": "u1", "requeued": True}
    spoken = [e["id"] for e in rec.events(p, "finished")]
    assert spoken == ["u1", "u2", "long", "n1", "n2", "low"]
    assert [e["id"] for e in rec.events(p, "started")] == ["long", "u1", "u2", "long", "n1", "n2", "low"]
    assert not rec.events(p, "failed")


async def test_cancel_queued_current_and_all(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        paced_sink: Callable[..., PacedSink]) -> None:
    config = announcer_config()
    p = config.prefix
    sink = paced_sink(speed=2.0)
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config, sink=sink) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        for ident in ("a", "b", "c"):
            await rec.publish(f"{p}say", json.dumps({"text": LONG, "id": ident}))
        await rec.wait_events(p, "started", {"a"})
        await rec.publish(f"{p}cancel", "b")  # queued
        await rec.wait_events(p, "failed", {"b"})
        await rec.publish(f"{p}cancel", '{"id": "a"}')  # being spoken: stops within a chunk
        await rec.wait_events(p, "started", {"c"})
        await rec.publish(f"{p}cancel", "")  # everything
        await rec.wait_events(p, "failed", {"a", "b", "c"})
        announcer.submit(Announcement(id="d", text="After the cancellations.", priority=Priority.LOW))
        with pytest.raises(MessageError) as info:
            announcer.submit(Announcement(id="e", text="x", voice="nobody"))
        assert info.value.reason is Reason.UNKNOWN_VOICE
        await rec.wait_events(p, "finished", {"d"})

    assert [(e["id"], e["reason"]) for e in rec.events(p, "failed")] == [
        ("b", "cancelled"), ("a", "cancelled"), ("c", "cancelled")]
    assert [e["id"] for e in rec.events(p, "finished")] == ["d"]
    assert len(sink.played) == 1


async def test_shutdown_fails_the_current_and_queued_announcements(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        paced_sink: Callable[..., PacedSink]) -> None:
    config = announcer_config(shutdown_grace_s=0.2)
    p = config.prefix
    async with recorder(f"{p}#") as rec:
        async with Announcer(tiny_voice, config, sink=paced_sink()) as announcer:
            await asyncio.wait_for(announcer.wait_connected(), 10)
            await rec.publish(f"{p}say", json.dumps({"text": LONG, "id": "now"}))
            await rec.publish(f"{p}say", json.dumps({"text": "Later.", "id": "later"}))
            await rec.wait_events(p, "started", {"now"})
        # __aexit__ has waited 0.2 s for "now", stopped it and flushed the events.
        await rec.wait_for(lambda: rec.on(f"{p}status")[-1].payload == b"offline")

    assert [(e["id"], e["reason"]) for e in rec.events(p, "failed")] == [("later", "shutdown"), ("now", "shutdown")]
    assert not rec.events(p, "finished")
