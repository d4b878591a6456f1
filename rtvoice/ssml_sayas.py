"""``<say-as interpret-as="...">``: the reading SSML asks for, as words the voice can say.

The number words and letter names come from the text front end's own functions
(:mod:`rtvoice.text.numbers`, built on num2words, and :mod:`rtvoice.text.letters`), so they
read the same inside and outside SSML. What the normalizer has no function for (a date in a
stated field order, a clock time or telephone number as one field) is here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from .text.letters import finish, spell
from .text.numbers import cardinal, digits, ordinal, year

__all__ = ["INTERPRETATIONS", "say_as"]

_MONTHS: Final = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December")


class SayAsError(ValueError):
    """The content does not fit the interpretation (the caller adds the position)."""


def _characters(text: str, _format: str | None) -> str:
    words = []
    for ch in text:
        if ch.isspace():
            continue
        if ch.isdigit():
            words.append(digits(ch))
        elif ch.isalpha():
            words.append(finish(spell(ch), names=True))  # the front end's letter names
        else:
            words.append(ch)
    return " ".join(words)


def _integer(text: str) -> int:
    cleaned = text.strip().replace(",", "")
    if not re.fullmatch(r"[-+]?\d{1,36}", cleaned):
        raise SayAsError(f"{text.strip()[:40]!r} is not a whole number")
    return int(cleaned)


def _cardinal(text: str, _format: str | None) -> str:
    value = _integer(text)
    return ("minus " if value < 0 else "") + cardinal(abs(value))


def _ordinal(text: str, _format: str | None) -> str:
    value = _integer(re.sub(r"(?i)(st|nd|rd|th)\s*$", "", text.strip()))
    if value < 0:
        raise SayAsError(f"{text.strip()[:40]!r}: an ordinal cannot be negative")
    return ordinal(value)


def _digits(text: str, _format: str | None) -> str:
    found = re.sub(r"\D", "", text)
    if not found:
        raise SayAsError(f"{text.strip()[:40]!r} has no digits")
    return digits(found)


def _default_order(fields: list[str]) -> str:
    """Without ``format``: a leading 4-digit field is the year (ISO), else month first (US)."""
    if len(fields[0]) == 4:
        return "ymd"[: len(fields)]
    return "mdy"[: len(fields)]


def _date(text: str, fmt: str | None) -> str:
    """Numeric dates ("12/25/2026", "2026-12-25") read in the field order ``format`` names (default mdy, or ymd)."""
    fields = re.split(r"[-/.\s]+", text.strip())
    if not all(re.fullmatch(r"\d+", f) for f in fields):  # not str.isdigit: "²" is a digit that int() refuses
        raise SayAsError(f"{text.strip()[:40]!r} is not a numeric date")
    order = fmt or _default_order(fields)
    if len(order) != len(fields) or set(order) - set("dmy") or len(set(order)) != len(order):
        raise SayAsError(f"{text.strip()[:40]!r} does not match the date format {order!r}")
    parts = dict(zip(order, (int(f) for f in fields), strict=True))
    if "m" in parts and not 1 <= parts["m"] <= 12:
        raise SayAsError(f"{text.strip()[:40]!r}: month {parts['m']} is not 1-12")
    if "d" in parts and not 1 <= parts["d"] <= 31:
        raise SayAsError(f"{text.strip()[:40]!r}: day {parts['d']} is not 1-31")
    words = []
    if "m" in parts:
        words.append(_MONTHS[parts["m"] - 1])
    if "d" in parts:
        words.append(ordinal(parts["d"]) if "m" in parts else f"the {ordinal(parts['d'])}")
    if "y" in parts:
        if words:
            words[-1] += ","
        words.append(year(parts["y"]))
    return " ".join(words)


def _time(text: str, _format: str | None) -> str:
    """Clock times: "10:30", "10:30 PM", "22:05", "7pm"."""
    m = re.fullmatch(r"\s*(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*([ap])?\.?\s*(?:m\.?)?\s*", text, re.IGNORECASE)
    if m is None:
        raise SayAsError(f"{text.strip()[:40]!r} is not a clock time")
    hour, minute = int(m[1]), int(m[2] or 0)
    if hour > 24 or minute > 59 or (m[4] and not 1 <= hour <= 12):
        raise SayAsError(f"{text.strip()[:40]!r} is not a valid time")
    words = [cardinal(hour)]
    if minute:
        words.append(f"oh {cardinal(minute)}" if minute < 10 else cardinal(minute))
    elif not m[4]:
        words.append("hundred" if hour > 12 or hour == 0 else "o'clock")
    if m[4]:
        words.append(finish(spell(m[4] + "m"), names=True))
    return " ".join(words)


def _telephone(text: str, _format: str | None) -> str:
    """Digit by digit, a short pause (a comma) between the groups as written: "555-0123"."""
    groups = re.findall(r"\d+", text)
    if not groups:
        raise SayAsError(f"{text.strip()[:40]!r} has no digits")
    spoken = ", ".join(digits(g) for g in groups)
    return ("plus " if text.strip().startswith("+") else "") + spoken


INTERPRETATIONS: Final[dict[str, Callable[[str, str | None], str]]] = {
    "characters": _characters, "spell-out": _characters, "cardinal": _cardinal, "number": _cardinal,
    "ordinal": _ordinal, "digits": _digits, "date": _date, "time": _time, "telephone": _telephone,
}


def say_as(interpret_as: str, text: str, fmt: str | None = None) -> str:
    """The words for ``text`` read as ``interpret_as``; raises SayAsError (or KeyError: unknown)."""
    return INTERPRETATIONS[interpret_as](text, fmt)
