"""The state the PortAudio callback shares with the Player's producer, and the callback itself.

Kept apart from the Player so that the one function that runs on the PortAudio thread is
small, and can be driven by hand in tests (tests/playback/test_playback_feed.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..audio import Float32Array
from ._ring import RingBuffer


class Feed:
    """The state the PortAudio thread shares with the producer.

    The producer assigns ``expect_more``, ``wake`` and ``closing``; the PortAudio thread
    assigns the counters, ``dry``, ``lost`` and ``last_callback``. Each reads the other's
    fields only.
    """

    def __init__(self, ring: RingBuffer) -> None:
        self.ring = ring
        self.scratch: Float32Array = np.zeros(4096, np.float32)
        self.expect_more = False
        """True while an utterance is being written: running dry now is an underrun."""
        self.wake: Callable[[], None] | None = None
        """Set by a waiting producer; called after every callback until it is cleared."""
        self.closing = False
        self.played = 0
        self.underruns = 0
        self.underrun_frames = 0
        self.device_underflows = 0
        self.dry = False
        self.lost = False
        self.last_callback = time.monotonic()

    def callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        # Runs on the PortAudio thread. Never blocks, never touches asyncio objects.
        self.last_callback = time.monotonic()
        if status.output_underflow:
            self.device_underflows += 1
        if frames > len(self.scratch):  # only if PortAudio grows its block size; a one-off allocation
            self.scratch = np.zeros(frames, np.float32)
        mono = self.scratch[:frames]
        n = self.ring.read_into(mono)
        short = n < frames
        if short:
            mono[n:] = 0.0  # the device cannot wait: it plays silence, which we count below
            if self.expect_more:
                self.underrun_frames += frames - n
                if not self.dry:
                    self.underruns += 1
        self.dry = short and self.expect_more
        outdata[:] = mono[:, None]  # mono to every channel
        self.played += n
        wake = self.wake
        if wake is not None:
            wake()

    def finished(self) -> None:
        # Runs on the PortAudio thread once the stream has stopped: after our stop/abort, or
        # on its own when the device failed or vanished.
        if not self.closing:
            self.lost = True
        wake = self.wake
        if wake is not None:
            wake()
