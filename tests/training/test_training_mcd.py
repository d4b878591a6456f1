"""Mel-cepstral distortion against the teacher (training/mcd.py) and the side-by-side timer, on known cases."""

from __future__ import annotations

import numpy as np
import pytest


def test_a_clip_against_itself_a_delayed_copy_and_noise() -> None:
    pytest.importorskip("mel_cepstral_distance")
    from training.mcd import mcd

    t = np.arange(22050) / 22050
    voiced = 0.3 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    voiced += 0.1 * np.sin(2 * np.pi * 900 * t)
    clip = (voiced * 32767).astype(np.int16)
    same, penalty = mcd(clip, clip)
    assert same == pytest.approx(0.0, abs=1e-9) and penalty == pytest.approx(0.0, abs=1e-9)
    noise = (np.random.default_rng(1).normal(0, 0.1, t.size) * 32767).astype(np.int16)
    near, _ = mcd(np.concatenate([np.zeros(1024, np.int16), clip]), clip)  # DTW absorbs the delay
    far, _ = mcd(noise, clip)
    assert near < 0.25 * far, (near, far)


def test_side_by_side_times_first_audio_and_real_time_factor() -> None:
    import time
    from collections.abc import Iterator

    from training.side_by_side import summary, timed

    def chunks() -> Iterator[int]:
        for n in (100, 200):
            time.sleep(0.02)
            yield n

    run = timed(chunks, lambda c: c, 1000)
    assert run["audio_s"] == 0.3
    assert 0.015 < run["first_audio_s"] < run["wall_s"] and run["wall_s"] >= 0.035
    s = summary([run, {"first_audio_s": 0.5, "wall_s": 1.0, "audio_s": 2.0}])
    assert s["sentences"] == 2 and s["rtf"] == round(2.3 / (run["wall_s"] + 1.0), 2)
    assert s["first_audio_max_ms"] == 500.0
