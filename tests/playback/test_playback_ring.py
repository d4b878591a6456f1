"""The ring buffer between the producer and the PortAudio callback (issue #4)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rtvoice.playback._ring import RingBuffer


def test_write_read_wraps_around() -> None:
    ring = RingBuffer(8)
    out = np.zeros(8, np.float32)
    assert ring.write(np.arange(6, dtype=np.float32)) == 6
    assert ring.read_into(out[:4]) == 4
    assert ring.write(np.arange(6, 12, dtype=np.float32)) == 6  # wraps past the end
    assert ring.available == 8 and ring.free == 0
    assert ring.read_into(out) == 8
    np.testing.assert_array_equal(out, np.arange(4, 12, dtype=np.float32))


def test_write_takes_only_what_fits_and_read_only_what_is_there() -> None:
    ring = RingBuffer(4)
    assert ring.write(np.ones(10, np.float32)) == 4
    assert ring.write(np.ones(1, np.float32)) == 0
    out = np.full(6, 7.0, np.float32)
    assert ring.read_into(out) == 4
    np.testing.assert_array_equal(out[4:], [7.0, 7.0])  # the caller pads the rest, not the ring


def test_discard_drops_everything_queued_at_the_next_read() -> None:
    ring = RingBuffer(16)
    ring.write(np.arange(10, dtype=np.float32))
    assert ring.discard() == 10
    assert ring.available == 0
    assert ring.free == 6  # the room comes back once the consumer has skipped
    out = np.zeros(4, np.float32)
    assert ring.read_into(out) == 0
    assert ring.free == 16
    ring.write(np.array([42.0], np.float32))
    assert ring.read_into(out) == 1 and out[0] == 42.0


def test_bad_capacity() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RingBuffer(0)


def test_one_producer_one_consumer_thread_keep_order() -> None:
    """Two real threads, odd sizes, no lock: every sample arrives once, in order."""
    total = 50_000
    data = np.arange(total, dtype=np.float32)
    ring = RingBuffer(1021)
    got: list[np.ndarray] = []

    def consume() -> None:
        out = np.zeros(97, np.float32)
        n_seen = 0
        while n_seen < total:
            n = ring.read_into(out)
            got.append(out[:n].copy())
            n_seen += n

    consumer = threading.Thread(target=consume)
    consumer.start()
    pos = 0
    rng = np.random.default_rng(0)
    while pos < total:
        pos += ring.write(data[pos : pos + int(rng.integers(1, 700))])
    consumer.join(30)
    assert not consumer.is_alive()
    np.testing.assert_array_equal(np.concatenate(got), data)
