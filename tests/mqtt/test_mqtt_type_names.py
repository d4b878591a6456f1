"""The JSON type names in MQTT error messages (``null``, ``an array``, ...), word for word.

The parsers name a wrong value's type through :func:`rtvoice.inputs.a_json_type`; these
texts are what a client reads on the answer topic, so they are pinned here.
"""

from __future__ import annotations

import json

import pytest

from rtvoice.announce import hermes
from rtvoice.announce.errors import MessageError
from rtvoice.announce.messages import parse_say

LIMIT = 64 * 1024


@pytest.mark.parametrize(("value", "name"), [
    (None, "null"), (True, "a boolean"), (3, "a number"), (2.5, "a number"), ([1], "an array"),
    ({"a": 1}, "an object"),
])
def test_a_wrong_text_type_is_named_in_json_terms(value: object, name: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_say(json.dumps({"text": value}).encode(), max_bytes=LIMIT)
    assert str(caught.value) == f"Field 'text' must be a string, not {name}."


@pytest.mark.parametrize(("value", "name"), [
    (False, "a boolean"), (1.5, "a number"), ([], "an array"), ({}, "an object"),
])
def test_a_wrong_hermes_field_type_is_named_in_json_terms(value: object, name: str) -> None:
    with pytest.raises(MessageError) as caught:
        hermes.parse_say(json.dumps({"text": "Hi.", "lang": value}).encode(), max_bytes=LIMIT)
    assert str(caught.value) == f"Hermes field 'lang' must be a string, not {name}."


@pytest.mark.parametrize(("payload", "name"), [(b"[1, 2]", "an array"), (b'["x"]', "an array")])
def test_a_payload_that_is_not_an_object_is_named(payload: bytes, name: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_say(payload, max_bytes=LIMIT)
    assert str(caught.value) == f"JSON payload must be an object, not {name}."
