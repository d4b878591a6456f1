"""The payload parsers under hostile input: nothing but :class:`MessageError` ever comes out.

Pure functions, so thousands of generated payloads run in seconds (no broker here; the
same inputs go through a real Mosquitto in test_mqtt_hostile.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtvoice.announce import hermes
from rtvoice.announce.errors import MessageError, Reason
from rtvoice.announce.messages import MAX_JSON_DEPTH, json_depth, parse_cancel, parse_say

LIMIT = 64 * 1024
FIVE_THOUSAND_DIGITS = b'{"text": "Hello.", "id": ' + b"7" * 5000 + b"}"
DEEP = b"[" * 20_000


def outcome(parse: Any, payload: bytes) -> MessageError | None:
    """Run a parser; a MessageError is returned, anything else it raises fails the test."""
    try:
        parse(payload)
    except MessageError as exc:
        assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 600
        assert "sys.set_int_max_str_digits" not in str(exc) and "NoneType" not in str(exc)
        return exc
    return None


def native_say(payload: bytes) -> object:
    return parse_say(payload, max_bytes=LIMIT)


def native_cancel(payload: bytes) -> object:
    return parse_cancel(payload, max_bytes=LIMIT)


def hermes_say(payload: bytes) -> object:
    return hermes.parse_say(payload, max_bytes=LIMIT)


PARSERS = [native_say, native_cancel, hermes_say]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(("payload", "reason"), [
    (FIVE_THOUSAND_DIGITS, Reason.INVALID_FIELD),  # was ValueError (int-to-str beyond 4300 digits)
    (DEEP, Reason.INVALID_JSON),  # was RecursionError
    (b"{" * 30_000, Reason.INVALID_JSON),
    (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, Reason.INVALID_JSON),
    (b'{"text": "x", "id": "a", "volume": NaN}', Reason.INVALID_JSON),
    (b'{"text": "x", "id": "a", "volume": -Infinity}', Reason.INVALID_JSON),
], ids=["5000-digit-id", "20000-brackets", "30000-braces", "5000-objects", "nan", "infinity"])
def test_the_reported_crashes_are_refusals(parse: Any, payload: bytes, reason: Reason) -> None:
    start = time.monotonic()
    error = outcome(parse, payload)
    assert error is not None and error.reason is reason
    assert time.monotonic() - start < 0.5
    if parse is hermes_say:
        assert error.hermes is not None  # so that error/tts and sayFinished can answer it


@pytest.mark.parametrize("payload", [
    b'{"text": "Hello \\ud800 there."}',
    b'{"text": "Hello.", "voice": "\\udfff"}',
    b'{"text": "Fine.", "id": "a", "extra": ["\\ud83d"]}',
])
def test_lone_surrogates_are_refused_as_http_and_websocket_do(payload: bytes) -> None:
    # Before: the native say accepted "\ud800" and spoke it; HTTP and WebSocket refuse it.
    for parse in (native_say, hermes_say):
        error = outcome(parse, payload)
        assert error is not None and error.reason is Reason.INVALID_TEXT and "surrogate" in str(error)
    assert outcome(native_say, b'{"text": "A pair \\ud83d\\ude00 is fine."}') is None


def test_a_deep_or_huge_value_is_described_not_printed() -> None:
    nested = b'{"text": "x", "id": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    error = outcome(native_say, nested)
    assert error is not None and error.reason is Reason.INVALID_FIELD and "a JSON array" in str(error)
    error = outcome(native_say, json.dumps({"text": "x", "priority": "p" * 50_000}).encode())
    assert error is not None and len(str(error)) < 300


def test_json_depth_ignores_brackets_in_strings_and_is_linear() -> None:
    assert json_depth('{"a": "[[[[{{{{", "b": [[1]]}') == 3
    assert json_depth('"unterminated [[[[') == 0
    assert json_depth(r'{"a": "\"[[["}') == 1
    start = time.monotonic()
    json_depth('"\\"' * 20_000)  # an unterminated string of escapes: one pass, not a quadratic retry
    assert time.monotonic() - start < 0.5


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20)
FIELDS = st.sampled_from(["text", "id", "priority", "voice", "volume", "chime", "all", "siteId", "sessionId",
                          "lang", "other"])
OBJECTS = st.dictionaries(FIELDS, JSON, max_size=6)
FAST = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(payload=st.binary(max_size=300))
def test_random_bytes_get_an_announcement_or_a_refusal(payload: bytes) -> None:
    for parse in PARSERS:
        error = outcome(parse, payload)
        if error is not None and parse is hermes_say:
            assert error.hermes is not None


@FAST
@given(value=JSON | OBJECTS)
def test_random_json_gets_an_announcement_or_a_refusal(value: Any) -> None:
    payload = json.dumps(value).encode()
    for parse in PARSERS:
        error = outcome(parse, payload)
        if error is not None and parse is hermes_say:
            assert error.hermes is not None


@settings(max_examples=150, deadline=None)
@given(value=OBJECTS, cut=st.integers(min_value=0, max_value=200), junk=st.binary(max_size=8))
def test_damaged_json_gets_an_announcement_or_a_refusal(value: Any, cut: int, junk: bytes) -> None:
    payload = json.dumps(value).encode()
    damaged = payload[:cut] + junk + payload[cut:]
    for parse in PARSERS:
        outcome(parse, damaged)
