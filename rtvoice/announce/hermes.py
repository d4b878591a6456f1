"""Rhasspy Hermes compatibility: ``hermes/tts/say`` in, ``sayFinished`` and ``playBytes`` out.

Topics and field names follow the Hermes protocol as Rhasspy implements it (checked
against the rhasspy-hermes package and the Rhasspy reference):

- ``hermes/tts/say`` (JSON): ``text``, ``siteId`` (default ``"default"``), ``lang``,
  ``id``, ``sessionId`` -- rhasspyhermes/tts.py ``TtsSay``; JSON keys are the camelCase
  of its fields (``LetterCase.CAMEL`` in rhasspyhermes/base.py ``Message``).
- ``hermes/tts/sayFinished`` (JSON): ``siteId``, ``id`` (the request's), ``sessionId``
  -- rhasspyhermes/tts.py ``TtsSayFinished``.
- ``hermes/error/tts`` (JSON): ``error``, ``siteId``, ``context``, ``sessionId`` --
  rhasspyhermes/tts.py ``TtsError`` (Rhasspy only; rhasspy-tts-cli-hermes puts the
  request id in ``context`` and still sends ``sayFinished`` afterwards).
- ``hermes/audioServer/<siteId>/playBytes/<requestId>`` (binary WAV) and
  ``hermes/audioServer/<siteId>/playFinished`` (JSON ``id`` = the requestId) --
  rhasspyhermes/audioserver.py ``AudioPlayBytes`` / ``AudioPlayFinished``.
- https://rhasspy.readthedocs.io/en/latest/reference/ (MQTT API, Audio Server and Text
  to Speech) and https://rhasspy.readthedocs.io/en/latest/audio-output/ ("The requestId
  part of the topic is simply a unique ID that will be sent back in id field of the
  playFinished response").

Like rhasspy-tts-cli-hermes, a service that does not play locally publishes
``playBytes`` and waits for ``playFinished`` (at most the audio's duration plus a
margin) before answering ``sayFinished``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from typing import Any, Final

from ..inputs import a_json_type
from .errors import MessageError, Reason
from .messages import (
    MAX_JSON_DEPTH,
    Announcement,
    HermesRequest,
    decode_payload,
    is_topic_level,
    load_json_object,
    new_id,
    parse_volume,
)

SAY: Final = "hermes/tts/say"
SAY_FINISHED: Final = "hermes/tts/sayFinished"
TTS_ERROR: Final = "hermes/error/tts"


def play_bytes_topic(site_id: str, request_id: str) -> str:
    return f"hermes/audioServer/{site_id}/playBytes/{request_id}"


def play_finished_topic(site_id: str) -> str:
    """The audio server's answer topic; ``+`` for ``site_id`` subscribes to every site's."""
    return f"hermes/audioServer/{site_id}/playFinished"


def is_play_finished(topic: str) -> bool:
    parts = topic.split("/")
    return len(parts) == 4 and parts[:2] == ["hermes", "audioServer"] and parts[3] == "playFinished"


def _optional_str(data: dict[str, Any], key: str, request: HermesRequest | None = None) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MessageError(Reason.INVALID_FIELD, f"Hermes field {key!r} must be a string, not {a_json_type(value)}.",
                       id=request.request_id if request else None, hermes=request)


def _lenient_str(data: dict[str, Any], key: str) -> str | None:
    """A field read only to address the answer: a wrong type is not used (and refused later)."""
    try:
        return _optional_str(data, key)
    except MessageError:
        return None


def fallback_request(site_id: str) -> HermesRequest:
    """Whom to answer when a request's own ids could not be read: ``site_id``, no id, no session."""
    return HermesRequest(site_id=site_id, id=None, session_id=None, lang=None, request_id=new_id())


def parse_say(payload: bytes, *, site_ids: Collection[str] = (), max_bytes: int,
              max_depth: int = MAX_JSON_DEPTH) -> Announcement | None:
    """Read ``hermes/tts/say``; ``None`` when it is for a site this service does not serve.

    Args:
        payload: The MQTT payload (a JSON object).
        site_ids: The sites served; empty serves every site (as Rhasspy's services do).
        max_bytes: Larger payloads are refused before decoding.
        max_depth: Deeper JSON is refused before it is parsed.

    Raises:
        MessageError: Bad payload. ``hermes`` is always set (to the first of ``site_ids``,
            or ``default``, and no ids when they could not be read), so that
            ``hermes/error/tts`` and ``sayFinished`` still answer it and a Rhasspy dialogue
            never waits for ever.
    """
    try:
        data = load_json_object(decode_payload(payload, max_bytes), max_depth)
    except MessageError as exc:
        exc.hermes = fallback_request(next(iter(site_ids), "default"))
        raise
    site = _lenient_str(data, "siteId") or "default"
    if site_ids and site not in site_ids:
        return None
    ident = _lenient_str(data, "id")
    request = HermesRequest(
        site_id=site,
        id=ident,
        session_id=_lenient_str(data, "sessionId"),
        lang=_lenient_str(data, "lang"),
        request_id=ident if ident is not None and is_topic_level(ident) else new_id(),
    )
    own_id = request.request_id
    for key in ("siteId", "id", "sessionId", "lang"):
        _optional_str(data, key, request)
    text = data.get("text")
    if not isinstance(text, str):
        raise MessageError(Reason.INVALID_FIELD, "Hermes field 'text' must be a string.", id=own_id, hermes=request)
    if not text.strip():
        raise MessageError(Reason.EMPTY_TEXT, "Text is empty: there is nothing to say.", id=own_id, hermes=request)
    try:
        volume = parse_volume(data.get("volume"), own_id)  # newer Rhasspy versions send "volume"
    except MessageError as exc:
        exc.hermes = request
        raise
    return Announcement(id=own_id, text=text, volume=volume, source="hermes", hermes=request)


def say_finished(request: HermesRequest) -> bytes:
    return _json({"id": request.id, "siteId": request.site_id, "sessionId": request.session_id})


def tts_error(error: str, *, site_id: str, request: HermesRequest | None) -> bytes:
    return _json({
        "error": error,
        "siteId": request.site_id if request else site_id,
        "context": request.id if request else None,
        "sessionId": request.session_id if request else None,
    })


def parse_play_finished(payload: bytes, *, max_bytes: int) -> str | None:
    """The ``id`` of a ``playFinished`` message (our ``requestId``); ``None`` if unreadable."""
    try:
        data = load_json_object(decode_payload(payload, max_bytes))
    except MessageError:
        return None
    value = data.get("id")
    return value if isinstance(value, str) else None


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class PlayFinished:
    """Waiters for ``playFinished``, keyed by requestId (the dispatcher sets, the speaker waits)."""

    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Event] = {}

    def expect(self, request_id: str) -> asyncio.Event:
        return self._waiters.setdefault(request_id, asyncio.Event())

    def finished(self, request_id: str) -> None:
        waiter = self._waiters.get(request_id)
        if waiter is not None:
            waiter.set()

    def forget(self, request_id: str) -> None:
        self._waiters.pop(request_id, None)
