"""Streaming resampling with soxr for devices that refuse 22.05 kHz (issue #4)."""

from __future__ import annotations

import numpy as np
import soxr

from rtvoice.playback._resample import Resampler


def tone(n: int, rate: int = 22050, hz: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.float32)


def test_equal_rates_pass_through_untouched() -> None:
    r = Resampler(22050, 22050)
    x = tone(100)
    assert not r.active
    assert r.feed(x) is x
    assert len(r.finish()) == 0


def test_chunked_equals_whole() -> None:
    """Chunk seams leave no trace: chunk by chunk plus the tail equals one-shot soxr."""
    x = tone(22050)
    r = Resampler(22050, 48000)
    parts = [r.feed(x[a : a + 4096]) for a in range(0, len(x), 4096)]
    parts.append(r.finish())
    got = np.concatenate(parts)
    whole = soxr.resample(x, 22050, 48000, quality="HQ")
    assert abs(len(got) - 48000) <= 1
    n = min(len(got), len(whole))
    np.testing.assert_allclose(got[:n], whole[:n], atol=1e-4)


def test_a_new_utterance_after_finish_and_reset_starts_clean() -> None:
    r = Resampler(22050, 44100)
    first = np.concatenate((r.feed(tone(4410)), r.finish()))
    second = np.concatenate((r.feed(tone(4410)), r.finish()))
    np.testing.assert_array_equal(first, second)
    r.feed(tone(1000, hz=3000.0))
    r.reset()  # barge-in: what was held back is forgotten
    third = np.concatenate((r.feed(tone(4410)), r.finish()))
    np.testing.assert_array_equal(first, third)
