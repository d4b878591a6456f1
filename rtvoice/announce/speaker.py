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
from typing import Any

from ..audio import AudioChunk
from ..config import SynthesisConfig
from ..errors import AudioDeviceError, RtvoiceError, TextError
from ..voice import Voice
from .audio_out import AudioOut, AudioPublishing, release_memory
from .errors import MessageError, Reason
from .events import Events, Timings
from .hermes import PlayFinished
from .messages import Announcement, HermesRequest, synthesis_for
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
        voice.synthesize(announcement.text, synthesis_for(announcement, synthesis))
    except TextError as exc:
        raise MessageError(text_reason(exc, announcement.text), str(exc), id=announcement.id,
                           hermes=announcement.hermes) from exc


class _Take:
    """One announcement's audio as it streams by: timings, and the audio when published."""

    def __init__(self, start: float, *, out: AudioOut | None) -> None:
        self.start = start
        self.out = out
        self.audio_s = 0.0
        self.first_s: float | None = None
        self.synthesis_s: float | None = None
        self.truncated = 0
        """Sentences the decoder's step limit cut short (their end may be unspoken)."""

    def _add(self, chunk: AudioChunk) -> None:
        self.audio_s += chunk.duration_s
        if self.out is not None:
            self.out.add(chunk.samples)

    async def chunks(self, voice: Voice, item: Announcement,
                     synthesis: SynthesisConfig) -> AsyncGenerator[AudioChunk, None]:
        if item.chime:
            chime = chime_chunk(voice.sample_rate)
            self._add(chime)
            yield chime
        # Voice.stream is an async generator: close it when we stop.
        stream = voice.stream(item.text, synthesis_for(item, synthesis))
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                if self.first_s is None:
                    self.first_s = time.monotonic() - self.start
                self._add(chunk)
                self.truncated += chunk.truncated
                yield chunk
        self.synthesis_s = time.monotonic() - self.start

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
        audio: How audio is published (one WAV, or parts).
    """

    def __init__(self, voices: Mapping[str, Voice], sink: Sink, events: Events, *, synthesis: SynthesisConfig,
                 publish_audio: bool, play_finished: PlayFinished, play_finished_extra_s: float,
                 audio: AudioPublishing | None = None) -> None:
        self._audio = audio or AudioPublishing()
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
        out = AudioOut(self._events, item, voice.sample_rate, self._audio) if publish else None
        take = _Take(start, out=out)
        try:
            async with contextlib.aclosing(take.chunks(voice, item, self._synthesis)) as chunks:
                await self._sink.play(chunks, voice.sample_rate, item.volume)
        except asyncio.CancelledError:
            if out is not None:
                out.end(complete=False)  # tells part subscribers that no more parts come
            raise
        except Exception as exc:  # one announcement fails; the daemon goes on with the next
            if out is not None:
                out.end(complete=False)
            reason = failure_reason(exc, item.text)
            if reason is Reason.INTERNAL_ERROR:
                log.exception("announcement %s failed unexpectedly", item.id)
            error = str(exc) if isinstance(exc, RtvoiceError) else f"{type(exc).__name__}: {exc}"
            self._events.failed(item, reason, error, timings=take.timings(queued_s, done=True))
            return
        fields: dict[str, Any] = {}
        if take.truncated:  # never silently: the listener's app learns that words may be missing
            fields["warning"] = (f"{take.truncated} sentence(s) reached the decoder's step limit; "
                                 "their end may be unspoken.")
        if out is not None:
            if item.hermes is None:
                fields["audio"] = out.finish()
            else:
                await self._play(item.hermes, out.wav(), take.audio_s)
            if out.samples * 2 > self._audio.part_bytes:
                release_memory()
        self._events.finished(item, take.timings(queued_s, done=True), **fields)

    async def _play(self, request: HermesRequest, wav: bytes, audio_s: float) -> None:
        """As rhasspy-tts-cli-hermes does: playBytes, then wait (bounded) for playFinished."""
        waiter = self._play_finished.expect(request.request_id)
        try:
            self._events.play_bytes(request, wav)
            del wav  # the outbox holds it until the broker has it
            await asyncio.wait_for(waiter.wait(), audio_s + self._play_finished_extra_s)
        except TimeoutError:
            log.debug("no playFinished for %s within %.2f s", request.request_id, audio_s)
        finally:
            self._play_finished.forget(request.request_id)
