"""Keeps other threads' CUDA calls out of a global-mode stream capture.

Why: ONNX Runtime captures its CUDA graphs in ``cudaStreamCaptureModeGlobal``. While such a
capture is under way, a synchronizing call from ANY thread of the process (another
session's ``cudaStreamSynchronize``, an event wait) is refused, and the capture fails
("operation not permitted when stream is capturing"). Measured on an H100: 128 concurrent
streams broke the decoder's capture as the vocoder thread ran WaveGlow.

So GPU work of other threads holds the guard *shared* and a capturing run holds it
*exclusive*. Captures are rare (the first runs of each graph); shared holders only pay an
uncontended lock. Shared holds nest within a thread; an exclusive hold must not be taken
by a thread that holds a shared one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CaptureGuard", "capture_guard"]


class CaptureGuard:
    """A readers-writer lock that prefers the writer (the capture), with nestable readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._local = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        depth: int = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._cond:
                while self._writer or self._writers_waiting:
                    self._cond.wait()
                self._readers += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._cond:
                    self._readers -= 1
                    if self._readers == 0:
                        self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0):
            raise RuntimeError("capture_guard.exclusive() inside shared() of the same thread would deadlock")
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


capture_guard = CaptureGuard()
"""The process's one guard: a global-mode capture affects every thread of the process."""
