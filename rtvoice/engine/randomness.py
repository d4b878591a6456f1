"""Seeded, position-addressable randomness: prenet dropout masks and WaveGlow noise.

NVIDIA's models draw both inside the network; rtvoice feeds them as inputs so that a seed
gives the same audio on every backend and whether or not the audio is streamed. WaveGlow
noise is drawn in fixed blocks keyed by (seed, sentence, block index): any range of
absolute sample positions can be produced on its own, in any order, bit for bit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

NOISE_BLOCK = 1024
"""Noise columns (one column = n_group samples) per independently seeded block."""

_PRENET_STREAM = 1
_NOISE_STREAM = 2


class PrenetMasks:
    """Dropout masks for consecutive decoder steps of one sentence, scaled by 1/(1-p)."""

    def __init__(self, seed: int, sentence: int, dim: int, p: float = 0.5) -> None:
        self._rng = np.random.Generator(np.random.PCG64([seed, sentence, _PRENET_STREAM]))
        self._dim = dim
        self._p = p

    def take(self, steps: int, batch: int = 1) -> npt.NDArray[np.float32]:
        """Masks for the next ``steps`` steps: (steps, batch, 2, dim) of 0 or 1/(1-p)."""
        keep = self._rng.random((steps, batch, 2, self._dim)) >= self._p
        return keep.astype(np.float32) / np.float32(1.0 - self._p)


def noise(seed: int, sentence: int, n_group: int, start: int, stop: int, sigma: float) -> npt.NDArray[np.float32]:
    """WaveGlow noise for columns [start, stop): (1, n_group, stop - start), times sigma."""
    if stop <= start:
        return np.zeros((1, n_group, 0), np.float32)
    first, last = start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK
    blocks = [
        np.random.Generator(np.random.PCG64([seed, sentence, _NOISE_STREAM, b]))
        .standard_normal((n_group, NOISE_BLOCK), dtype=np.float32)
        for b in range(first, last + 1)
    ]
    joined = np.concatenate(blocks, axis=1)
    offset = first * NOISE_BLOCK
    return (joined[None, :, start - offset : stop - offset] * np.float32(sigma)).astype(np.float32)
