"""Through a real Mosquitto: an announcement short as sent but long as read out fails at once.

``ﷺ`` is one character sent and 28 read out: 4000 of them pass the voice's 5000-character
limit and the payload limit, but would be 112,000 characters of speech (hours on a CPU).
``SynthesisConfig.max_spoken_chars`` refuses it with one ``failed`` event (``text_too_long``)
naming the numbers, before anything is spoken; the daemon goes on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from rtvoice.announce import Announcer, AnnouncerConfig
from rtvoice.config import MAX_SPOKEN_CHARS

if TYPE_CHECKING:
    from rtvoice import Voice

    from .conftest import Recorder


async def test_a_say_long_read_out_fails_with_text_too_long_and_nothing_is_spoken(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder]) -> None:
    config = announcer_config()
    p = config.prefix
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        await rec.publish(f"{p}say", json.dumps({"text": "\ufdfa" * 4000, "id": "wide"}))
        await rec.wait_for(lambda: any(e["id"] == "wide" for e in rec.events(p, "failed", "started")))
        await rec.publish(f"{p}say", json.dumps({"text": "Still here.", "id": "ok"}))
        await rec.wait_events(p, "finished", {"ok"})
    (failed,) = rec.events(p, "failed")
    assert failed["id"] == "wide" and failed["reason"] == "text_too_long", failed
    assert "4000 characters, 112000 when read out" in failed["error"], failed
    assert f"the limit is {MAX_SPOKEN_CHARS} read out" in failed["error"] and "\n" not in failed["error"], failed
    assert [e["id"] for e in rec.events(p, "started")] == ["ok"]
    assert not rec.on(f"{p}audio/wide")
