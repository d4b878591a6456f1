"""Checks every edge (HTTP, WebSocket, Wyoming, MQTT) applies to what a client sends.

One place decides what received text and JSON may hold, so the protocols refuse and
clean the same things the same way, with one-line messages free of Python internals:

- :func:`check_text`: a lone surrogate (U+D800 to U+DFFF alone, legal in JSON, not in Unicode) is
  refused; control characters (NUL, ESC of ANSI escape codes, C1 controls) are dropped,
  so they are neither spoken nor echoed back to anyone.
- :func:`loads_object`: JSON with bounded numbers and nesting, no ``NaN``/``Infinity``,
  and an object at the top.
- :func:`json_type` (:func:`a_json_type` with its article) and :func:`shown`: a value's JSON
  type name (``null``, ``array``, ...) and a short, escaped JSON rendering of it, for messages.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any, Final

from .errors import InputError, TextError

MAX_NUMBER_DIGITS: Final = 64
"""Longest integer literal accepted in JSON (Python refuses over 4300 with a message about sys)."""


def check_text(text: str) -> str:
    """Refuse text that is not Unicode; return it without control characters.

    Args:
        text: Text received from a client.

    Returns:
        ``text`` with every control character (category Cc) but tab, newline and
        carriage return removed.

    Raises:
        TextError: ``text`` holds a lone surrogate; the message names its offset.
    """
    for offset, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            raise TextError(f"The text holds a lone surrogate (U+{ord(char):04X} at offset {offset}), which is "
                            "not valid Unicode. Hint: send text encoded as UTF-8.", length=len(text))
    if text.isprintable():
        return text
    return "".join(char for char in text if char in "\t\n\r" or unicodedata.category(char) != "Cc")


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type: null, boolean, number, string, array or object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "unknown"


def a_json_type(value: Any) -> str:
    """:func:`json_type` with its article, for prose: ``null``, ``a boolean``, ``an array``, ..."""
    name = json_type(value)
    if name == "null":
        return name
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def shown(value: Any, limit: int = 40) -> str:
    """A client's value for an error message, cut to about ``limit`` characters.

    JSON with every non-ASCII character escaped, so no control character is echoed.
    """
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError):
        text = json_type(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _parse_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_NUMBER_DIGITS:
        raise InputError(f"A number has {digits} digits; the most is {MAX_NUMBER_DIGITS}.")
    return int(literal)


def _refuse_constant(name: str) -> Any:
    raise InputError(f"{name} is not a JSON value.")


def loads_object(text: str | bytes, *, what: str = "The message") -> dict[str, Any]:
    """Parse a JSON object, refusing anything else with a one-line message.

    Args:
        text: The JSON text (bytes must be UTF-8; decode them first to report bad bytes).
        what: How messages name the input, e.g. ``"The body"``.

    Returns:
        The object.

    Raises:
        InputError: Not JSON (see :func:`loads`), or not an object at the top.
    """
    data = loads(text, what=what)
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a JSON object, not {json_type(data)}.")
    return data


def loads(text: str | bytes, *, what: str = "The message") -> Any:
    """Parse JSON, refusing what is not strictly JSON or too large to handle with a one-line message.

    Raises:
        InputError: Not JSON, nested too deeply, a number too long, ``NaN`` or ``Infinity``.
    """
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=_refuse_constant)
    except InputError as exc:
        raise InputError(f"{what} is not valid JSON: {exc} Hint: send a JSON object.") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
                         "Hint: send a JSON object.") from None
    except RecursionError:
        raise InputError(f"{what} is nested too deeply. Hint: send a flat JSON object.") from None
    except (ValueError, TypeError):  # e.g. bytes that are not UTF-8
        raise InputError(f"{what} is not valid JSON text. Hint: send a JSON object encoded as UTF-8.") from None
