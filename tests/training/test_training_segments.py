"""WaveGlow's training segments: cut on the device, aligned audio and mel, padded past the end."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.mel import LOG_FLOOR  # noqa: E402
from training.train_waveglow import Segments  # noqa: E402

HOP = 4


def packed(frames: list[int]) -> SimpleNamespace:
    """Utterances of these many frames, packed as training/data.py packs them; values say where they are."""
    mel_off = np.concatenate([[0], np.cumsum(frames)])
    audio_off = mel_off * HOP
    mel = np.stack([np.arange(mel_off[-1], dtype=np.float32) + k / 100 for k in range(3)], axis=1)
    audio = (np.arange(audio_off[-1]) % 30000).astype(np.int16)

    def mel_lengths() -> np.ndarray:
        return np.diff(mel_off)

    return SimpleNamespace(mel=mel, audio=audio, mel_off=mel_off, audio_off=audio_off, mel_lengths=mel_lengths)


def test_a_cut_takes_each_items_frames_and_their_samples() -> None:
    data = packed([5, 9, 7])
    segments = Segments(data, np.array([0, 1, 2]), frames=4, hop=HOP, device=torch.device("cpu"))  # type: ignore[arg-type]
    audio, mel = segments.cut(np.array([1, 2]), np.array([3, 1]))  # item 1 from frame 3, item 2 from frame 1
    assert audio.shape == (2, 4 * HOP) and mel.shape == (2, 3, 4)
    first = 5 + 3  # item 1 starts at packed frame 5
    torch.testing.assert_close(mel[0, 0], torch.arange(first, first + 4, dtype=torch.float32))
    torch.testing.assert_close(mel[0, 2], torch.arange(first, first + 4, dtype=torch.float32) + 0.02)
    expected = torch.arange(first * HOP, (first + 4) * HOP, dtype=torch.float32) / 32768.0
    torch.testing.assert_close(audio[0], expected)
    second = 14 + 1  # item 2 starts at packed frame 14
    torch.testing.assert_close(audio[1], torch.arange(second * HOP, (second + 4) * HOP, dtype=torch.float32) / 32768)


def test_a_cut_past_an_items_end_is_silence_not_the_next_item() -> None:
    data = packed([5, 9])
    segments = Segments(data, np.array([0, 1]), frames=4, hop=HOP, device=torch.device("cpu"))  # type: ignore[arg-type]
    audio, mel = segments.cut(np.array([0]), np.array([3]))  # frames 3, 4 exist; 5, 6 are item 1's
    torch.testing.assert_close(mel[0, 0, :2], torch.tensor([3.0, 4.0]))
    assert torch.all(mel[0, :, 2:] == math.log(LOG_FLOOR))
    assert torch.all(audio[0, 2 * HOP :] == 0) and torch.all(audio[0, : 2 * HOP] > 0)
