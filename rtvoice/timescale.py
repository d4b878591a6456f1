"""Speaking rate by time-scaling the mel spectrogram before WaveGlow (issue 24).

Resampling the audio changes its duration and its pitch together (2x is an octave up).
WaveGlow instead makes the pitch from the harmonics *within* each mel frame, so giving it
more or fewer frames changes only how long each sound lasts. Output frame ``k`` of a
sentence spoken at ``rate`` is the decoder's frame at position ``k * rate``, linearly
interpolated between its two neighbours in the log-mel domain the decoder works in.

Streaming: the map from output frame to source position is fixed (``k * rate``, the same
float64 product wherever it is computed), so every chunk, whatever its size or context,
sees exactly the frames the whole sentence would, and the seams stay as they are at rate 1.
An output frame is *ready* once both of its source frames are decoded and final; the
sentence's last frame is held (never interpolated past) once the gate has fired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Mel = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TimeScale:
    """The fixed frame map of one sentence spoken at ``rate`` (2.0: twice as fast)."""

    rate: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number, got {self.rate!r}.")

    @property
    def identity(self) -> bool:
        """Rate 1: the decoder's frames are used as they are (no copy, no interpolation)."""
        return self.rate == 1.0

    def position(self, k: int) -> float:
        """Where output frame ``k`` reads the decoder's frames (fractional)."""
        return k * self.rate

    def frames(self, source_ready: int, final: bool) -> int:
        """Output frames computable from the decoder's frames ``[0, source_ready)``.

        Final: the sentence's length at this rate, at least one frame. Not final: the
        frames whose right neighbour ``floor(k * rate) + 1`` is already decoded; never more
        than the final length, however many more frames the decoder makes.
        """
        if self.identity:
            return source_ready
        if source_ready <= 0:
            return 0
        if final:
            return max(1, round(source_ready / self.rate))
        k = int((source_ready - 1) / self.rate) + 2  # an upper bound, walked down exactly
        while k > 0 and math.floor(self.position(k - 1)) + 1 >= source_ready:
            k -= 1
        return k

    def source_span(self, start: int, stop: int, source_frames: int) -> tuple[int, int]:
        """The decoder frames ``[s0, s1)`` that output frames ``[start, stop)`` read."""
        s0 = min(math.floor(self.position(start)), source_frames - 1)
        s1 = min(math.floor(self.position(stop - 1)) + 2, source_frames)
        return s0, s1

    def scale(self, source: Mel, s0: int, start: int, stop: int, source_frames: int) -> Mel:
        """Output frames ``[start, stop)`` as (stop - start, n_mel) float32.

        Args:
            source: decoder frames ``[s0, s0 + len)`` as (len, n_mel), covering
                :meth:`source_span`.
            s0: the first decoder frame in ``source``.
            start: the first output frame wanted.
            stop: one past the last output frame wanted.
            source_frames: decoder frames known so far (the sentence's length once final);
                positions past the last are held at it.
        """
        positions = np.arange(start, stop, dtype=np.float64) * self.rate
        last = source_frames - 1
        positions = np.minimum(positions, float(last))
        left = np.floor(positions).astype(np.int64)
        right = np.minimum(left + 1, last)
        weight = (positions - left).astype(np.float32)[:, None]
        a = source[left - s0]
        b = source[right - s0]
        out: Mel = np.ascontiguousarray(a + (b - a) * weight, dtype=np.float32)
        return out
