"""What the PortAudio callback does, driven by hand: padding, underrun counting, wake-ups (issue #4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtvoice.playback._feed import Feed
from rtvoice.playback._ring import RingBuffer


@dataclass
class Flags:
    """Stands in for sounddevice.CallbackFlags."""

    output_underflow: bool = False


def call(feed: Feed, frames: int, channels: int = 2, late: bool = False) -> np.ndarray:
    out = np.full((frames, channels), 9.0, np.float32)
    feed.callback(out, frames, None, Flags(late))
    return out


def test_mono_goes_to_every_channel_and_the_rest_is_silence() -> None:
    feed = Feed(RingBuffer(100))
    feed.ring.write(np.array([0.1, 0.2, 0.3], np.float32))
    out = call(feed, 5)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    np.testing.assert_array_equal(out[:, 0], np.array([0.1, 0.2, 0.3, 0, 0], np.float32))
    assert feed.played == 3


def test_running_dry_while_idle_is_not_an_underrun() -> None:
    feed = Feed(RingBuffer(100))
    for _ in range(3):
        call(feed, 10)
    assert (feed.underruns, feed.underrun_frames) == (0, 0)


def test_running_dry_mid_utterance_counts_once_per_gap() -> None:
    feed = Feed(RingBuffer(100))
    feed.ring.write(np.ones(15, np.float32))
    feed.expect_more = True  # the producer is in the middle of an utterance
    call(feed, 10)
    call(feed, 10)  # 5 short: a gap starts
    call(feed, 10)  # 10 short: the same gap
    assert (feed.underruns, feed.underrun_frames) == (1, 15)
    feed.ring.write(np.ones(10, np.float32))
    call(feed, 10)  # full again
    call(feed, 10)  # a second gap
    assert (feed.underruns, feed.underrun_frames) == (2, 25)


def test_device_lateness_is_counted_separately() -> None:
    feed = Feed(RingBuffer(100))
    call(feed, 4, late=True)
    assert feed.device_underflows == 1 and feed.underruns == 0


def test_block_larger_than_the_scratch_buffer() -> None:
    feed = Feed(RingBuffer(10000))
    feed.ring.write(np.ones(8000, np.float32))
    out = call(feed, 8000, channels=1)
    assert out.sum() == 8000


def test_wake_is_called_while_set() -> None:
    feed = Feed(RingBuffer(100))
    calls: list[int] = []
    feed.wake = lambda: calls.append(1)
    call(feed, 4)
    feed.wake = None
    call(feed, 4)
    assert calls == [1]


def test_finished_without_close_means_the_device_is_lost() -> None:
    feed = Feed(RingBuffer(10))
    feed.finished()
    assert feed.lost
    closing = Feed(RingBuffer(10))
    closing.closing = True
    closing.finished()
    assert not closing.lost
