"""OpenAI-compatible HTTP routes: ``POST /v1/audio/speech`` and ``GET /v1/audio/voices``.

The speech endpoint takes OpenAI's body (``model``, ``input``, ``voice``,
``response_format``, ``speed``, ``instructions``, ``stream_format``) and streams the
audio as it is made, chunked. Everything a request can be refused for (body too large,
bad JSON, unknown voice or format, text too long or unspeakable, too many streams) is
found before the status line, and answered with OpenAI's error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..encode import FORMATS as ENCODED
from ..encode import Encoder
from ..errors import InputError, TextError
from ..inputs import check_text, json_type, loads_object, shown
from ..text import decode_utf8
from .audio_out import FORMATS, OPENAI_FORMATS, ResponseFormat
from .config import SPEED_RANGE, LimitsConfig
from .errors import ApiError, invalid
from .http_stream import AudioStreamResponse
from .speech import SpeechJob, speak
from .state import ServerState, client_id, state_of
from .voices import VoiceSet

DEFAULT_FORMAT = "wav"
"""A request that names no format gets WAV (OpenAI's default is mp3, which is served when asked for)."""


@dataclass(frozen=True)
class SpeechRequest:
    """A validated body of ``POST /v1/audio/speech``."""

    input: str
    voice: str
    format: ResponseFormat
    speed: float | None


def _show(value: Any) -> str:
    """A short rendering of a client's value for an error message (never the whole body)."""
    return shown(value)


def _string(data: dict[str, Any], name: str, *, required: bool, max_chars: int) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise invalid(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid type for '{name}': expected a string, got {json_type(value)}.", param=name,
                      code="invalid_type")
    if len(value) > max_chars:
        raise invalid(f"'{name}' is too long. Note: it has {len(value)} characters; the maximum is {max_chars}.",
                      param=name, code="string_above_max_length")
    try:
        return check_text(value)
    except TextError as exc:  # a lone surrogate such as "\ud800" in the JSON
        raise invalid(f"'{name}': {exc}", param=name, code="invalid_value") from exc


def parse_speech_request(body: bytes, voices: VoiceSet, limits: LimitsConfig) -> SpeechRequest:
    """Validate a speech request body.

    Args:
        body: The raw request body (UTF-8 JSON).
        voices: The voices served; ``voice`` must name one (absent: the default voice).
        limits: ``max_input_chars`` bounds ``input`` and ``instructions``.

    Returns:
        The request, with defaults applied: format ``wav``; speed ``None`` (the server's rate).

    Raises:
        ApiError: 400 with ``param`` and ``code`` naming what is wrong.
    """
    try:
        data = loads_object(decode_utf8(body), what="The body")
    except TextError as exc:
        raise invalid(str(exc), param=None, code="invalid_encoding") from exc
    except InputError as exc:
        raise invalid(str(exc), param=None, code="invalid_json") from exc
    text = _string(data, "input", required=True, max_chars=limits.max_input_chars)
    assert text is not None
    if not text.strip():
        raise invalid("'input' is empty: there is nothing to say.", param="input", code="empty_input")
    _string(data, "model", required=False, max_chars=256)  # any model name is accepted
    _string(data, "instructions", required=False, max_chars=limits.max_input_chars)  # accepted, not used
    return SpeechRequest(text, _voice(data.get("voice"), voices), _format(data), _speed(data.get("speed")))


def _voice(value: Any, voices: VoiceSet) -> str:
    if isinstance(value, dict) and set(value) == {"id"}:  # OpenAI's {"id": "voice_1234"} form
        value = value["id"]
    if value is None:
        return voices.default_name
    if not isinstance(value, str):
        raise invalid(f"Invalid type for 'voice': expected a string, got {json_type(value)}.", param="voice",
                      code="invalid_type")
    if voices.get(value) is None:
        raise invalid(f"Voice {_show(value)} is not served here. Note: the voices are {', '.join(voices.names)}. "
                      "Hint: GET /v1/audio/voices lists them.", param="voice", code="voice_not_found")
    return voices.aliases.get(value, value)  # OpenAI's "alloy" is served by (and reported as) the default voice


def _format(data: dict[str, Any]) -> ResponseFormat:
    name = data.get("response_format")
    if name is None:
        name = DEFAULT_FORMAT
    if not isinstance(name, str):
        raise invalid(f"Invalid type for 'response_format': expected a string, got {json_type(name)}.",
                      param="response_format", code="invalid_type")
    if name not in FORMATS:
        note = "it is an OpenAI format this server has no encoder for" if name in OPENAI_FORMATS else "unknown"
        raise invalid(f"Unsupported response_format {_show(name)} ({note}). Hint: use one of "
                      f"{', '.join(FORMATS)}.", param="response_format", code="unsupported_response_format")
    stream_format = data.get("stream_format")
    if stream_format not in (None, "audio"):
        raise invalid(f"Unsupported stream_format {_show(stream_format)}. Hint: use 'audio' (the default).",
                      param="stream_format", code="unsupported_value")
    return FORMATS[name]


def _speed(value: Any) -> float | None:
    if value is None:
        return None  # the server's --rate, else the voice's default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"Invalid type for 'speed': expected a number, got {json_type(value)}.", param="speed",
                      code="invalid_type")
    low, high = SPEED_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise invalid(f"'speed' must be from {low} to {high}, got {_show(value)}.", param="speed",
                      code="invalid_value")
    return float(value)


def require_json(request: Request) -> None:
    """Refuse a body that does not say it is JSON with 415.

    ``text/plain``, form encodings and no type at all make a CORS "simple request", which
    a web page may send to this server without asking; JSON may not be sent that way.
    """
    given = request.headers.get("content-type", "")
    media_type = given.partition(";")[0].strip().lower()
    json_like = media_type.startswith("application/") and media_type.endswith("+json")
    if media_type != "application/json" and not json_like:
        shown = _show(given) if given else "none"
        raise ApiError(415, f"The body must be JSON (Content-Type: application/json); its Content-Type is {shown}. "
                       "Hint: send the header 'Content-Type: application/json'.", code="unsupported_media_type")


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body, refusing more than ``limit`` bytes with 413 (before reading, if it says so)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"The body is {declared} bytes; the limit is {limit}.", code="request_too_large")
    data = bytearray()
    try:
        async for part in request.stream():
            data += part
            if len(data) > limit:
                raise ApiError(413, f"The body is over the limit of {limit} bytes.", code="request_too_large")
    except ClientDisconnect as exc:
        raise invalid("The client went away before sending the whole body.", param=None,
                      code="client_disconnected") from exc
    return bytes(data)


async def create_speech(request: Request) -> Response:
    """``POST /v1/audio/speech``: stream the audio of ``input`` as it is synthesized."""
    since = time.perf_counter()
    state = state_of(request)
    limits = state.config.limits
    require_json(request)
    speech = parse_speech_request(await read_body(request, limits.max_body_bytes), state.voices, limits)
    voice = state.voices.get(speech.voice)
    assert voice is not None
    out_rate = speech.format.sample_rate or voice.sample_rate
    job = SpeechJob(speech.input, voice, state.config.synthesis, out_rate, speech.speed, "http", client_id(request))
    body = _audio_body(state, job, speech.format, since)
    try:
        first = await anext(body)
    except TextError as exc:  # too long as read out (max_spoken_chars) is too long, as for characters sent
        code = "string_above_max_length" if exc.limit is not None else "invalid_input"
        raise invalid(str(exc), param="input", code=code) from exc
    except StopAsyncIteration:
        first = speech.format.header(out_rate)
    except BaseException:
        await body.aclose()
        raise
    headers = {"x-sample-rate": str(out_rate), "x-voice": speech.voice}
    return AudioStreamResponse(first, body, media_type=speech.format.media_type, headers=headers,
                               send_timeout_s=limits.send_timeout_s)


async def _audio_body(state: ServerState, job: SpeechJob, fmt: ResponseFormat,
                      since: float) -> AsyncGenerator[bytes, None]:
    """The response body: the format's header with the first chunk, then each chunk's PCM (or its encoding)."""
    header = fmt.header(job.out_rate)
    with contextlib.ExitStack() as stack:
        encoder = stack.enter_context(Encoder(ENCODED[fmt.encoder], job.out_rate)) if fmt.encoder else None
        async with contextlib.aclosing(speak(state, job, since=since)) as pieces:
            async for piece in pieces:
                # Encoding costs ~30 ms per second of MP3 on one core: off the event loop, in order.
                data = piece.pcm if encoder is None else await asyncio.to_thread(encoder.encode_pcm, piece.pcm)
                yield header + data
                header = b""
        if encoder is not None:
            yield encoder.finish()  # the encoder's last frames (and a whole, if empty, file)
    if header:  # no audio at all: still a well-formed (empty) file
        yield header


async def list_voices(request: Request) -> Response:
    """``GET /v1/audio/voices``: the voices served, the default first, and the names that alias them."""
    state = state_of(request)
    voices = [
        {"id": name, "name": voice.config.name, "sample_rate": voice.sample_rate,
         "default": name == state.voices.default_name}
        for name, voice in state.voices.items()
    ]
    return JSONResponse({"object": "list", "data": voices, "voices": [v["id"] for v in voices],
                         "aliases": state.voices.aliases})


ROUTES = [
    Route("/v1/audio/speech", create_speech, methods=["POST"]),
    Route("/v1/audio/voices", list_voices, methods=["GET"]),
]
