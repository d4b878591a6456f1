"""The Player's logic against an in-process fake PortAudio thread: fast, and every branch (issue #4)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from fake_portaudio import FakePortAudio

from rtvoice.errors import AudioDeviceError
from rtvoice.playback import Player


@pytest.fixture
def portaudio(monkeypatch: pytest.MonkeyPatch) -> FakePortAudio:
    return FakePortAudio(monkeypatch)


def ramp(n: int) -> np.ndarray:
    return np.linspace(0.01, 0.5, n, dtype=np.float32)


def test_everything_written_is_played_in_order(portaudio: FakePortAudio) -> None:
    x = ramp(20000)
    with Player(22050, buffer_s=0.01) as player:  # a ring smaller than the audio: write() must wait
        player.write(x[:1000])
        player.write(x[1000:], last=True)
        assert player.stats.underruns == 0
    audio = portaudio.stream.audio()
    np.testing.assert_array_equal(audio[audio != 0], x)


def test_volume_and_clipping_apply_to_a_copy(portaudio: FakePortAudio) -> None:
    x = np.array([0.25, -0.25, 0.75, -0.75], np.float32)
    with Player(22050, volume=2.0) as player:
        player.write(x, last=True)
    np.testing.assert_array_equal(x, [0.25, -0.25, 0.75, -0.75])  # the caller's chunk is untouched
    audio = portaudio.stream.audio()
    np.testing.assert_array_equal(audio[audio != 0], [0.5, -0.5, 1.0, -1.0])


def test_bad_volume() -> None:
    with pytest.raises(ValueError, match="between 0.0 and 2.0"):
        Player(22050, volume=2.5)


def test_a_slow_producer_is_reported_as_an_underrun(portaudio: FakePortAudio) -> None:
    with Player(22050) as player:
        player.write(ramp(200))
        time.sleep(0.1)  # synthesis "falls behind": the ring runs dry mid-utterance
        player.write(ramp(200), last=True)
        time.sleep(0.1)  # dry again, but after the last chunk: not an underrun
        stats = player.stats
    assert stats.underruns == 1
    assert stats.underrun_s > 0.05
    assert stats.played_s == pytest.approx(400 / 22050)


def test_a_vanished_device_is_an_error(portaudio: FakePortAudio) -> None:
    with pytest.raises(AudioDeviceError, match="stopped in the middle of playback"), \
            Player(22050, buffer_s=0.01) as player:
        player.write(ramp(100))
        time.sleep(0.05)
        portaudio.stream.fail()
        player.write(ramp(2000))
    assert not player.is_open


def test_a_stalled_device_is_an_error(portaudio: FakePortAudio) -> None:
    started = time.monotonic()
    with pytest.raises(AudioDeviceError, match="stopped asking for audio"), \
            Player(22050, buffer_s=0.01, stall_s=0.3) as player:
        portaudio.stream.stalled.set()
        player.write(ramp(5000))
    assert time.monotonic() - started < 3
    assert not player.is_open


def test_close_is_idempotent_and_returns_to_the_unopened_state(portaudio: FakePortAudio) -> None:
    player = Player(22050)
    before = dict(vars(player))
    player.open()
    player.close()
    player.close()
    assert vars(player) == before
    with pytest.raises(RuntimeError, match="not open"):
        player.write(ramp(10))
    with pytest.raises(RuntimeError, match="already open"), player:
        player.open()


async def test_async_write_and_drain(portaudio: FakePortAudio) -> None:
    x = ramp(20000)
    async with Player(22050, buffer_s=0.01) as player:  # awrite must wait for room
        await player.awrite(x[:1500])
        await player.awrite(x[1500:], last=True)
        await player.adrain()
        assert player.queued_s == 0
    audio = portaudio.stream.audio()
    np.testing.assert_array_equal(audio[audio != 0], x)


async def test_cancelling_awrite_stops_writing_at_once(portaudio: FakePortAudio) -> None:
    """Barge-in: a cancelled awrite never writes again.

    Regression: with asyncio.wait_for, Python 3.11 can swallow a cancellation that arrives as
    the callback wakes the writer, and the "stopped" speech went on playing.
    """
    async with Player(22050, buffer_s=0.005) as player:
        ring = player._require_open().feed.ring
        for _ in range(40):
            task = asyncio.create_task(player.awrite(ramp(20000)))
            await asyncio.sleep(0.004)  # a few callbacks in: the writer is waiting for room
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            written = ring._written
            await asyncio.sleep(0.004)
            assert ring._written == written
            player.flush()


async def test_flush_drops_the_queue_and_is_not_an_underrun(portaudio: FakePortAudio) -> None:
    async with Player(22050, buffer_s=1.0) as player:
        await player.awrite(ramp(20000))
        assert player.flush() == pytest.approx(20000 / 22050, abs=0.05)
        await asyncio.sleep(0.02)
        assert player.queued_s == 0
        assert player.stats.underruns == 0
        assert player.stats.played_s < 0.2
