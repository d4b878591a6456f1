"""Local playback of announcements, with a stand-in for ``rtvoice.playback.Player`` (no sound card here)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest

import rtvoice.playback
from rtvoice.announce import Announcer, AnnouncerConfig, LocalPlayback, local_playback
from rtvoice.audio import AudioChunk, Float32Array, Timing
from rtvoice.errors import AudioDeviceError

if TYPE_CHECKING:
    from rtvoice import Voice

    from .conftest import Recorder


class FakePlayer:
    """Records what LocalPlayback asks of a Player; writing takes the audio's duration / 20."""

    opened: list[FakePlayer] = []

    def __init__(self, sample_rate: int, *, device: str | int | None = None, fail_after: int | None = None) -> None:
        self.sample_rate = sample_rate
        self.device = device
        self.volume = 1.0
        self.calls: list[str] = []
        self.samples = 0
        self.fail_after = fail_after

    def open(self) -> FakePlayer:
        self.calls.append("open")
        FakePlayer.opened.append(self)
        return self

    def close(self) -> None:
        self.calls.append("close")

    async def awrite(self, samples: Float32Array, *, last: bool = False) -> None:
        if self.fail_after is not None and self.samples >= self.fail_after:
            raise AudioDeviceError("Audio device 0: Fake stopped in the middle of playback.")
        await asyncio.sleep(len(samples) / self.sample_rate / 20)
        self.samples += len(samples)
        self.calls.append(f"write{'-last' if last else ''}@{self.volume}")

    async def adrain(self) -> None:
        self.calls.append("drain")

    def flush(self) -> float:
        self.calls.append("flush")
        return 0.0


async def chunks(n: int, rate: int = 1000) -> AsyncIterator[AudioChunk]:
    for i in range(n):
        yield AudioChunk(np.zeros(100, np.float32), rate, 0, i * 100, i == n - 1, Timing(0, 0, 0))


async def test_plays_drains_and_keeps_the_device_open() -> None:
    FakePlayer.opened = []
    sink = LocalPlayback(FakePlayer, device="USB")
    await sink.play(chunks(3), 1000, 0.5)
    await sink.play(chunks(1), 1000, 1.5)
    (player,) = FakePlayer.opened
    assert player.device == "USB"
    assert player.calls == ["open", "write@0.5", "write@0.5", "write-last@0.5", "drain", "write-last@1.5", "drain"]
    await sink.play(chunks(1, rate=16000), 16000, 1.0)  # another rate: another player
    assert len(FakePlayer.opened) == 2
    await sink.aclose()
    await sink.aclose()
    assert [p.calls[-1] for p in FakePlayer.opened] == ["close", "close"]


async def test_cancel_flushes_at_once() -> None:
    FakePlayer.opened = []
    sink = LocalPlayback(FakePlayer)

    async def endless() -> AsyncIterator[AudioChunk]:
        while True:
            yield AudioChunk(np.zeros(1000, np.float32), 1000, 0, 0, False, Timing(0, 0, 0))

    task = asyncio.create_task(sink.play(endless(), 1000, 1.0))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (player,) = FakePlayer.opened
    assert player.calls[-1] == "flush" and "drain" not in player.calls


async def test_a_failed_device_is_reopened_for_the_next_announcement() -> None:
    FakePlayer.opened = []
    sink = LocalPlayback(lambda rate, device: FakePlayer(rate, device=device, fail_after=150))
    with pytest.raises(AudioDeviceError):
        await sink.play(chunks(3), 1000, 1.0)
    assert FakePlayer.opened[0].calls[-1] == "close"
    await sink.play(chunks(1), 1000, 1.0)
    assert len(FakePlayer.opened) == 2


def test_local_playback_without_a_device_says_to_use_no_play(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_device(spec: str | int | None) -> None:
        raise AudioDeviceError("No audio output device found.")

    monkeypatch.setattr(rtvoice.playback, "resolve_output_device", no_device)
    with pytest.raises(AudioDeviceError, match="--no-play"):
        local_playback()


async def test_playback_failure_fails_one_announcement_and_the_daemon_goes_on(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder]) -> None:
    FakePlayer.opened = []
    failures = iter([2000])  # the first device dies after 2000 samples; the reopened one works
    sink = LocalPlayback(lambda rate, device: FakePlayer(rate, device=device, fail_after=next(failures, None)))
    config = announcer_config(publish_audio=True)
    p = config.prefix
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config, sink=sink) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        await rec.publish(f"{p}say", json.dumps({"text": "The device dies.", "id": "dies"}))
        await rec.publish(f"{p}say", json.dumps({"text": "The device is back.", "id": "back", "volume": 0.25}))
        await rec.wait_events(p, "finished", {"back"})
    await sink.aclose()

    assert [(e["id"], e["reason"]) for e in rec.events(p, "failed")] == [("dies", "playback_error")]
    assert len(FakePlayer.opened) == 2 and "write-last@0.25" in FakePlayer.opened[1].calls
    assert len(rec.on(f"{p}audio/back")) == 1  # publish_audio: heard here and published
    assert not rec.on(f"{p}audio/dies")
