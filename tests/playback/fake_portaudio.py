"""An in-process stand-in for PortAudio, for fast tests of the Player's logic.

Nothing here imports sounddevice: these tests run without PortAudio installed.

A thread calls the Player's callback every ``period`` seconds, as PortAudio's thread does, and
keeps what it is given. It can stall (stop calling, like a hung driver) or fail (stop and
call the finished callback, like an unplugged device). Tests of the real PortAudio path use
the fake ALSA card instead (alsa_fake_card.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from rtvoice.playback import OutputDevice
from rtvoice.playback import _player as player_module

DEVICE = OutputDevice(0, "fake", "test", 2, 22050.0, True)


@dataclass
class _Flags:
    output_underflow: bool = False


class FakeStream:
    """Calls ``callback(out, block, None, flags)`` every ``period`` seconds on its own thread.

    The defaults play about 5.8 times faster than real time at 22.05 kHz: tests need the order
    of events, not the wall-clock pace.
    """

    def __init__(self, callback: Callable[..., None], finished: Callable[[], None], block: int = 256,
                 period: float = 0.002, channels: int = 2) -> None:
        self._callback = callback
        self._finished = finished
        self.block = block
        self.period = period
        self.channels = channels
        self.played: list[np.ndarray] = []
        self.stalled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-portaudio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            if self.stalled.is_set():
                continue
            out = np.zeros((self.block, self.channels), np.float32)
            self._callback(out, self.block, None, _Flags())
            self.played.append(out[:, 0].copy())
        self._finished()

    def fail(self) -> None:
        """The device vanishes: the stream stops on its own."""
        self._stop.set()
        self._thread.join(5)

    def stop(self, ignore_errors: bool = True) -> None:
        self._stop.set()
        self._thread.join(5)

    abort = stop

    def close(self, ignore_errors: bool = True) -> None:
        self.stop()

    def audio(self) -> np.ndarray:
        return np.concatenate(self.played) if self.played else np.zeros(0, np.float32)


class FakePortAudio:
    """Patches the Player to open :class:`FakeStream` s; ``streams`` lists them, newest last."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.streams: list[FakeStream] = []
        self.fail_open: Exception | None = None
        self.open_delay = 0.0
        """Seconds opening a stream takes (a slow device)."""
        monkeypatch.setattr(player_module, "resolve_output_device", self._resolve)
        monkeypatch.setattr(player_module, "portaudio_check", lambda device, rate, channels: None)
        monkeypatch.setattr(player_module, "open_stream", self._open)
        monkeypatch.setattr(player_module, "close_stream", self._close)

    def _resolve(self, spec: Any) -> OutputDevice:
        if self.fail_open is not None:
            raise self.fail_open
        return DEVICE

    def _open(self, device: OutputDevice, rate: int, channels: int, callback: Callable[..., None],
              finished: Callable[[], None]) -> FakeStream:
        time.sleep(self.open_delay)
        stream = FakeStream(callback, finished, channels=channels)
        self.streams.append(stream)
        return stream

    @staticmethod
    def _close(stream: FakeStream, device: OutputDevice, play_out: bool) -> None:
        stream.close()

    @property
    def stream(self) -> FakeStream:
        return self.streams[-1]
