"""A log of refused messages that a flood of bad input cannot turn into a flood of lines.

Every refused message is answered on MQTT; the log is for the operator. Each refusal is
one line without a traceback (bad input is not a bug), at most ``burst`` lines per
``window_s``; past that, one summary line per window says how many were not logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RefusalLog:
    """Rate-limited one-line log of refusals (and of unexpected errors answered as such)."""

    def __init__(self, logger: logging.Logger, *, burst: int, window_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._burst = burst
        self._window_s = window_s
        self._clock = clock
        self._window_start = clock()
        self._logged = 0
        self._suppressed = 0

    def __call__(self, level: int, message: str, *args: object) -> None:
        """Log one line (``message % args``) unless this window's burst is used up."""
        now = self._clock()
        if now - self._window_start >= self._window_s:
            self.flush()
            self._window_start, self._logged = now, 0
        if self._logged < self._burst:
            self._logged += 1
            self._log.log(level, message, *args)
        else:
            self._suppressed += 1

    def flush(self) -> None:
        """Say how many refusals went unlogged since the last summary (if any did)."""
        if self._suppressed:
            self._log.warning("%d more refused message(s) not logged (at most %d lines per %.0f s)",
                              self._suppressed, self._burst, self._window_s)
            self._suppressed = 0
