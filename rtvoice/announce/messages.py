"""What travels over the native topics: parsing ``say`` and ``cancel``, encoding events.

Pure functions over bytes, so each rule is tested without a broker. Every refusal is a
:class:`MessageError` whose ``reason`` becomes the ``failed`` event's reason.

``say`` payloads are either plain UTF-8 text or a JSON object (a payload whose first
non-blank character is ``{`` or ``[`` is read as JSON)::

    {"text": "Platform two.", "id": "a1", "priority": "urgent", "voice": "tiny",
     "volume": 0.8, "chime": true, "rate": 1.2, "ssml": false}
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Final, Literal

from ..config import RATE_RANGE, SynthesisConfig
from ..errors import TextError
from ..inputs import a_json_type
from ..text import decode_utf8
from .errors import MessageError, Reason

MAX_ID_CHARS: Final = 128
MAX_VOLUME: Final = 2.0
MAX_JSON_DEPTH: Final = 16
"""Deeper JSON is refused before it is parsed (an announcement's fields are flat)."""
MAX_INT_DIGITS: Final = 20
"""Longer integers are refused while parsing (an integer ``id`` fits in 20 digits)."""
SAY_FIELDS: Final = frozenset({"text", "id", "priority", "voice", "volume", "chime", "rate", "ssml"})


class Priority(IntEnum):
    """Higher is spoken first; ``URGENT`` also interrupts a lower announcement being spoken."""

    LOW = 0
    NORMAL = 1
    URGENT = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class HermesRequest:
    """The Hermes side of an announcement: what ``sayFinished`` and ``playBytes`` echo."""

    site_id: str
    id: str | None
    """The request's ``id`` as sent (``None`` when absent); echoed in ``sayFinished``."""
    session_id: str | None
    lang: str | None
    request_id: str
    """The ``<requestId>`` of ``playBytes``: ``id``, or a fresh one when ``id`` is absent
    or cannot be a topic level."""


@dataclass(frozen=True)
class Announcement:
    """One thing to say, validated; the unit the queue orders and the speaker speaks."""

    id: str
    text: str
    priority: Priority = Priority.NORMAL
    voice: str | None = None
    """A voice name; ``None`` takes the announcer's default voice."""
    volume: float = 1.0
    chime: bool = False
    """Play a short two-tone chime before the speech."""
    rate: float | None = None
    """Speaking rate (pitch kept); ``None``: the daemon's ``--rate``, else the voice's."""
    ssml: bool | None = None
    """Read ``text`` as SSML; ``None``: when it starts with ``<speak``."""
    source: Literal["native", "hermes"] = "native"
    hermes: HermesRequest | None = None
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the message arrived (for ``queued_s``)."""


def new_id() -> str:
    return uuid.uuid4().hex


def is_topic_level(value: str) -> bool:
    """Whether ``value`` can stand as one level of a topic name (it goes into ``audio/<id>``)."""
    return 0 < len(value) <= MAX_ID_CHARS and not any(c in value for c in "/+#\0")


def decode_payload(payload: bytes, max_bytes: int) -> str:
    """Size check, then strict UTF-8; the first two refusals every text topic shares."""
    if len(payload) > max_bytes:
        raise MessageError(Reason.PAYLOAD_TOO_LARGE,
                           f"Payload has {len(payload)} bytes; the limit is {max_bytes}. "
                           "Hint: split long text into several announcements.")
    try:
        return decode_utf8(payload)
    except TextError as exc:
        raise MessageError(Reason.INVALID_UTF8, str(exc)) from exc


_TOKENS: Final = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')
"""A JSON string (to its closing quote, or to the end when unterminated) or a bracket:
one linear pass finds the nesting depth without being fooled by brackets inside strings."""


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest (for malformed JSON, an upper bound)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise MessageError(Reason.INVALID_FIELD, f"A number has {len(digits)} digits; at most {MAX_INT_DIGITS} "
                           "are accepted.")
    return int(digits)


def _no_constant(name: str) -> float:
    raise MessageError(Reason.INVALID_JSON, f"Payload is not valid JSON: {name} is not a JSON number.")


def _check_strings(value: Any) -> None:
    """Refuse a lone surrogate escape anywhere (a high or low half not in a pair), as HTTP and WebSocket do."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        for part in (key, item):
            if isinstance(part, str):
                try:
                    part.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise MessageError(Reason.INVALID_TEXT, "Payload holds a lone surrogate escape (\\ud800-\\udfff "
                                       f"not in a pair) at offset {exc.start} of a string, which is not valid "
                                       "Unicode.") from None
            elif isinstance(part, dict | list):
                _check_strings(part)


def load_json_object(text: str, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse a JSON object; anything malformed is a :class:`MessageError`, nothing else.

    The standard parser recurses (20,000 nested ``[`` raise ``RecursionError``), parses
    integers of any length (``ValueError`` past 4300 digits) and accepts ``NaN`` and lone
    surrogates; each is bounded or refused here before or while it parses.
    """
    if json_depth(text) > max_depth:
        raise MessageError(Reason.INVALID_JSON, f"Payload nests arrays or objects deeper than {max_depth} levels.")
    try:
        data = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise MessageError(Reason.INVALID_JSON, f"Payload is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise MessageError(Reason.INVALID_FIELD, f"JSON payload must be an object, not {a_json_type(data)}.")
    _check_strings(data)
    return data


def describe(value: Any) -> str:
    """A short, safe picture of a received value for an error message (never a deep repr)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return f"{value!r:.60}"
    return f"a JSON {'object' if isinstance(value, dict) else 'array'}"


def synthesis_for(item: Announcement, base: SynthesisConfig) -> SynthesisConfig:
    """The daemon's settings with the announcement's own rate and SSML choice."""
    return replace(base, rate=base.rate if item.rate is None else item.rate,
                   ssml=base.ssml if item.ssml is None else item.ssml)


def looks_like_json(text: str) -> bool:
    return text.lstrip().startswith(("{", "["))


def parse_say(payload: bytes, *, max_bytes: int) -> Announcement:
    """Read a native ``say`` payload (plain text or a JSON object) into an announcement.

    Args:
        payload: The MQTT payload.
        max_bytes: Larger payloads are refused before decoding.

    Returns:
        The announcement, with a fresh ``id`` when the message named none.

    Raises:
        MessageError: The payload is too large, not UTF-8, not valid JSON, has a field of
            the wrong type or value, or has no text to say.
    """
    text = decode_payload(payload, max_bytes)
    if not looks_like_json(text):
        return Announcement(id=new_id(), text=_text(text, None))
    data = load_json_object(text)
    ident = _id(data.get("id"))
    unknown = sorted(set(data) - SAY_FIELDS)
    if unknown:
        raise MessageError(Reason.INVALID_FIELD, f"Unknown field(s) {unknown}; known: {sorted(SAY_FIELDS)}.",
                           id=ident)
    if "text" not in data:
        raise MessageError(Reason.INVALID_FIELD, "Field 'text' is missing.", id=ident)
    return Announcement(
        id=ident,
        text=_text(data["text"], ident),
        priority=parse_priority(data.get("priority"), ident),
        voice=_optional_str(data, "voice", ident),
        volume=parse_volume(data.get("volume"), ident),
        chime=_bool(data, "chime", ident),
        rate=parse_rate(data.get("rate"), ident),
        ssml=_bool(data, "ssml", ident) if "ssml" in data else None,
    )


def _id(value: Any) -> str:
    if value is None:
        return new_id()
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not is_topic_level(value):
        raise MessageError(Reason.INVALID_FIELD, f"Field 'id' must be a string of 1-{MAX_ID_CHARS} characters "
                           f"without '/', '+' or '#'; got {describe(value)}.")
    return value


def _text(value: Any, ident: str | None) -> str:
    if not isinstance(value, str):
        raise MessageError(Reason.INVALID_FIELD, f"Field 'text' must be a string, not {a_json_type(value)}.",
                           id=ident)
    if not value.strip():
        raise MessageError(Reason.EMPTY_TEXT, "Text is empty: there is nothing to say.", id=ident)
    return value


def parse_priority(value: Any, ident: str | None) -> Priority:
    if value is None:
        return Priority.NORMAL
    names = [p.label for p in Priority]
    if not isinstance(value, str) or value.lower() not in names:
        raise MessageError(Reason.INVALID_FIELD, f"Field 'priority' must be one of {names}; got {describe(value)}.",
                           id=ident)
    return Priority[value.upper()]


def parse_volume(value: Any, ident: str | None) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0.0 <= value <= MAX_VOLUME:
        raise MessageError(Reason.INVALID_FIELD, f"Field 'volume' must be a number from 0 to {MAX_VOLUME}; "
                           f"got {describe(value)}.", id=ident)
    return float(value)


def parse_rate(value: Any, ident: str | None) -> float | None:
    if value is None:
        return None
    low, high = RATE_RANGE
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not low <= value <= high:
        raise MessageError(Reason.INVALID_FIELD, f"Field 'rate' must be a number from {low:g} to {high:g}; "
                           f"got {describe(value)}.", id=ident)
    return float(value)


def _optional_str(data: dict[str, Any], key: str, ident: str | None) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise MessageError(Reason.INVALID_FIELD, f"Field {key!r} must be a string, not {a_json_type(value)}.",
                           id=ident)
    return value


def _bool(data: dict[str, Any], key: str, ident: str | None) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise MessageError(Reason.INVALID_FIELD, f"Field {key!r} must be true or false, not {describe(value)}.",
                           id=ident)
    return value


def parse_cancel(payload: bytes, *, max_bytes: int) -> str | None:
    """Read a ``cancel`` payload: the id to cancel, or ``None`` for everything.

    Accepted: an empty payload or ``*`` (everything), a plain id, ``{"id": "a1"}`` or
    ``{"all": true}``.

    Raises:
        MessageError: The payload is not UTF-8, not valid JSON, or names no valid id.
    """
    text = decode_payload(payload, max_bytes).strip()
    if text in ("", "*"):
        return None
    if not looks_like_json(text):
        return _id(text)
    data = load_json_object(text)
    if data.get("all") is True and "id" not in data:
        return None
    if "id" not in data:
        raise MessageError(Reason.INVALID_FIELD, 'A cancel object needs "id" (or "all": true).')
    return _id(data["id"])


def event_payload(kind: str, worker: str, announcement: Announcement | None, **fields: Any) -> bytes:
    """The JSON of one status event (``started``, ``finished``, ``failed``, ``interrupted``)."""
    body: dict[str, Any] = {"event": kind, "id": None, "worker": worker}
    if announcement is not None:
        body.update(id=announcement.id, source=announcement.source, priority=announcement.priority.label,
                    voice=announcement.voice)
        if announcement.hermes is not None:
            body.update(site_id=announcement.hermes.site_id, session_id=announcement.hermes.session_id)
    body.update(fields)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
