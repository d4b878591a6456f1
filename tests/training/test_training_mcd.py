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


def test_a_clip_that_cannot_be_measured_is_null_and_counted_and_the_means_skip_it() -> None:
    """A silent clip makes the library raise and an empty one gives NaN: neither may lose the other sentences."""
    pytest.importorskip("mel_cepstral_distance")
    from dataclasses import dataclass

    from training.mcd import mcd, measure

    @dataclass
    class Row:
        index: int
        text: str

    t = np.arange(22050) / 22050
    tone = (0.3 * np.sin(2 * np.pi * 150 * t) + 0.1 * np.sin(2 * np.pi * 900 * t)).astype(np.float32)
    noise = np.random.default_rng(2).normal(0, 0.1, t.size).astype(np.float32)
    clips = {"silent": np.zeros(t.size, np.float32), "tone": tone, "empty": np.zeros(0, np.float32),
             "noise": noise}
    rows = [Row(i, name) for i, name in enumerate(clips, 10)]
    out = measure(rows, lambda row: clips[row.text], lambda text: tone)
    per = {r["index"]: r for r in out["per_sentence"]}
    assert [r["index"] for r in out["per_sentence"]] == [10, 11, 12, 13]
    assert per[10]["mcd_db"] is None and per[10]["penalty"] is None and "ValueError" in per[10]["error"]
    assert per[12]["mcd_db"] is None and per[12]["error"]
    assert out["sentences"] == 4 and out["failed"] == 2
    far = mcd(noise, tone)[0]
    assert per[11]["mcd_db"] == pytest.approx(0.0, abs=1e-9) and per[13]["mcd_db"] == pytest.approx(far, abs=1e-3)
    assert out["mcd_db"] == pytest.approx(far / 2, abs=1e-3) and out["median_db"] == pytest.approx(far / 2, abs=1e-3)

    none = measure(rows[:1], lambda row: clips[row.text], lambda text: tone)
    assert none["failed"] == 1 and none["mcd_db"] is None and none["median_db"] is None and none["penalty"] is None
