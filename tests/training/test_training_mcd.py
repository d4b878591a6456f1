"""Mel-cepstral distortion against the teacher (training/mcd.py), on known cases."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mel_cepstral_distance")

from training.mcd import mcd  # noqa: E402


def test_a_clip_against_itself_a_delayed_copy_and_noise() -> None:
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
