"""Wyoming protocol (Home Assistant's local TTS) on ``--wyoming-port``, in the server's loop.

Built on the ``wyoming`` package's :class:`~wyoming.server.AsyncTcpServer` and
:class:`~wyoming.server.AsyncEventHandler`, with its event classes and its writer:

- ``describe`` -> ``info`` (one TTS program, one voice per served voice).
- ``synthesize`` -> ``audio-start``, ``audio-chunk``... as they are made, ``audio-stop``.
- Streaming text (``supports_synthesize_streaming``): ``synthesize-start``, then
  ``synthesize-chunk``... (each finished sentence is spoken at once as its own
  ``audio-start`` ... ``audio-stop``), then ``synthesize-stop`` -> ``synthesize-stopped``.
  A ``synthesize`` inside such a stream is the compatibility copy and is ignored.

Refusals (unknown voice, text too long, too many streams) are ``error`` events with a
``code``; the connection stays open. The handler reads events with bounds of its own
(:func:`read_event`): the package's reader trusts ``data_length`` and ``payload_length``,
so a client could make it buffer any amount.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler, AsyncTcpServer
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from .. import __version__
from ..errors import RtvoiceError, SlowClientError, TextError
from ..inputs import check_text, shown
from .errors import ApiError
from .incremental import SentenceBuffer
from .speech import SpeechJob, speak
from .state import ServerState

log = logging.getLogger("rtvoice.server")
LANGUAGES = ["en_US"]
"""NVIDIA's Tacotron 2 voices speak (American) English."""


class MalformedEvent(Exception):
    """A Wyoming event that breaks the framing or the limits; the connection is closed."""


class _ClientGone(Exception):
    """The client vanished, or took too long to accept an event."""


async def read_event(reader: asyncio.StreamReader, max_bytes: int) -> Event | None:
    """Read one Wyoming event, within bounds.

    The framing is the package's: a JSON header line, then ``data_length`` bytes of JSON
    data merged into ``data``, then ``payload_length`` bytes of payload.

    Args:
        reader: The connection.
        max_bytes: Most bytes of data plus payload; the header line is bounded by the
            reader's own limit.

    Returns:
        The event, or ``None`` at the end of the stream (also mid-event: a half-closed socket).

    Raises:
        MalformedEvent: Not JSON, not an object, no string ``type``, bad lengths or too large.
    """
    try:
        line = await reader.readline()
    except ValueError as exc:  # over the reader's limit
        raise MalformedEvent("event header line too long") from exc
    if not line or not line.endswith(b"\n"):
        return None
    try:
        header = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent("event header is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise MalformedEvent('event header must be a JSON object with a string "type"')
    data = header.get("data") or {}
    data_length = _length(header, "data_length", max_bytes)
    payload_length = _length(header, "payload_length", max_bytes)
    if not isinstance(data, dict) or data_length + payload_length > max_bytes:
        raise MalformedEvent(f"event data must be an object and at most {max_bytes} bytes with its payload")
    try:
        if data_length:
            extra = json.loads(await reader.readexactly(data_length))
            if not isinstance(extra, dict):
                raise MalformedEvent("event data is not a JSON object")
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent("event data is not JSON") from exc
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict[str, Any], key: str, max_bytes: int) -> int:
    value = header.get(key) or 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= max_bytes:
        raise MalformedEvent(f"{key} must be an integer from 0 to {max_bytes}")
    return value


_REFUSED: set[str] = set()
MAX_REFUSED_LOGGED: Final = 256
"""Addresses whose first refusal is logged as a warning; later ones (and beyond this many) at INFO."""


def _log_refusal(client: str) -> None:
    """Warn once per address (a scanner must not flood the log), then log at INFO."""
    if client in _REFUSED or len(_REFUSED) >= MAX_REFUSED_LOGGED:
        log.info("refused a Wyoming client from %s (not in --wyoming-allow)", client)
        return
    _REFUSED.add(client)
    log.warning("refused a Wyoming client from %s: not in --wyoming-allow (further refusals of it are logged "
                "at INFO)", client)


def _checked(text: Any, event: str) -> str:
    """The ``text`` of an event, refused unless a string of Unicode, without control characters."""
    if not isinstance(text, str):
        raise ApiError(400, f'{event} needs a string "text".', code="invalid_event")
    try:
        return check_text(text)
    except TextError as exc:
        raise ApiError(400, str(exc), code="invalid_text") from exc


def wyoming_info(state: ServerState) -> Info:
    """The ``info`` answer: one TTS program whose voices are the served voices."""
    attribution = Attribution(name="rtvoice", url="")
    voices = [
        TtsVoice(name=name, attribution=attribution, installed=True, version=None, languages=list(LANGUAGES),
                 description=f"{voice.config.name} ({voice.choice.backend} on {voice.choice.device})")
        for name, voice in state.voices.items()
    ]
    program = TtsProgram(name="rtvoice", attribution=attribution, installed=True, version=__version__,
                         description="Streaming Tacotron 2 + WaveGlow text to speech", voices=voices,
                         supports_synthesize_streaming=True)
    return Info(tts=[program])


@dataclass
class _TextStream:
    """The state between ``synthesize-start`` and ``synthesize-stop``."""

    voice: str | None
    buffer: SentenceBuffer
    ok: bool = True
    """False once the stream was refused: its chunks are ignored."""


class WyomingHandler(AsyncEventHandler):
    """One Wyoming connection. Events are handled in order; speech is streamed as made."""

    def __init__(self, state: ServerState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self._state = state
        self._limits = state.config.limits
        self._stream: _TextStream | None = None
        peer = writer.get_extra_info("peername")
        self._client = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    def _unspoken(self) -> str:
        """What a closing connection leaves unspoken, for its last error event."""
        waiting = len(self._stream.buffer) if self._stream is not None and self._stream.ok else 0
        return f" {waiting} characters waiting for a sentence end were not spoken." if waiting else ""

    def _allowed(self) -> bool:
        """Whether the peer's address is in the allowed networks (Wyoming has no authentication)."""
        try:
            address = ipaddress.ip_address(self._client)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._state.config.wyoming_networks())

    async def run(self) -> None:
        """Handle events until the client leaves or idles (the package's loop, with a bounded reader).

        The connection is not counted against the client's streams, only each synthesis:
        an idle connection holds nothing others need, and it is closed after ``idle_timeout_s``.
        """
        idle_s = self._limits.idle_timeout_s
        try:
            if not self._allowed():
                raise ApiError(403, f"Wyoming clients from {self._client} are not allowed. Hint: start the server "
                               "with --wyoming-allow naming this client's network.", code="forbidden")
            with self._state.admission.connection(self._client):
                while True:
                    try:
                        async with asyncio.timeout(idle_s):
                            event = await read_event(self.reader, self._limits.max_message_bytes)
                    except TimeoutError:
                        raise ApiError(408, f"No whole event for {idle_s:g} s; closing.{self._unspoken()}",
                                       code="idle_timeout") from None
                    if event is None or not await self.handle_event(event):
                        break
        except ApiError as exc:
            if exc.code == "forbidden":
                _log_refusal(self._client)
            await self._try_error(exc.code, exc.message)
        except MalformedEvent as exc:
            await self._try_error("invalid_event", str(exc))
        except (_ClientGone, OSError):
            log.info("Wyoming client gone; its speech was stopped")
        finally:
            await self.disconnect()
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        """Answer one event; ``False`` ends the connection."""
        try:
            if Describe.is_type(event.type):
                await self._write(wyoming_info(self._state).event())
            elif Synthesize.is_type(event.type):
                if self._stream is None:  # inside a stream it is the compatibility copy: ignored
                    await self._synthesize(event.data)
            elif SynthesizeStart.is_type(event.type):
                await self._start_stream(event.data)
            elif SynthesizeChunk.is_type(event.type):
                await self._stream_chunk(event.data)
            elif SynthesizeStop.is_type(event.type):
                await self._stop_stream()
        except ApiError as exc:
            await self._write(Error(text=exc.message, code=exc.code).event())
        return True

    # -- requests -------------------------------------------------------------------------

    def _text(self, data: dict[str, Any]) -> str:
        text = _checked(data.get("text"), "synthesize")
        if len(text) > self._limits.max_input_chars:
            raise ApiError(400, f"Text has {len(text)} characters; the limit is {self._limits.max_input_chars}.",
                           code="string_above_max_length")
        return text

    def _voice_name(self, data: dict[str, Any]) -> str | None:
        voice = data.get("voice")
        name = voice.get("name") if isinstance(voice, dict) else None
        if name is None:
            return None  # no name (or only a language): the default voice
        if not isinstance(name, str) or self._state.voices.get(name) is None:
            raise ApiError(400, f"Voice {shown(name)} is not served here. Note: the voices are "
                           f"{', '.join(self._state.voices.names)}.", code="voice_not_found")
        return name

    async def _synthesize(self, data: dict[str, Any]) -> None:
        await self._speak(self._text(data), self._voice_name(data))

    async def _start_stream(self, data: dict[str, Any]) -> None:
        if self._stream is not None:  # a careless client: the old stream ends, and it is told what that leaves unsaid
            await self._write(Error(text=f"synthesize-start inside a stream: the stream before it was ended without "
                                    f"synthesize-stop.{self._unspoken()}", code="invalid_event").event())
        voice = self._state.voices.get(None)
        assert voice is not None
        self._stream = _TextStream(None, SentenceBuffer(voice.config.text.sentence_max_chars))
        try:
            self._stream.voice = self._voice_name(data)
        except ApiError:
            self._stream.ok = False
            raise

    async def _stream_chunk(self, data: dict[str, Any]) -> None:
        stream = self._stream
        if stream is None:  # a careless client: say its text is not spoken rather than drop it unseen
            raise ApiError(400, "synthesize-chunk outside a stream; its text was not spoken. Hint: send "
                           "synthesize-start first.", code="invalid_event")
        if not stream.ok:  # refused at its start or by its backlog: the client was told then
            return
        text = _checked(data.get("text"), "synthesize-chunk")
        # Finished sentences leave the buffer (each is spoken before the next event is
        # read), so only the unfinished tail counts against the limit.
        sentences = stream.buffer.add(text)
        waiting = len(stream.buffer)
        if waiting > self._limits.max_pending_chars:
            stream.ok = False
            stream.buffer.clear()
        await self._speak_each(sentences, stream.voice)  # the finished ones were accepted: spoken either way
        if not stream.ok:
            raise ApiError(429, f"Too much text without a sentence end: {waiting} characters wait for "
                           f"one; the limit is {self._limits.max_pending_chars}. Nothing of this stream was spoken "
                           "from here on.", code="backlog_full")

    async def _stop_stream(self) -> None:
        stream, self._stream = self._stream, None
        try:
            if stream is not None and stream.ok:
                await self._speak_each(stream.buffer.flush(), stream.voice)
        finally:
            await self._write(SynthesizeStopped().event())

    async def _speak_each(self, sentences: list[str], voice_name: str | None) -> None:
        """Speak sentences of a stream in order; a refused one is an error event naming it, and the rest go on.

        (Raising would drop the sentences after it without a word: the text came in one chunk.)
        """
        for sentence in sentences:
            try:
                await self._speak(sentence, voice_name)
            except ApiError as exc:
                await self._write(Error(text=f"{exc.message} Note: not spoken: {shown(sentence)}.",
                                        code=exc.code).event())

    async def _speak(self, text: str, voice_name: str | None) -> None:
        """Stream one text as ``audio-start``, ``audio-chunk``..., ``audio-stop``."""
        voice = self._state.voices.get(voice_name)
        assert voice is not None
        rate = voice.sample_rate
        job = SpeechJob(text, voice, self._state.config.synthesis, rate, None, "wyoming", self._client)  # serve --rate
        started = False
        try:
            async with contextlib.aclosing(speak(self._state, job)) as pieces:
                async for piece in pieces:
                    if not started:
                        await self._write(AudioStart(rate=rate, width=2, channels=1).event())
                        started = True
                    timestamp = piece.chunk.offset_samples * 1000 // rate
                    await self._write(AudioChunk(rate=rate, width=2, channels=1, audio=piece.pcm,
                                                 timestamp=timestamp).event())
        except TextError as exc:  # too long as read out (max_spoken_chars) is too long, as for characters sent
            raise ApiError(400, str(exc), code="string_above_max_length" if exc.limit is not None
                           else "invalid_text") from exc
        except SlowClientError as exc:  # not a synthesis failure: run() drops the client (a TimeoutError)
            log.warning("%s", exc)
            raise
        except RtvoiceError as exc:  # the backend failed: an error event, the connection goes on
            log.exception("Wyoming synthesis failed")
            if started:  # close the audio the client has begun to play
                await self._write(AudioStop().event())
            raise ApiError(500, str(exc), code="synthesis_failed") from exc
        if not started:  # nothing speakable: still a (silent) answer, so the client is not left waiting
            await self._write(AudioStart(rate=rate, width=2, channels=1).event())
        await self._write(AudioStop().event())

    # -- writing --------------------------------------------------------------------------

    async def _write(self, event: Event) -> None:
        try:
            async with asyncio.timeout(self._limits.send_timeout_s):
                await self.write_event(event)
        except (OSError, RuntimeError) as exc:  # TimeoutError is an OSError
            raise _ClientGone(str(exc)) from exc

    async def _try_error(self, code: str, message: str) -> None:
        with contextlib.suppress(_ClientGone):
            await self._write(Error(text=message, code=code).event())


async def start_wyoming(state: ServerState, host: str, port: int) -> AsyncTcpServer:
    """Listen for Wyoming clients on ``host:port`` in the running loop; ``await server.stop()`` ends it."""
    server = AsyncTcpServer(host, port)
    await server.start(partial(WyomingHandler, state))
    log.info("Wyoming listening on %s:%d", host, port)
    return server
