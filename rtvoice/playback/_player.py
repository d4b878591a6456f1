"""The Player: one output stream, fed from a ring buffer by the pipeline.

Threads (who calls what):

- **The producer** (one thread: the caller of ``write``/``drain``, or the event loop for
  ``awrite``/``adrain``; ``flush`` and ``close`` from that same thread) prepares audio
  (resample, volume, clip) and copies it into the ring, waiting while the ring is full.
- **The PortAudio thread** runs ``Feed.callback`` (``_feed.py``). It reads the ring, counts
  underruns and, if the producer is waiting, calls the producer's ``wake``. It never blocks and
  never touches an asyncio object: the async ``wake`` crosses into the loop with
  ``loop.call_soon_threadsafe``. It also runs ``Feed.finished`` when the stream stops.

An *underrun* is the ring running dry in the middle of an utterance (synthesis fell behind
playback). The device then plays silence, since it cannot wait, but every gap is counted in
:class:`PlaybackStats`, never hidden. Running dry between utterances is not an underrun.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from ..audio import Float32Array
from ..errors import AudioDeviceError
from ._devices import (
    OutputDevice,
    close_stream,
    negotiate_rate,
    open_stream,
    portaudio_check,
    resolve_output_device,
)
from ._feed import Feed
from ._resample import Resampler
from ._ring import RingBuffer

log = logging.getLogger("rtvoice.playback")

MAX_VOLUME = 2.0
MIN_RING_SAMPLES = 4096
"""The smallest ring, whatever ``buffer_s`` says: more than one device block, or every block would underrun."""
_POLL_S = 0.1
"""Longest a waiting producer sleeps between checks that the device is still alive."""


@dataclass(frozen=True)
class PlaybackStats:
    """What a player has done since it was opened."""

    device: str
    rate: int
    """The rate the device plays at, in Hz (the voice's own unless the device refused it)."""
    played_s: float
    """Seconds of audio handed to the device (silence padding excluded)."""
    underruns: int
    """Times the ring ran dry in the middle of an utterance: synthesis fell behind playback."""
    underrun_s: float
    """Seconds of silence the device played during those underruns."""
    device_underflows: int
    """Times PortAudio reported that the callback itself came too late (a busy machine)."""


@dataclass
class _Live:
    """Everything that exists only while the player is open."""

    device: OutputDevice
    rate: int
    stream: Any
    feed: Feed
    resampler: Resampler


class Player:
    """Plays mono float32 audio on an output device; ``with`` or ``async with`` it.

    Example::

        with Player(voice.sample_rate, device="USB") as player:
            for chunk in voice.synthesize("Hello."):
                player.write(chunk.samples, last=chunk.is_last)
        # leaving the block plays what is queued, then closes

    Constructing a player does nothing; :meth:`open` picks the device, negotiates the rate and
    starts the stream. :meth:`close` is idempotent and returns the player to its unopened
    state, so it may be opened again (after the device came back, say).

    Args:
        sample_rate: the rate of the audio that will be written (the voice's), in Hz.
        device: ``None`` for the default output, a PortAudio index, or a name (or unique part of
            one); see :func:`~rtvoice.playback.resolve_output_device`.
        volume: gain applied before clipping to [-1, 1]; 0.0 to 2.0.
        buffer_s: seconds of audio the ring holds (at least 4096 samples). More lets synthesis
            run further ahead (fewer underruns); ``flush`` drops it all at once, so it costs no
            barge-in latency.
        device_rate: open the device at exactly this rate (resampling with soxr) instead of
            negotiating; useful to bypass a host API's own, lower-quality rate conversion.
        stall_s: a device that asks for no audio for this long is reported as gone.
    """

    def __init__(self, sample_rate: int, *, device: str | int | None = None, volume: float = 1.0,
                 buffer_s: float = 2.0, device_rate: int | None = None, stall_s: float = 3.0) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if buffer_s <= 0:
            raise ValueError(f"buffer_s must be positive, got {buffer_s}")
        self.sample_rate = sample_rate
        self.volume = volume
        self._device_spec = device
        self._buffer_s = buffer_s
        self._device_rate = device_rate
        self._stall_s = stall_s
        self._live: _Live | None = None

    @property
    def volume(self) -> float:
        """Gain for audio written from now on (what is already queued keeps its gain)."""
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        if not 0.0 <= value <= MAX_VOLUME:
            raise ValueError(f"volume must be between 0.0 and {MAX_VOLUME}, got {value}")
        self._volume = float(value)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._live is not None

    def open(self) -> Player:
        """Choose the device, negotiate the rate and start the stream (silence until written to).

        Raises:
            AudioDeviceError: no such device, no device at all, every rate refused, or PortAudio
                could not open it.
        """
        if self._live is not None:
            raise RuntimeError("Player is already open.")
        device = resolve_output_device(self._device_spec)
        channels = min(2, device.max_channels)  # stereo devices would otherwise play mono on one side
        rate = negotiate_rate(device, self.sample_rate, channels, portaudio_check, self._device_rate)
        resampler = Resampler(self.sample_rate, rate)
        feed = Feed(RingBuffer(max(MIN_RING_SAMPLES, round(self._buffer_s * rate))))
        stream = open_stream(device, rate, channels, feed.callback, feed.finished)
        self._live = _Live(device, rate, stream, feed, resampler)
        log.info("playing on %s at %d Hz, %d channel(s)%s", device, rate, channels,
                 f", resampled from {self.sample_rate} Hz" if resampler.active else "")
        return self

    def close(self) -> None:
        """Drop what is queued and release the device; idempotent.

        What the device itself already holds (its latency, tens of milliseconds) still plays;
        call :meth:`drain` first to hear everything.
        """
        live = self._live
        if live is None:
            return
        self._live = None
        live.feed.closing = True
        live.feed.wake = None
        live.feed.ring.discard()
        stalled = time.monotonic() - live.feed.last_callback > self._stall_s
        # A dead or stalled device has nothing to play out, and stopping it could wait forever.
        close_stream(live.stream, live.device, play_out=not (live.feed.lost or stalled))

    def __enter__(self) -> Player:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc is None and self._live is not None:
                self.drain()
        finally:
            self.close()

    async def __aenter__(self) -> Player:
        # Opening can take a while (device probing); keep the event loop free meanwhile.
        return await asyncio.to_thread(self.open)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if exc is None and self._live is not None:
                await self.adrain()
        finally:
            await asyncio.to_thread(self.close)

    def __del__(self) -> None:
        if getattr(self, "_live", None) is not None:
            warnings.warn("rtvoice Player was never closed; use `with Player(...)`.", ResourceWarning, stacklevel=2)

    # -- state -----------------------------------------------------------------------------

    def _require_open(self) -> _Live:
        if self._live is None:
            raise RuntimeError("Player is not open; use `with Player(...) as player:` or call open().")
        return self._live

    @property
    def device(self) -> OutputDevice:
        return self._require_open().device

    @property
    def device_rate(self) -> int:
        return self._require_open().rate

    @property
    def queued_s(self) -> float:
        """Seconds of audio waiting in the ring (0 when closed)."""
        live = self._live
        return 0.0 if live is None else live.feed.ring.available / live.rate

    @property
    def stats(self) -> PlaybackStats:
        live = self._require_open()
        f = live.feed
        return PlaybackStats(str(live.device), live.rate, f.played / live.rate, f.underruns,
                             f.underrun_frames / live.rate, f.device_underflows)

    def _check_alive(self, live: _Live) -> None:
        if live.feed.lost:
            when = "in the middle of playback" if live.feed.played else "as soon as it started"
            raise AudioDeviceError(
                f"Audio device {live.device} stopped {when}: it was unplugged or its driver failed. "
                "Hint: reconnect it, or pick another with --audio-device (rtvoice devices).")
        silent = time.monotonic() - live.feed.last_callback
        if silent > self._stall_s:
            raise AudioDeviceError(
                f"Audio device {live.device} stopped asking for audio. Note: no callback for {silent:.1f} s. "
                "Hint: it may have been unplugged or taken by another program.")

    # -- producer side ---------------------------------------------------------------------

    def _prepare(self, live: _Live, samples: Float32Array, last: bool) -> Float32Array:
        x = live.resampler.feed(np.asarray(samples, dtype=np.float32).reshape(-1))
        if last:
            x = np.concatenate((x, live.resampler.finish()))
        # A new array: the caller's chunk is never modified. Clipping here keeps what reaches the
        # device the same whatever sample format PortAudio converts to.
        out: Float32Array = np.clip(x * np.float32(self._volume), -1.0, 1.0).astype(np.float32, copy=False)
        return out

    def _push(self, live: _Live, data: Float32Array, pos: int) -> int:
        """Queue what fits of ``data[pos:]`` (:meth:`write` and :meth:`awrite` wait in between); the new ``pos``."""
        self._check_alive(live)
        pos += live.feed.ring.write(data[pos:])
        # Mid-utterance from now on; set only once audio is queued, so that the callback
        # running between this flag and the data would not count a false underrun.
        live.feed.expect_more = True
        return pos

    def write(self, samples: Float32Array, *, last: bool = False) -> None:
        """Queue audio, waiting while the ring is full.

        Args:
            samples: mono float32 audio at ``sample_rate``.
            last: the end of an utterance: the resampler's tail is flushed and the ring running
                dry from now on is no longer an underrun.

        Raises:
            AudioDeviceError: the device vanished or stalled.
        """
        live = self._require_open()
        data = self._prepare(live, samples, last)
        pos = self._push(live, data, 0)
        while pos < len(data):
            self._wait(live, lambda: live.feed.ring.free > 0)
            pos = self._push(live, data, pos)
        live.feed.expect_more = not last

    async def awrite(self, samples: Float32Array, *, last: bool = False) -> None:
        """:meth:`write` for the event loop: waits without blocking it."""
        live = self._require_open()
        data = self._prepare(live, samples, last)
        pos = self._push(live, data, 0)
        while pos < len(data):
            await self._await(live, lambda: live.feed.ring.free > 0)
            pos = self._push(live, data, pos)
        live.feed.expect_more = not last

    def drain(self) -> None:
        """End the utterance (if ``last`` was not given) and wait until the ring is empty."""
        live = self._require_open()
        if live.feed.expect_more:
            self.write(np.zeros(0, np.float32), last=True)
        self._wait(live, lambda: live.feed.ring.available == 0)

    async def adrain(self) -> None:
        """:meth:`drain` for the event loop."""
        live = self._require_open()
        if live.feed.expect_more:
            await self.awrite(np.zeros(0, np.float32), last=True)
        await self._await(live, lambda: live.feed.ring.available == 0)

    def flush(self) -> float:
        """Barge-in: drop everything queued at once; returns the seconds dropped (0 when closed).

        The device stops within the one block it is playing plus its own latency. Call it from
        the producer thread (the event loop, for ``awrite``).
        """
        live = self._live
        if live is None:
            return 0.0
        dropped = live.feed.ring.discard()
        live.feed.expect_more = False
        live.resampler.reset()
        return dropped / live.rate

    def _wait(self, live: _Live, ready: Callable[[], bool]) -> None:
        event = threading.Event()
        # event.set runs on the PortAudio thread; Event's lock is never held while anyone waits.
        live.feed.wake = event.set
        try:
            while not ready():
                self._check_alive(live)
                event.wait(_POLL_S)
                event.clear()
        finally:
            live.feed.wake = None

    async def _await(self, live: _Live, ready: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake() -> None:
            # Runs on the PortAudio thread: cross into the loop thread, never touch `event` here.
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed after we read `wake`: nobody waits any more
                return

        live.feed.wake = wake
        try:
            while not ready():
                self._check_alive(live)
                # A poll tick, to notice a dead device. Not asyncio.wait_for: on Python 3.11 it can
                # swallow a cancellation that races with the event (barge-in would then keep writing).
                tick = loop.call_later(_POLL_S, event.set)
                try:
                    await event.wait()
                finally:
                    tick.cancel()
                event.clear()
        finally:
            live.feed.wake = None
