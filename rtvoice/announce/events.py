"""Status events and Hermes answers, published in order through the outbox.

Native events go to ``<prefix>started``, ``<prefix>finished``, ``<prefix>failed`` and
``<prefix>interrupted`` as JSON (see :func:`rtvoice.announce.messages.event_payload`).
An announcement that came in over Hermes is also answered the Hermes way:
``hermes/tts/sayFinished`` always (after ``hermes/error/tts`` when it failed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from . import hermes
from .config import Topics
from .errors import Reason
from .messages import Announcement, HermesRequest, event_payload


class Outbox(Protocol):
    """Where messages are queued for the broker (a :class:`~rtvoice.announce.link.BrokerLink`)."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, droppable: bool = False) -> None:
        """Queue one QoS 1 message."""
        ...


@dataclass(frozen=True)
class Timings:
    """How one announcement went, in seconds."""

    queued_s: float
    """From arrival to the start of speaking."""
    time_to_first_audio_s: float | None = None
    """From the start of speaking to the first synthesized audio."""
    synthesis_s: float | None = None
    """From the start of speaking to the last synthesized audio."""
    audio_s: float = 0.0
    """Seconds of audio (chime included)."""
    total_s: float | None = None
    """From the start of speaking to the end (playback drained, audio published)."""

    def as_dict(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {
            "queued_s": self.queued_s, "time_to_first_audio_s": self.time_to_first_audio_s,
            "synthesis_s": self.synthesis_s, "audio_s": self.audio_s, "total_s": self.total_s,
            "rtf": self.audio_s / self.synthesis_s if self.synthesis_s else None,
        }
        return {k: None if v is None else round(v, 4) for k, v in values.items()}


class Events:
    """Publishes what happens to announcements (one per announcer)."""

    def __init__(self, outbox: Outbox, topics: Topics, *, site_id: str) -> None:
        self._outbox = outbox
        self._topics = topics
        self._site_id = site_id

    def _event(self, kind: str, announcement: Announcement | None, **fields: Any) -> None:
        self._outbox.publish(self._topics.event(kind),
                             event_payload(kind, self._topics.worker, announcement, **fields))

    def started(self, announcement: Announcement, timings: Timings) -> None:
        self._event("started", announcement, chars=len(announcement.text), timings=timings.as_dict())

    def finished(self, announcement: Announcement, timings: Timings, **fields: Any) -> None:
        """``finished``, with ``fields`` (such as ``audio``: where its audio was published)."""
        self._event("finished", announcement, timings=timings.as_dict(), **fields)
        if announcement.hermes is not None:
            self._outbox.publish(hermes.SAY_FINISHED, hermes.say_finished(announcement.hermes))

    def interrupted(self, announcement: Announcement, *, by: str, requeued: bool) -> None:
        self._event("interrupted", announcement, by=by, requeued=requeued)

    def failed(self, announcement: Announcement | None, reason: Reason, error: str, *,
               id: str | None = None, request: HermesRequest | None = None,
               timings: Timings | None = None, hermes_topic: bool = False, cancel: bool = False) -> None:
        """Report a failure natively and, for Hermes requests, as Rhasspy's TTS services do.

        Args:
            announcement: The announcement, when it got that far.
            reason: The stable reason code.
            error: A human-readable explanation.
            id: The id to report when there is no announcement.
            request: The Hermes request when there is no announcement (a bad ``say``).
            timings: When it failed while being spoken.
            hermes_topic: The message came in on a Hermes topic: it is answered with
                ``hermes/error/tts`` and ``sayFinished`` even when its ids could not be read.
            cancel: The refused message was a ``cancel`` (the event says ``"request": "cancel"``).
        """
        request = announcement.hermes if announcement is not None else request
        if request is None and hermes_topic:
            request = hermes.fallback_request(self._site_id)
        fields: dict[str, Any] = {"reason": str(reason), "error": error}
        if announcement is None:
            fields["id"] = id
            fields["source"] = "hermes" if request else "native"
        if cancel:
            fields["request"] = "cancel"
        if timings is not None:
            fields["timings"] = timings.as_dict()
        self._event("failed", announcement, **fields)
        if request is not None:
            self._outbox.publish(hermes.TTS_ERROR, hermes.tts_error(error, site_id=self._site_id, request=request))
            self._outbox.publish(hermes.SAY_FINISHED, hermes.say_finished(request))

    def audio(self, announcement: Announcement, wav: bytes) -> None:
        """The native announcement's WAV on ``<prefix>audio/<id>``."""
        self._outbox.publish(self._topics.audio(announcement.id), wav, droppable=True)

    def audio_part(self, announcement: Announcement, part: int, wav: bytes) -> None:
        """Part ``part`` (0, 1, ...) of the native announcement's audio, a WAV of its own."""
        self._outbox.publish(self._topics.audio_part(announcement.id, part), wav, droppable=True)

    def audio_end(self, announcement: Announcement, summary: dict[str, Any]) -> None:
        """After the last part: how many parts and samples there were (JSON; never dropped)."""
        self._outbox.publish(self._topics.audio_part(announcement.id, "end"),
                             json.dumps({"id": announcement.id, **summary}, separators=(",", ":")).encode())

    def play_bytes(self, request: HermesRequest, wav: bytes) -> None:
        """A Hermes announcement's WAV for the site's audio server."""
        self._outbox.publish(hermes.play_bytes_topic(request.site_id, request.request_id), wav, droppable=True)
