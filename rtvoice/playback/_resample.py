"""Streaming sample-rate conversion with soxr, for devices that refuse the voice's rate.

This is the only module of rtvoice that imports ``soxr``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..audio import Float32Array
from ..errors import AudioDeviceError


class Resampler:
    """Converts one utterance at a time, chunk by chunk, without clicks at the seams.

    soxr keeps a little of each chunk to filter the next one; :meth:`finish` hands out that
    tail at the end of an utterance and :meth:`reset` forgets it after a barge-in. With equal
    rates every method is a no-op pass-through. Not thread-safe: the player's producer thread
    owns it.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._soxr: Any = None
        self._stream: Any = None
        if in_rate != out_rate:
            try:
                import soxr
            except ImportError as exc:
                raise AudioDeviceError(
                    f"The audio device plays at {out_rate} Hz, not the voice's {in_rate} Hz, and resampling "
                    "needs the soxr package. Hint: pip install 'soxr>=0.5,<2'."
                ) from exc
            self._soxr = soxr
            self._stream = self._new_stream()

    def _new_stream(self) -> Any:
        return self._soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality="HQ")

    @property
    def active(self) -> bool:
        return self._stream is not None

    def feed(self, samples: Float32Array) -> Float32Array:
        """Resample the next chunk of the utterance (the output lags the input by soxr's delay)."""
        if self._stream is None:
            return samples
        out: Float32Array = self._stream.resample_chunk(np.ascontiguousarray(samples, np.float32))
        return out

    def finish(self) -> Float32Array:
        """The last samples of the utterance, held back by the filter until now."""
        if self._stream is None:
            return np.zeros(0, np.float32)
        out: Float32Array = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        self._stream = self._new_stream()  # a fresh stream is cheap and carries nothing over
        return out

    def reset(self) -> None:
        """Forget the utterance in progress (barge-in): the next chunk starts a fresh one."""
        if self._stream is not None:
            self._stream = self._new_stream()
