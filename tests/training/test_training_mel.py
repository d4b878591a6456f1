"""training/mel.py: the runtime's mel spectrogram, checked against librosa's numbers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.mel import LOG_FLOOR, MelSpectrogram, hz_to_mel, mel_filterbank, mel_to_hz, n_frames  # noqa: E402

BANK = mel_filterbank(22050, 1024, 80, 0.0, 8000.0)


def test_training_mel_scale_is_slaney() -> None:
    # librosa.hz_to_mel(..., htk=False) gives these.
    np.testing.assert_allclose(hz_to_mel([0, 500, 1000, 4000, 8000]), [0, 7.5, 15, 35.16376031, 45.24564047])
    np.testing.assert_allclose(mel_to_hz([10, 20, 30]), [666.66666667, 1410.23856781, 2804.64413074])
    hz = np.linspace(0, 11025, 50)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, atol=1e-9)


@pytest.mark.parametrize(
    ("band", "first", "last", "peak", "argmax", "total"),
    [  # librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000), librosa 0.11
        (0, 1, 3, 0.022651389241218567, 2, 0.04530277941375971),
        (10, 18, 20, 0.026492536067962646, 19, 0.04914392624050379),
        (40, 77, 83, 0.014895469881594181, 80, 0.04654524699435569),
        (79, 345, 371, 0.003265992971137166, 358, 0.04641479390556924),
    ],
)
def test_training_mel_filterbank_matches_librosa(band: int, first: int, last: int, peak: float, argmax: int,
                                                 total: float) -> None:
    row = BANK[band]
    nonzero = np.flatnonzero(row)
    assert (nonzero[0], nonzero[-1], int(row.argmax())) == (first, last, argmax)
    assert row.max() == pytest.approx(peak, rel=1e-6)
    assert row.sum() == pytest.approx(total, rel=1e-6)


def test_training_mel_filters_have_unit_area() -> None:
    """Slaney normalisation: each triangle's area in Hz is 1 (coarse for the narrow low bands)."""
    area = BANK.sum(axis=1) * 22050 / 1024
    np.testing.assert_allclose(area[10:], 1.0, atol=0.08)
    assert BANK.shape == (80, 513) and BANK.dtype == np.float32 and (BANK >= 0).all()
    assert not BANK[:, 1 + int(8000 / (22050 / 1024)) + 1 :].any()  # nothing above fmax


def test_training_mel_frames_and_sine_band() -> None:
    n = 22050
    t = np.arange(n) / 22050
    audio = torch.from_numpy((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))[None]
    mel = MelSpectrogram()(audio)
    assert mel.shape == (1, 80, n_frames(n)) == (1, 80, 1 + n // 256)
    centres = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(8000), 82))[1:-1]
    assert int(mel[0, :, 40].argmax()) == int(np.abs(centres - 1000).argmin())


def test_training_mel_silence_is_the_log_floor() -> None:
    mel = MelSpectrogram()(torch.zeros(1, 4096))
    assert torch.allclose(mel, torch.full_like(mel, float(np.log(LOG_FLOOR))))
