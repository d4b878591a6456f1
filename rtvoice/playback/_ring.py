"""A single-producer, single-consumer float32 ring buffer the PortAudio callback can read without blocking.

Why no lock: the PortAudio callback must never wait for the producer. Each side only ever
assigns its own counter (the producer ``_written`` and ``_discard_to``, the consumer
``_read``), both counters only grow, and each side publishes its counter *after* copying the
samples, so a reader never sees a region the writer is still filling. Assigning a Python int
is atomic under the GIL, which is all the two threads share.
"""

from __future__ import annotations

import numpy as np

from ..audio import Float32Array


class RingBuffer:
    """Mono float32 samples queued for the device.

    Threads: exactly one producer thread calls :meth:`write` and :meth:`discard`; exactly one
    consumer thread (the PortAudio callback) calls :meth:`read_into`. Either may read the
    properties.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least 1 sample, got {capacity}")
        self._buf: Float32Array = np.zeros(capacity, np.float32)
        self._written = 0
        """Samples ever written; assigned by the producer only."""
        self._read = 0
        """Samples ever consumed or skipped; assigned by the consumer only."""
        self._discard_to = 0
        """Barge-in request from the producer: the consumer skips everything before this."""

    @property
    def capacity(self) -> int:
        return len(self._buf)

    @property
    def available(self) -> int:
        """Samples queued and not yet discarded (what the device will still play)."""
        return self._written - max(self._read, self._discard_to)

    @property
    def free(self) -> int:
        """Room for the producer. Lags behind a :meth:`discard` until the consumer's next read."""
        return self.capacity - (self._written - self._read)

    def write(self, samples: Float32Array) -> int:
        """Copy as many of ``samples`` as fit; returns how many were taken. Producer only."""
        n = min(self.free, len(samples))
        if n <= 0:
            return 0
        cap = self.capacity
        start = self._written % cap
        first = min(n, cap - start)
        self._buf[start : start + first] = samples[:first]
        self._buf[: n - first] = samples[first:n]
        self._written += n  # publish after the copy
        return n

    def read_into(self, out: Float32Array) -> int:
        """Fill the front of ``out`` with queued samples; returns how many. Consumer only; never blocks."""
        start_total = max(self._read, self._discard_to)
        n = min(len(out), self._written - start_total)
        if n > 0:
            cap = self.capacity
            start = start_total % cap
            first = min(n, cap - start)
            out[:first] = self._buf[start : start + first]
            out[first:n] = self._buf[: n - first]
        else:
            n = 0
        self._read = start_total + n  # publish after the copy, so the producer may reuse the room
        return n

    def discard(self) -> int:
        """Drop everything queued (barge-in); returns how many samples were dropped. Producer only.

        The consumer skips the dropped samples on its next read, so at most the one read in
        progress still plays.
        """
        dropped = self.available
        self._discard_to = self._written
        return dropped
