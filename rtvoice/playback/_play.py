"""``play_chunks``: the one function that turns a chunk iterator into sound (``rtvoice say --play``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from ..audio import AudioChunk
from ._devices import negotiate_rate, portaudio_check, resolve_output_device
from ._player import PlaybackStats, Player

log = logging.getLogger("rtvoice.playback")


def play_chunks(chunks: Iterable[AudioChunk], sample_rate: int, device: str | int | None = None,
                volume: float = 1.0, passthrough: bool = False) -> Iterator[AudioChunk]:
    """Play chunks as they come; iterate the result to drive it.

    The device is checked eagerly (an :class:`~rtvoice.errors.AudioDeviceError` is raised
    here, before any synthesis or file writing starts); the stream opens at the first
    ``next()``. Each chunk is queued for playback as soon as it arrives, waiting only while
    the player's ring is full; at the end the iterator waits until the audio has played, then
    logs any underruns as a warning. Closing the iterator early stops the sound at once.

    Args:
        chunks: audio chunks at ``sample_rate``, e.g. ``voice.synthesize(text)``.
        sample_rate: the chunks' rate, in Hz.
        device: output device (``None``: the default); see :class:`Player`.
        volume: gain, 0.0 to 2.0.
        passthrough: also yield every chunk once it is queued, unchanged (so a WAV writer can
            consume the same iterator); otherwise nothing is yielded.

    Returns:
        An iterator to consume to the end (``for _ in play_chunks(...): pass``).

    Raises:
        AudioDeviceError: no device, an unknown one, or one that refuses every rate (eagerly);
            the device vanishing mid-sentence (while iterating).
    """
    target = resolve_output_device(device)
    negotiate_rate(target, sample_rate, min(2, target.max_channels), portaudio_check)
    # Open the index just checked, so that the stream plays where the check said it would.
    player = Player(sample_rate, device=target.index, volume=volume)
    return _play(player, chunks, passthrough)


def _play(player: Player, chunks: Iterable[AudioChunk], passthrough: bool) -> Iterator[AudioChunk]:
    with player:  # a clean exit drains (plays everything); an exception or close() aborts
        for chunk in chunks:
            if chunk.sample_rate != player.sample_rate:
                raise ValueError(f"chunk at {chunk.sample_rate} Hz for a {player.sample_rate} Hz player")
            player.write(chunk.samples, last=chunk.is_last)
            if passthrough:
                yield chunk
        player.drain()
        report(player.stats)


def report(stats: PlaybackStats) -> None:
    """Log a playback summary: underruns as a warning (they are audible), the rest as info."""
    if stats.underruns:
        log.warning("playback on %s: %d underrun(s), %.2f s of silence inserted because synthesis fell "
                    "behind playback", stats.device, stats.underruns, stats.underrun_s)
    if stats.device_underflows:
        log.warning("playback on %s: the device ran late %d time(s) (a busy machine)",
                    stats.device, stats.device_underflows)
    log.info("played %.2f s on %s at %d Hz", stats.played_s, stats.device, stats.rate)
