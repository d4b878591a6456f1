"""``/v1/audio/stream``: speak text while it is still being written, with barge-in.

One :class:`SpeechSession` per connection, with two tasks in one TaskGroup:

- the *receiver* (the connection's own task) reads client messages. Text goes into a
  :class:`SentenceBuffer`; each finished sentence is queued for the speaker. ``cancel``
  is handled here, never queued, so it overtakes everything waiting: the speaker task
  is cancelled (closing its synthesis within one chunk), queued sentences and buffered
  text are dropped, and only then is ``cancelled`` sent, so no audio of the old speech
  follows it.
- the *speaker* (``rtvoice[ws].speaker``) takes sentences in order and streams each as
  binary PCM frames between JSON events.

Protocol (JSON text frames unless said otherwise; README "WebSocket"):

client -> server: ``{"type": "text", "text": "..."}``, ``{"type": "flush"}``,
``{"type": "end"}``, ``{"type": "cancel"}``, ``{"type": "config", "voice": ..., "speed": ...}``.

server -> client: ``ready``, ``config``, ``started``, binary PCM (16-bit little-endian mono
at ``sample_rate``), ``chunk``, ``finished``, ``done``, ``cancelled``, ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import InputError, RtvoiceError, SlowClientError, TextError
from ..inputs import check_text, loads, shown
from ..script import Reading, read
from ..ssml import is_ssml
from .audio_out import silence_pcm
from .config import SPEED_RANGE
from .errors import ApiError
from .incremental import SentenceBuffer
from .speech import SpeechJob, speak
from .state import ServerState, client_id, state_of

log = logging.getLogger("rtvoice.server")
_END: Final = object()
"""Queued by ``end``: the speaker answers ``done`` when it reaches it."""


class _ClientGone(Exception):
    """The client vanished, or took too long to accept a frame; the session ends."""


def _spoken(text: str, reading: Reading | None) -> int:
    """``text``'s characters as read out (as sent if it could not be read), counted against ``max_spoken_chars``."""
    return len(text) if reading is None else reading.length


@dataclass(frozen=True)
class _Sentence:
    id: int
    text: str
    voice: str
    speed: float | None
    reading: Reading | None
    """The text read out by ``voice`` when it was queued, and spoken as such (``None``: it cannot
    be read, and says why when its turn comes)."""

    @property
    def spoken(self) -> int:
        """Its characters as read out, counted against ``max_spoken_chars`` while it waits."""
        return _spoken(self.text, self.reading)


def _number(value: float) -> float | None:
    """JSON has no infinity; report one as null."""
    return round(value, 4) if math.isfinite(value) else None


class SpeechSession:
    """One WebSocket client: its settings, text buffer, sentence queue and two tasks."""

    def __init__(self, websocket: WebSocket, state: ServerState) -> None:
        self._ws = websocket
        self._state = state
        self._voice = state.voices.default_name
        self._speed: float | None = None  # None: serve --rate, else the voice's own rate
        self._buffer = SentenceBuffer(self._max_sentence_chars())
        self._queue: asyncio.Queue[_Sentence | object] = asyncio.Queue()
        self._queued_chars = 0
        self._queued_spoken = 0  # read out, of the queued sentences
        self._next_id = 0
        self._spoken_in_turn = False
        self._send_lock = asyncio.Lock()
        self._group: asyncio.TaskGroup | None = None
        self._speaker: asyncio.Task[None] | None = None
        self._client = client_id(websocket)
        self._speaking = False
        self._last_activity = asyncio.get_running_loop().time()

    def _max_sentence_chars(self) -> int:
        voice = self._state.voices.get(self._voice)
        assert voice is not None
        return voice.config.text.sentence_max_chars

    def _sample_rate(self) -> int:
        voice = self._state.voices.get(self._voice)
        assert voice is not None
        return voice.sample_rate

    async def run(self) -> None:
        """Serve the (accepted) connection until the client leaves."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._start_speaker()
                await self._send_json({"type": "ready", "voice": self._voice, "voices": self._state.voices.names,
                                       "sample_rate": self._sample_rate(), "encoding": "pcm_s16le", "channels": 1})
                try:
                    await self._receive_loop()
                finally:
                    if self._speaker is not None:
                        self._speaker.cancel()
        except* _ClientGone:
            log.info("WebSocket client gone; its speech was stopped")

    def _start_speaker(self) -> None:
        assert self._group is not None
        self._speaker = self._group.create_task(self._speak_loop(), name="rtvoice[ws].speaker")

    # -- receiver -------------------------------------------------------------------------

    async def _receive(self) -> Mapping[str, Any] | None:
        """The next client message; ``None`` when the client left or stayed idle too long.

        Idle means: no message for ``idle_timeout_s`` while nothing is being spoken or
        waits to be (a client may say nothing while it listens to its speech).
        """
        idle_s = self._state.config.limits.idle_timeout_s
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout_at(self._last_activity + idle_s):
                    message = await self._ws.receive()
            except TimeoutError:
                if self._busy():
                    self._last_activity = loop.time()
                    continue
                if self._last_activity + idle_s > loop.time():  # speech ended meanwhile
                    continue
                waiting = len(self._buffer)
                unspoken = f"{waiting} characters waiting for a sentence end were not spoken. " if waiting else ""
                await self._error("idle_timeout", f"No message for {idle_s:g} s; closing. {unspoken}"
                                  "Hint: send flush or end after the last text; connect again when there is more.")
                with contextlib.suppress(Exception):
                    await self._ws.close(code=1000, reason="idle timeout")
                return None
            except (WebSocketDisconnect, RuntimeError):
                return None
            self._last_activity = loop.time()
            return message

    def _busy(self) -> bool:
        return self._speaking or not self._queue.empty()

    async def _receive_loop(self) -> None:
        while True:
            message = await self._receive()
            if message is None or message["type"] == "websocket.disconnect":
                return
            if message.get("text") is None:
                await self._error("invalid_message", "Binary frames are not accepted; send JSON text frames.")
                continue
            try:
                data = loads(message["text"], what="A message")
            except InputError as exc:
                await self._error("invalid_json", str(exc))
                continue
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                await self._error("invalid_message", 'A message must be a JSON object with a string "type".')
                continue
            try:
                await self._dispatch(data)
            except ApiError as exc:
                await self._error(exc.code, exc.message)

    async def _dispatch(self, data: dict[str, Any]) -> None:
        kind = data["type"]
        if kind == "text":
            self._add_text(data.get("text"))
        elif kind == "flush":
            self._enqueue(self._buffer.flush())
        elif kind == "end":
            if self._queue.qsize() >= self._state.config.limits.max_queued_turns:
                raise ApiError(429, "Too many turns waiting to be spoken.", code="backlog_full")
            self._enqueue(self._buffer.flush())
            self._queue.put_nowait(_END)
        elif kind == "cancel":
            await self._cancel()
        elif kind == "config":
            self._configure(data)
            await self._send_json({"type": "config", "voice": self._voice, "speed": self._speed,
                                   "sample_rate": self._sample_rate()})
        else:
            raise ApiError(400, f"Unknown message type {shown(kind)}. Hint: text, flush, end, cancel or config.",
                           code="invalid_message")

    def _add_text(self, text: Any) -> None:
        if not isinstance(text, str):
            raise ApiError(400, 'A "text" message needs a string "text".', code="invalid_message")
        try:
            text = check_text(text)
        except TextError as exc:
            raise ApiError(400, str(exc), code="invalid_text") from exc
        limit = self._state.config.limits.max_pending_chars
        pending = self._queued_chars + len(self._buffer)
        if pending + len(text) > limit:
            raise ApiError(429, f"Too much text waiting to be spoken. Note: {pending} characters wait; the limit is "
                           f"{limit}. Hint: send less ahead of the speech, or cancel.", code="backlog_full")
        buffer = copy.copy(self._buffer)  # taken only if the text is within max_spoken_chars too
        if not len(buffer) and is_ssml(text):  # an SSML document comes whole, in one message
            sentences = [text]
        else:
            sentences = buffer.add(text)
        readings = [self._read(sentence) for sentence in sentences]  # each sentence read out once, here
        self._check_spoken(len(text), sum(_spoken(sentence, reading)
                                          for sentence, reading in zip(sentences, readings, strict=True)))
        self._buffer = buffer
        self._enqueue(sentences, readings)

    def _read(self, text: str) -> Reading | None:
        """``text`` read out by the session's voice, the one time it is: counted now, spoken from later."""
        voice = self._state.voices.get(self._voice)
        assert voice is not None
        try:
            return read(text, voice.config, self._state.config.synthesis.ssml)
        except TextError:  # e.g. bad SSML: refused with its own error when its turn comes
            return None

    def _check_spoken(self, sent: int, added: int) -> None:
        """Refuse text whose sentences (``added`` read out) would make more than ``max_spoken_chars`` wait.

        Reading expands text (digits about 5 times, some symbols 28), so the limit on
        characters sent alone would let one client queue hours of speech. The unfinished
        sentence in the buffer counts once it ends (or is flushed, which is never refused):
        it is at most ``text.sentence_max_chars`` long, and reading it again with every
        token would cost the event loop up to a millisecond a message.
        """
        limit = self._state.config.synthesis.max_spoken_chars
        if self._queued_spoken + added > limit:
            raise ApiError(429, f"Too much text waiting to be spoken, as read out. Note: this text has {sent} "
                           f"characters, {added} read out, and {self._queued_spoken} wait read out; the limit is "
                           f"{limit} read out. Hint: send less ahead of the speech, or cancel.", code="backlog_full")

    def _enqueue(self, sentences: list[str], readings: list[Reading | None] | None = None) -> None:
        if readings is None:  # flushed: accepted already
            readings = [self._read(text) for text in sentences]
        for text, reading in zip(sentences, readings, strict=True):
            sentence = _Sentence(self._next_id, text, self._voice, self._speed, reading)
            self._queue.put_nowait(sentence)
            self._next_id += 1
            self._queued_chars += len(text)
            self._queued_spoken += sentence.spoken

    def _configure(self, data: dict[str, Any]) -> None:
        voice, speed = data.get("voice", self._voice), data.get("speed", self._speed)
        if not isinstance(voice, str) or self._state.voices.get(voice) is None:
            raise ApiError(400, f"Voice {shown(voice)} is not served here. Note: the voices are "
                           f"{', '.join(self._state.voices.names)}.", code="voice_not_found", param="voice")
        low, high = SPEED_RANGE
        if speed is not None and (isinstance(speed, bool) or not isinstance(speed, int | float) or not (
                math.isfinite(speed) and low <= speed <= high)):
            raise ApiError(400, f"'speed' must be a number from {low} to {high}.", code="invalid_value", param="speed")
        self._voice, self._speed = voice, None if speed is None else float(speed)

    async def _cancel(self) -> None:
        """Barge-in: stop the speech now, drop what waits, then say ``cancelled``."""
        if self._speaker is not None:
            self._speaker.cancel()
            await asyncio.wait([self._speaker])
        dropped = 0
        while not self._queue.empty():
            dropped += isinstance(self._queue.get_nowait(), _Sentence)
        self._buffer.clear()
        self._queued_chars = self._queued_spoken = 0
        self._spoken_in_turn = False
        self._start_speaker()
        await self._send_json({"type": "cancelled", "dropped": dropped})

    # -- speaker --------------------------------------------------------------------------

    async def _speak_loop(self) -> None:
        while True:
            item = await self._queue.get()
            if not isinstance(item, _Sentence):
                self._spoken_in_turn = False
                await self._send_json({"type": "done"})
                continue
            self._queued_chars -= len(item.text)
            self._queued_spoken -= item.spoken
            self._speaking = True
            try:
                await self._speak(item)
            finally:
                self._speaking = False
                self._last_activity = asyncio.get_running_loop().time()

    async def _speak(self, sentence: _Sentence) -> None:
        voice = self._state.voices.get(sentence.voice)
        assert voice is not None
        state = self._state
        said = sentence.text if sentence.reading is None else sentence.reading  # not read out a second time
        job = SpeechJob(said, voice, state.config.synthesis, voice.sample_rate, sentence.speed, "websocket",
                        self._client)
        last = None
        truncated = False
        try:
            async with contextlib.aclosing(speak(state, job)) as pieces:
                async for piece in pieces:
                    if last is None:
                        await self._send_json({"type": "started", "id": sentence.id, "text": sentence.text})
                        if self._spoken_in_turn:  # the pause a whole-text synthesis puts between sentences
                            settings = state.config.synthesis.resolve(voice.config)
                            pause = settings.sentence_pause_s / (sentence.speed or settings.rate)
                            await self._send_bytes(silence_pcm(pause, voice.sample_rate))
                    last = piece
                    truncated = truncated or piece.chunk.truncated
                    await self._send_bytes(piece.pcm)
                    t = piece.chunk.timing
                    await self._send_json({
                        "type": "chunk", "id": sentence.id, "samples": len(piece.pcm) // 2,
                        "time_to_first_audio_s": _number(t.time_to_first_audio_s), "elapsed_s": _number(t.elapsed_s),
                        "audio_s": _number(t.audio_s), "rtf": _number(t.rtf)})
        except TextError as exc:
            await self._error("invalid_text", str(exc), id=sentence.id)
            return
        except ApiError as exc:
            await self._error(exc.code, exc.message, id=sentence.id)
            return
        except SlowClientError as exc:  # not a synthesis failure: the client is too slow to go on with
            log.warning("%s", exc)
            raise _ClientGone(str(exc)) from exc
        except RtvoiceError as exc:  # the backend failed: say so, and go on with the next sentence
            log.exception("synthesis of sentence %d failed", sentence.id)
            await self._error("synthesis_failed", str(exc), id=sentence.id)
            return
        self._spoken_in_turn = True
        if last is not None:
            t = last.chunk.timing
            await self._send_json({"type": "finished", "id": sentence.id, "audio_s": _number(t.audio_s),
                                   "elapsed_s": _number(t.elapsed_s), "rtf": _number(t.rtf),
                                   "truncated": truncated})  # the step limit cut it short: its end may be unspoken

    # -- sending (both tasks) -------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            async with self._send_lock, asyncio.timeout(self._state.config.limits.send_timeout_s):
                await self._ws.send(message)
        except (WebSocketDisconnect, OSError, TimeoutError, RuntimeError) as exc:
            raise _ClientGone(str(exc)) from exc

    async def _send_json(self, event: dict[str, Any]) -> None:
        await self._send({"type": "websocket.send", "text": json.dumps(event)})

    async def _send_bytes(self, data: bytes) -> None:
        await self._send({"type": "websocket.send", "bytes": data})

    async def _error(self, code: str, message: str, **extra: Any) -> None:
        await self._send_json({"type": "error", "code": code, "message": message, **extra})


async def stream_endpoint(websocket: WebSocket) -> None:
    """``/v1/audio/stream``: one :class:`SpeechSession`.

    The connection itself is not counted against the client's streams, only each sentence
    while it is synthesized: an idle WebSocket holds nothing others need, and it is
    closed after ``idle_timeout_s``.
    """
    state = state_of(websocket)
    await websocket.accept()
    await SpeechSession(websocket, state).run()


ROUTES = [WebSocketRoute("/v1/audio/stream", stream_endpoint)]
