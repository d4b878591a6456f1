"""Speaking one announcement: synthesis -> sink, audio out over MQTT, events with timings.

:meth:`Speaker.speak` reports the outcome itself (``finished`` or ``failed``) except when
it is cancelled: then the :class:`~rtvoice.announce.announcer.Announcer`, which knows
why (cancel, interruption, shutdown), reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping

import numpy as np

from ..audio import AudioChunk, Float32Array, wav_bytes
from ..config import SynthesisConfig
from ..errors import AudioDeviceError, RtvoiceError, TextError
from ..voice import Voice
from .errors import MessageError, Reason
from .events import Events, Timings
from .hermes import PlayFinished
from .messages import Announcement
from .sinks import Sink, chime_chunk

log = logging.getLogger("rtvoice.announce")


def text_reason(exc: TextError, text: str) -> Reason:
    if exc.limit is not None:
        return Reason.TEXT_TOO_LONG
    return Reason.EMPTY_TEXT if not text.strip() else Reason.INVALID_TEXT


def failure_reason(exc: Exception, text: str) -> Reason:
    """The ``failed`` reason for an error raised while speaking."""
    if isinstance(exc, TextError):
        return text_reason(exc, text)
    if isinstance(exc, AudioDeviceError):
        return Reason.PLAYBACK_ERROR
    if isinstance(exc, RtvoiceError):
        return Reason.SYNTHESIS_ERROR
    return Reason.INTERNAL_ERROR  # a bug in rtvoice


def check_text(voice: Voice, announcement: Announcement, synthesis: SynthesisConfig) -> None:
    """Refuse unspeakable text when it arrives rather than when its turn comes.

    ``Voice.synthesize`` validates the text before it returns its lazy generator; the
    generator is dropped unstarted, so no synthesis happens here.

    Raises:
        MessageError: ``text_too_long``, ``empty_text`` or ``invalid_text``.
    """
    try:
        voice.synthesize(announcement.text, synthesis)
    except TextError as exc:
        raise MessageError(text_reason(exc, announcement.text), str(exc), id=announcement.id,
                           hermes=announcement.hermes) from exc


class _Take:
    """One announcement's audio as it streams by: timings, and the samples when kept."""

    def __init__(self, start: float, *, keep: bool) -> None:
        self.start = start
        self.keep = keep
        self.parts: list[Float32Array] = []
        self.audio_s = 0.0
        self.first_s: float | None = None
        self.synthesis_s: float | None = None

    def _add(self, chunk: AudioChunk) -> None:
        self.audio_s += chunk.duration_s
        if self.keep:
            self.parts.append(chunk.samples)

    async def chunks(self, voice: Voice, item: Announcement,
                     synthesis: SynthesisConfig) -> AsyncGenerator[AudioChunk, None]:
        if item.chime:
            chime = chime_chunk(voice.sample_rate)
            self._add(chime)
            yield chime
        # Voice.stream is an async generator: close it when we stop.
        stream = voice.stream(item.text, synthesis)
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                if self.first_s is None:
                    self.first_s = time.monotonic() - self.start
                self._add(chunk)
                yield chunk
        self.synthesis_s = time.monotonic() - self.start

    def samples(self, volume: float) -> Float32Array:
        audio = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        return (audio * np.float32(volume)).astype(np.float32)

    def timings(self, queued_s: float, *, done: bool) -> Timings:
        return Timings(queued_s, self.first_s, self.synthesis_s, self.audio_s,
                       time.monotonic() - self.start if done else None)


class Speaker:
    """Speaks announcements one at a time on a sink; owned by an announcer.

    Args:
        voices: The voices by name; announcements arrive with ``voice`` resolved.
        sink: Local output; when it is not audible the audio is published instead.
        events: Where events and Hermes answers go.
        synthesis: Settings for every synthesis.
        publish_audio: Publish native audio even when the sink is audible.
        play_finished: Hermes ``playFinished`` waiters (set by the dispatcher).
        play_finished_extra_s: Wait for ``playFinished`` up to the audio's length plus this.
    """

    def __init__(self, voices: Mapping[str, Voice], sink: Sink, events: Events, *, synthesis: SynthesisConfig,
                 publish_audio: bool, play_finished: PlayFinished, play_finished_extra_s: float) -> None:
        self._voices = voices
        self._sink = sink
        self._events = events
        self._synthesis = synthesis
        self._publish_audio = publish_audio
        self._play_finished = play_finished
        self._play_finished_extra_s = play_finished_extra_s

    async def speak(self, item: Announcement) -> None:
        """Speak ``item`` and report ``started`` then ``finished`` or ``failed``.

        Raises:
            asyncio.CancelledError: When stopped; nothing is reported then (the caller does).
        """
        assert item.voice is not None, "the announcer resolves the voice before queueing"
        voice = self._voices[item.voice]
        start = time.monotonic()
        queued_s = start - item.received_at
        self._events.started(item, Timings(queued_s))
        publish = not self._sink.audible or (self._publish_audio and item.hermes is None)
        take = _Take(start, keep=publish)
        try:
            async with contextlib.aclosing(take.chunks(voice, item, self._synthesis)) as chunks:
                await self._sink.play(chunks, voice.sample_rate, item.volume)
        except Exception as exc:  # one announcement fails; the daemon goes on with the next
            reason = failure_reason(exc, item.text)
            if reason is Reason.INTERNAL_ERROR:
                log.exception("announcement %s failed unexpectedly", item.id)
            error = str(exc) if isinstance(exc, RtvoiceError) else f"{type(exc).__name__}: {exc}"
            self._events.failed(item, reason, error, timings=take.timings(queued_s, done=True))
            return
        if publish:
            await self._publish(item, wav_bytes(take.samples(item.volume), voice.sample_rate), take.audio_s)
        self._events.finished(item, take.timings(queued_s, done=True))

    async def _publish(self, item: Announcement, wav: bytes, audio_s: float) -> None:
        request = item.hermes
        if request is None:
            self._events.audio(item, wav)
            return
        # As rhasspy-tts-cli-hermes does: playBytes, then wait (bounded) for playFinished.
        waiter = self._play_finished.expect(request.request_id)
        try:
            self._events.play_bytes(request, wav)
            await asyncio.wait_for(waiter.wait(), audio_s + self._play_finished_extra_s)
        except TimeoutError:
            log.debug("no playFinished for %s within %.2f s", request.request_id, audio_s)
        finally:
            self._play_finished.forget(request.request_id)
