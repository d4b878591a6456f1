"""``rate``, ``ssml`` and ``--rate`` through the real ``rtvoice mqtt`` daemon and a real broker.

The tiny voice never fires its gate, so every sentence is exactly ``--max-steps`` (24)
frames at rate 1: the published WAVs' lengths say which rate and which breaks were used.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from test_mqtt_cli import daemon

from rtvoice.audio import read_wav

if TYPE_CHECKING:
    from .conftest import Mosquitto, Recorder

HOP = 256


async def test_rate_and_ssml_in_payloads_and_rate_on_the_command_line(
        broker: Mosquitto, tiny_voice_dir: Path, recorder: Callable[..., Recorder]) -> None:
    prefix = f"pro{uuid.uuid4().hex[:6]}/"
    messages = {
        "daemon-rate": {"text": "Hello."},  # the daemon's --rate 2
        "own-rate": {"text": "Hello.", "rate": 0.5},
        "ssml": {"text": '<speak>Hello <break time="500ms"/> there.</speak>', "ssml": True},
        "auto-ssml": {"text": '<speak><prosody rate="x-slow">Hi.</prosody></speak>'},
        "not-ssml": {"text": "<speak>Hi.</speak>", "ssml": False},
        "bad-ssml": {"text": "<speak>Hi <b></speak>", "ssml": True},
        "bad-rate": {"text": "Hi.", "rate": 3},
    }
    async with recorder(f"{prefix}#") as rec, daemon(broker, tiny_voice_dir, prefix, "--rate", "2") as _:
        await rec.wait_for(lambda: any(m.payload == b"online" for m in rec.on(f"{prefix}status")), timeout=60)
        for ident, body in messages.items():
            await rec.publish(f"{prefix}say", json.dumps({**body, "id": ident}))
        spoken = {"daemon-rate", "own-rate", "ssml", "auto-ssml", "not-ssml"}
        await rec.wait_events(prefix, "finished", spoken, timeout=90)
        await rec.wait_events(prefix, "failed", {"bad-ssml", "bad-rate"}, timeout=30)
    samples = {ident: len(read_wav(rec.on(f"{prefix}audio/{ident}")[-1].payload)[0]) for ident in spoken}
    assert samples["daemon-rate"] == 12 * HOP
    assert samples["own-rate"] == 48 * HOP
    assert samples["ssml"] == 2 * 12 * HOP + int(0.5 * 22050)  # the break is in seconds, not scaled
    assert samples["auto-ssml"] == 24 * HOP  # x-slow (0.5) of the daemon's 2
    # The markup read as text: "<speak>Hi." and "</speak>", with the sentence pause at rate 2 between.
    assert samples["not-ssml"] == 2 * 12 * HOP + int(0.15 / 2 * 22050)
    failed = {e["id"]: e for e in rec.events(prefix, "failed")}
    assert failed["bad-ssml"]["reason"] == "invalid_text"
    assert "Malformed SSML at line 1, column" in failed["bad-ssml"]["error"]
    assert failed["bad-rate"]["reason"] == "invalid_field" and "'rate' must be a number from 0.5 to 2" in \
        failed["bad-rate"]["error"]
