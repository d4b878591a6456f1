"""The announcement daemon as a library object: ``async with Announcer(...) as announcer``.

Tasks (one :class:`asyncio.TaskGroup`, all named ``rtvoice[announce].*``):

- ``mqtt``: the :class:`~rtvoice.announce.link.BrokerLink` (connect, receive into the
  inbox, publish the outbox, reconnect with backoff).
- ``dispatch``: reads the inbox and acts at once: parses ``say`` messages into the
  priority queue, and handles ``cancel`` and Hermes ``playFinished`` immediately, so
  control never waits behind queued audio. An urgent announcement interrupts a lower
  one being spoken.
- ``speaker``: takes the queue's first announcement and speaks it in a child task
  (``rtvoice[announce].speak``) that cancel, interruption and shutdown can stop.

Everything here runs on the event loop thread; synthesis runs on the voice's decoder and
vocoder threads, and local playback is read by PortAudio's thread from the player's ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from ..voice import Voice
from . import hermes
from .audio_out import AudioPublishing
from .config import AnnouncerConfig, Topics
from .errors import MessageError, Reason
from .events import Events
from .link import OFFLINE, BrokerLink, Incoming
from .messages import Announcement, Priority, parse_cancel, parse_say
from .queue import AnnouncementQueue
from .refusals import RefusalLog
from .sinks import NullSink, Sink
from .speaker import Speaker, check_text

log = logging.getLogger("rtvoice.announce")


@dataclass
class _Current:
    """The announcement being spoken, and why it is being stopped (if it is)."""

    order: int
    announcement: Announcement
    task: asyncio.Task[None]
    stop: Reason | None = None
    by: str | None = None


class Announcer:
    """Speaks announcements received over MQTT (native topics and, optionally, Hermes).

    Example::

        broker = BrokerSettings.from_url("mqtt://localhost:1883")
        with Voice.load("engines/tiny") as voice:
            async with Announcer(voice, AnnouncerConfig(broker)) as announcer:
                await stop_requested.wait()
        # leaving the block shuts down gracefully: see shutdown()

    Args:
        voices: One voice, or voices by name (the first is the default). The caller owns
            and closes them.
        config: Broker, topics and behaviour.
        sink: Local output; ``None`` plays nothing and publishes the audio. The caller
            owns it.

    Raises:
        ValueError: ``config.synthesis`` is invalid for one of the voices.
    """

    def __init__(self, voices: Voice | Mapping[str, Voice], config: AnnouncerConfig, *,
                 sink: Sink | None = None) -> None:
        self._voices: dict[str, Voice] = {voices.config.name: voices} if isinstance(voices, Voice) else dict(voices)
        if not self._voices:
            raise ValueError("Announcer needs at least one voice.")
        for voice in self._voices.values():
            config.synthesis.resolve(voice.config)  # fail now, not per announcement
        self._default_voice = next(iter(self._voices))
        self.config = config
        self.topics = Topics.of(config)
        self._sink: Sink = sink if sink is not None else NullSink()
        self._inbox: asyncio.Queue[Incoming] = asyncio.Queue()
        self._queue = AnnouncementQueue()
        self._play_finished = hermes.PlayFinished()
        self._link = BrokerLink(config.broker, subscriptions=self._subscriptions(), status_topic=self.topics.status,
                                inbox=self._inbox, max_outbox_bytes=config.max_outbox_bytes)
        self._events = Events(self._link, self.topics, site_id=config.default_site)
        self._refusals = RefusalLog(log, burst=config.refusal_log_burst, window_s=config.refusal_log_window_s)
        self._speaker = Speaker(self._voices, self._sink, self._events, synthesis=config.synthesis,
                                publish_audio=config.publish_audio, play_finished=self._play_finished,
                                play_finished_extra_s=config.hermes_play_finished_extra_s,
                                audio=AudioPublishing.of(config))
        self._current: _Current | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._state: Literal["new", "running", "closing", "closed"] = "new"
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []

    def _say_topics(self) -> list[str]:
        topics = [self.topics.shared(self.topics.say)]
        if self.config.hermes:
            topics.append(self.topics.shared(hermes.SAY))
        return topics

    def _subscriptions(self) -> list[str]:
        topics = [*self._say_topics(), self.topics.cancel]
        if self.config.hermes and not self._sink.audible:
            topics += [hermes.play_finished_topic(site) for site in self.config.site_ids or ("+",)]
        return topics

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up right now."""
        return self._link.connected

    async def wait_connected(self) -> None:
        """Wait until connected and subscribed (immediately if already)."""
        await self._link.wait_connected()

    async def __aenter__(self) -> Announcer:
        if self._state != "new":
            raise RuntimeError(f"Announcer is {self._state}; use a new one for each `async with`.")
        self._state = "running"
        tasks = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._tasks = [
            tasks.create_task(self._link.run(), name="rtvoice[announce].mqtt"),
            tasks.create_task(self._dispatch(), name="rtvoice[announce].dispatch"),
            tasks.create_task(self._speak_loop(), name="rtvoice[announce].speaker"),
        ]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.shutdown(grace_s=self.config.shutdown_grace_s if exc is None else 0.0,
                                flush_s=self.config.flush_timeout_s if exc is None else 1.0)
        finally:
            for task in self._tasks:
                task.cancel()
            # The body's own exception is not the task group's: it propagates unwrapped, and
            # only a failed background task comes out of the group (as an ExceptionGroup).
            await self._stack.aclose()
            self._state = "closed"

    def submit(self, announcement: Announcement) -> None:
        """Queue an announcement from this process (the HTTP server, tests), as if received.

        Raises:
            MessageError: Unknown voice, or text that cannot be spoken; nothing is queued.
        """
        self._accept(announcement)

    def cancel(self, announcement_id: str | None) -> bool:
        """Drop a queued announcement or stop the one being spoken; ``None`` means all.

        Each one stopped is reported ``failed`` with reason ``cancelled``. Returns whether
        anything was.
        """
        removed = self._queue.remove(announcement_id) if announcement_id is not None else self._queue.drain()
        for item in removed:
            self._events.failed(item, Reason.CANCELLED, "Cancelled before it was spoken.")
        current = self._current
        if current is not None and announcement_id in (None, current.announcement.id):
            return self._stop_current(Reason.CANCELLED) or bool(removed)
        return bool(removed)

    def _stop_current(self, reason: Reason, by: str | None = None) -> bool:
        current = self._current
        if current is None or current.stop is not None or current.task.done():
            return False
        current.stop, current.by = reason, by
        current.task.cancel()
        return True

    async def shutdown(self, *, grace_s: float, flush_s: float) -> None:
        """Stop taking announcements, settle the current one and tell the broker.

        Unsubscribes the ``say`` topics (a group's other workers take over; kept when
        ``config.keep_session`` outside a group), fails every queued announcement with reason
        ``shutdown``, gives the one being spoken ``grace_s`` to finish before stopping it
        (``failed``, ``shutdown``), publishes ``offline`` and waits up to ``flush_s`` for the
        outbox to reach the broker. Called by ``__aexit__``; idempotent.
        """
        if self._state != "running":
            return
        self._state = "closing"
        # Unless the session is to be resumed, leave nothing in it that would queue (or, in a
        # group, strand) announcements for a daemon that is gone. Say topics go first, so that
        # a group's other workers take over; cancel still works until the end.
        keep = self.config.keep_session and self.config.group is None
        if not keep:
            await self._link.unsubscribe(self._say_topics(), timeout=min(2.0, flush_s + 1.0))
        while not self._inbox.empty():
            self._handle(self._inbox.get_nowait())
        for item in self._queue.drain():
            self._events.failed(item, Reason.SHUTDOWN, "The announcer shut down before it was spoken.")
        self._refusals.flush()
        current = self._current
        if current is not None:
            await asyncio.wait({current.task}, timeout=grace_s)
            self._stop_current(Reason.SHUTDOWN)
            await self._idle.wait()
        if not keep:
            rest = [t for t in self._subscriptions() if t not in self._say_topics()]
            await self._link.unsubscribe(rest, timeout=min(2.0, flush_s + 1.0))
        self._link.publish(self.topics.status, OFFLINE, retain=True)
        if self._link.connected:
            await self._link.flush(flush_s)

    async def _dispatch(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                self._handle(message)
            except Exception:  # only a failure to answer lands here (a bug): the daemon goes on
                log.exception("could not answer a message on %s", message.topic)

    def _handle(self, message: Incoming) -> None:
        """Act on one message; whatever happens, a ``say`` or ``cancel`` gets its one answer."""
        topic, cfg = message.topic, self.config
        is_hermes_say = cfg.hermes and topic == hermes.SAY
        is_say, is_cancel = topic == self.topics.say or is_hermes_say, topic == self.topics.cancel
        if (is_say or is_cancel) and message.retain:
            log.warning("ignored a retained message on %s: announcements must not be retained", topic)
            return
        parsed: Announcement | None = None  # once known, an unexpected error is answered with its ids
        try:
            if topic == self.topics.say:
                parsed = parse_say(message.payload, max_bytes=cfg.max_payload_bytes)
                self._accept(parsed)
            elif is_hermes_say:
                parsed = hermes.parse_say(message.payload, site_ids=cfg.site_ids, max_bytes=cfg.max_payload_bytes)
                if parsed is not None:  # None: a request for a site served by another service
                    self._accept(parsed)
            elif is_cancel:
                self.cancel(parse_cancel(message.payload, max_bytes=cfg.max_payload_bytes))
            elif cfg.hermes and hermes.is_play_finished(topic):
                request_id = hermes.parse_play_finished(message.payload, max_bytes=cfg.max_payload_bytes)
                if request_id is not None:
                    self._play_finished.finished(request_id)
            else:
                log.debug("ignored a message on %s", topic)
        except MessageError as exc:  # bad input: one line, one answer
            what = "cancel" if is_cancel else "announcement"
            self._refusals(logging.WARNING, "refused a%s %s on %s (%s): %s", "" if is_cancel else "n", what,
                           topic, exc.reason, exc)
            if is_say or is_cancel:
                self._events.failed(None, exc.reason, str(exc), id=exc.id, request=exc.hermes,
                                    hermes_topic=is_hermes_say, cancel=is_cancel)
        except Exception as exc:  # a bug in rtvoice: the message is still answered, the daemon goes on
            self._refusals(logging.ERROR, "internal error on a message on %s: %s: %s", topic,
                           type(exc).__name__, exc)
            log.debug("internal error on a message on %s", topic, exc_info=True)
            if is_say or is_cancel:
                self._events.failed(None, Reason.INTERNAL_ERROR, "Internal error while reading the message; "
                                    "it was not accepted.", id=parsed.id if parsed else None,
                                    request=parsed.hermes if parsed else None, hermes_topic=is_hermes_say,
                                    cancel=is_cancel)

    def _accept(self, announcement: Announcement) -> None:
        name = announcement.voice or self._default_voice
        voice = self._voices.get(name)
        if voice is None:
            raise MessageError(Reason.UNKNOWN_VOICE, f"Unknown voice {name!r}; this announcer has "
                               f"{sorted(self._voices)}.", id=announcement.id, hermes=announcement.hermes)
        announcement = dataclasses.replace(announcement, voice=name)
        check_text(voice, announcement, self.config.synthesis)
        if self._state in ("closing", "closed"):
            self._events.failed(announcement, Reason.SHUTDOWN, "The announcer is shutting down.")
            return
        if len(self._queue) >= self.config.max_queued:
            raise MessageError(Reason.QUEUE_FULL, f"{len(self._queue)} announcements wait to be spoken; the limit "
                               f"is {self.config.max_queued} (max_queued). Hint: publish again later, or cancel.",
                               id=announcement.id, hermes=announcement.hermes)
        self._queue.put(announcement)
        current = self._current
        if current is not None and announcement.priority >= Priority.URGENT \
                and announcement.priority > current.announcement.priority:
            self._stop_current(Reason.INTERRUPTED, by=announcement.id)

    async def _speak_loop(self) -> None:
        while True:
            queued = await self._queue.get()
            item = queued.announcement
            self._idle.clear()
            current = _Current(queued.order, item, asyncio.create_task(
                self._speaker.speak(item), name=f"rtvoice[announce].speak:{item.id}"))
            self._current = current
            try:
                await current.task
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the announcer itself is stopping; the speak task was cancelled with us
                self._stopped(current)
            finally:
                self._current = None
                self._idle.set()

    def _stopped(self, current: _Current) -> None:
        """Report an announcement stopped by cancel, interruption or shutdown."""
        item, reason = current.announcement, current.stop or Reason.CANCELLED
        if reason is Reason.INTERRUPTED:
            requeue = self.config.requeue_interrupted and self._state == "running"
            self._events.interrupted(item, by=current.by or "", requeued=requeue)
            if requeue:
                self._queue.put(item, order=current.order)
                return
            self._events.failed(item, reason, f"Interrupted by urgent announcement {current.by}.")
        elif reason is Reason.SHUTDOWN:
            self._events.failed(item, reason, "The announcer shut down while speaking it.")
        else:
            self._events.failed(item, reason, "Cancelled while being spoken.")
