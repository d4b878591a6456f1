"""Mel spectrograms exactly as rtvoice's voices expect them (NVIDIA's ``TacotronSTFT``).

One definition serves both models: Tacotron 2 learns to predict these frames and WaveGlow
learns to turn them into audio, so they must agree bit for bit in their parameters:

- audio: float in [-1, 1) (int16 / 32768);
- STFT: ``filter_length`` 1024-point FFT, ``hop_length`` 256, ``win_length`` 1024 periodic
  Hann window, centred frames (the signal is reflect-padded by ``filter_length // 2``),
  magnitude (not power);
- mel: 80 Slaney-style bands from ``mel_fmin`` 0 to ``mel_fmax`` 8000 Hz, Slaney
  area normalisation (what ``librosa.filters.mel`` gives by default);
- log: ``log(clamp(x, min=1e-5))``, NVIDIA's ``dynamic_range_compression``.

Every number comes from :class:`rtvoice.config.AudioConfig`, the runtime's own. A clip of
``n`` samples gives ``1 + n // hop_length`` frames.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from rtvoice.config import AudioConfig

LOG_FLOOR = 1e-5
"""Magnitudes are clamped here before the log: log(1e-5) = -11.51 is the silence level."""

MAX_WAV_VALUE = 32768.0

AUDIO = AudioConfig()
"""The runtime's audio parameters: 22050 Hz, hop 256, window and FFT 1024, 80 mels, 0-8000 Hz."""


# Slaney's mel scale, in both directions below.
_F_SP = 200.0 / 3.0  # Hz per mel on the linear part
_MIN_LOG_HZ = 1000.0  # where the logarithmic part starts
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = float(np.log(6.4) / 27.0)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, linear)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters (n_mels, 1 + n_fft // 2), Slaney-normalised to unit area in Hz.

    The same construction as ``librosa.filters.mel(htk=False, norm="slaney")``: ``n_mels + 2``
    points equally spaced in mel; filter ``i`` rises from point ``i`` to ``i + 1`` and falls
    to ``i + 2``, and is scaled by ``2 / (f[i + 2] - f[i])``.
    """
    fft_hz = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    points = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(points)
    ramps = points[:, None] - fft_hz[None, :]
    weights = np.zeros((n_mels, fft_hz.size))
    for i in range(n_mels):
        lower = -ramps[i] / widths[i]
        upper = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (points[2 : n_mels + 2] - points[:n_mels]))[:, None]
    return weights.astype(np.float32)


class MelSpectrogram(nn.Module):
    """Audio (B, n) float in [-1, 1) -> log mel (B, n_mel, 1 + n // hop), float32.

    Move it to the audio's device (``.to("cuda")``) to compute there; the filterbank and
    window are buffers.
    """

    def __init__(self, audio: AudioConfig = AUDIO) -> None:
        super().__init__()
        self.audio = audio
        bank = mel_filterbank(audio.sample_rate, audio.filter_length, audio.n_mel_channels, audio.mel_fmin,
                              audio.mel_fmax)
        self.register_buffer("mel_basis", torch.from_numpy(bank), persistent=False)
        self.register_buffer("window", torch.hann_window(audio.win_length, periodic=True), persistent=False)

    def forward(self, audio: Tensor) -> Tensor:
        a = self.audio
        spec = torch.stft(audio.float(), n_fft=a.filter_length, hop_length=a.hop_length, win_length=a.win_length,
                          window=self.window, center=True, pad_mode="reflect", return_complex=True)
        mel = torch.matmul(self.mel_basis, spec.abs())
        return torch.log(torch.clamp(mel, min=LOG_FLOOR))


def n_frames(n_samples: int, audio: AudioConfig = AUDIO) -> int:
    """Frames the mel of ``n_samples`` samples has."""
    return 1 + n_samples // audio.hop_length


def int16_to_float(samples: np.ndarray | Tensor) -> Tensor:
    """int16 PCM -> float32 tensor in [-1, 1), NVIDIA's ``/ max_wav_value``."""
    t = torch.as_tensor(samples)
    return t.float() / MAX_WAV_VALUE
