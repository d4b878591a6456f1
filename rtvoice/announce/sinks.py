"""Where announcement audio goes locally: nowhere (:class:`NullSink`) or the sound card.

A sink consumes one announcement's chunks and returns once they have been *heard*, so
that ``finished`` means finished. It is stopped by cancelling the task that awaits
:meth:`Sink.play`; it must then stop within about a chunk and return nothing half-open.

:class:`LocalPlayback` writes the chunks to an ``rtvoice.playback.Player`` with its async
API. ``rtvoice.playback`` (and so sounddevice/PortAudio) is imported only when local
playback is asked for, so the daemon runs and is tested on machines without a sound card.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import numpy as np

from ..audio import AudioChunk, Float32Array, Timing
from ..errors import AudioDeviceError

log = logging.getLogger("rtvoice.announce")


class Sink(Protocol):
    """Local output of announcements."""

    audible: bool
    """True when :meth:`play` is heard here. If not, the announcer publishes the audio
    (native ``<prefix>audio/<id>``, Hermes ``playBytes``) so that something else plays it."""

    async def play(self, chunks: AsyncIterator[AudioChunk], sample_rate: int, volume: float) -> None:
        """Consume ``chunks`` and return once they are played (cancel to stop)."""
        ...

    async def aclose(self) -> None:
        """Release the output (the sink's owner calls it; the announcer does not)."""
        ...


class NullSink:
    """Plays nothing: for ``--no-play`` daemons whose audio goes out over MQTT."""

    audible = False

    async def play(self, chunks: AsyncIterator[AudioChunk], sample_rate: int, volume: float) -> None:
        async for _ in chunks:
            pass

    async def aclose(self) -> None:
        pass


class PlayerLike(Protocol):
    """What :class:`LocalPlayback` needs of ``rtvoice.playback.Player`` (a fake in tests)."""

    volume: float

    def open(self) -> Any:
        """Pick the device and start the stream (blocking)."""
        ...

    def close(self) -> None:
        """Drop what is queued and release the device (blocking)."""
        ...

    async def awrite(self, samples: Float32Array, *, last: bool = False) -> None:
        """Queue audio, waiting while the ring is full."""
        ...

    async def adrain(self) -> None:
        """Wait until everything queued has played."""
        ...

    def flush(self) -> float:
        """Drop everything queued at once (barge-in)."""
        ...


class LocalPlayback:
    """Plays announcements on this machine through ``rtvoice.playback.Player``.

    One player per sample rate is opened at first use and kept open between announcements
    (no device probing per announcement). Chunks are written with the player's async API on
    the event loop, which is then its one producer thread; the PortAudio thread only reads
    the player's ring. Stopping an announcement (cancel, interruption, shutdown) flushes
    the ring, so the sound stops within one device block. A player whose device failed is
    closed and forgotten: the next announcement opens the device again.

    Use :func:`local_playback` to create one; :meth:`aclose` is idempotent.

    Args:
        player_factory: ``(sample_rate, device=...) -> Player``.
        device: Output device name or index (``None``: the default).
    """

    audible = True

    def __init__(self, player_factory: Callable[..., PlayerLike], *, device: str | int | None = None) -> None:
        self._factory = player_factory
        self._device = device
        self._players: dict[int, PlayerLike] = {}

    async def _player(self, sample_rate: int) -> PlayerLike:
        player = self._players.get(sample_rate)
        if player is None:
            player = self._factory(sample_rate, device=self._device)
            await asyncio.to_thread(player.open)  # device probing blocks; keep the loop free
            self._players[sample_rate] = player
        return player

    async def play(self, chunks: AsyncIterator[AudioChunk], sample_rate: int, volume: float) -> None:
        player = await self._player(sample_rate)
        player.volume = volume
        try:
            async for chunk in chunks:
                await player.awrite(chunk.samples, last=chunk.is_last)
            await player.adrain()
        except AudioDeviceError:
            self._players.pop(sample_rate, None)
            await asyncio.to_thread(player.close)
            raise
        except BaseException:
            dropped = player.flush()  # stop the sound now, not after what is queued
            log.debug("local playback stopped; %.2f s of queued audio dropped", dropped)
            raise

    async def aclose(self) -> None:
        """Close every player (releases the devices)."""
        players, self._players = list(self._players.values()), {}
        for player in players:
            await asyncio.to_thread(player.close)


def local_playback(device: str | int | None = None) -> LocalPlayback:
    """Local playback through ``rtvoice.playback`` (imported here, not before).

    The device is checked now, so that a daemon started without ``--no-play`` on a machine
    without a sound card stops at once with the reason.

    Raises:
        AudioDeviceError: No usable output device (or no PortAudio).
    """
    from ..playback import Player, resolve_output_device

    try:
        resolve_output_device(device)
    except AudioDeviceError as exc:
        raise AudioDeviceError(f"{exc} Note: without a sound card, run with --no-play to publish the "
                               "audio over MQTT instead.") from exc
    return LocalPlayback(Player, device=device)


def chime(sample_rate: int) -> Float32Array:
    """A soft two-tone chime (E5 then C5, 0.25 s each, decaying) and 0.15 s of silence."""
    n = int(0.25 * sample_rate)
    t = np.arange(n, dtype=np.float32) / sample_rate
    envelope = np.exp(-t * 9.0) * np.minimum(1.0, t * 200.0)  # 5 ms attack, no click
    tones = [0.35 * envelope * np.sin(2 * np.pi * f * t) for f in (659.25, 523.25)]
    return np.concatenate([*tones, np.zeros(int(0.15 * sample_rate))]).astype(np.float32)


def chime_chunk(sample_rate: int) -> AudioChunk:
    """The chime as the chunk that precedes an announcement's speech."""
    samples = chime(sample_rate)
    duration = len(samples) / sample_rate
    return AudioChunk(samples, sample_rate, sentence_index=-1, offset_samples=0, is_last=False,
                      timing=Timing(0.0, 0.0, duration))
