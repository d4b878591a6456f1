"""Telephone numbers, URLs and e-mail addresses: read the way people dictate them.

"555-0123" -> "five five five, zero one two three"; "rtvoice.dev/docs" -> "rtvoice dot dev
slash docs"; "a@b.com" -> "a at b dot com". A number reader would say "five hundred
fifty-five" and a plain cleaner would leave "@" and "." for the voice to mumble.
"""

from __future__ import annotations

import re
from typing import Final

from rtvoice.text.letters import spell
from rtvoice.text.numbers import digits

__all__ = ["expand_contacts"]

#: Top-level domains that make "word.word" a host name rather than two sentences glued together.
_TLDS: Final = (
    "com|org|net|edu|gov|mil|int|io|dev|ai|app|co|info|biz|me|tv|fm|ly|sh|xyz|online|site|tech|cloud|page|"
    "uk|us|de|fr|es|it|nl|be|ch|at|se|no|dk|fi|pl|cz|ie|pt|ru|cn|jp|kr|in|au|nz|ca|br|mx|eu|za|local|lan|home"
)
_HOST: Final = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+(?:" + _TLDS + r")\b"
_EMAIL_RE: Final = re.compile(r"(?<![\w.+-])(?P<user>[A-Za-z0-9._%+-]+)@(?P<host>" + _HOST + r")", re.IGNORECASE)
_URL_RE: Final = re.compile(
    r"(?<![\w@/.-])(?:(?P<scheme>https?|ftp)://)?(?P<host>(?:www\.)?" + _HOST + r"|localhost(?=:\d))"
    r"(?::(?P<port>\d{1,5}))?(?P<path>/[\w\-./%~+=&?#]*[\w/])?",
    re.IGNORECASE,
)
_SCHEME_URL_RE: Final = re.compile(r"(?P<scheme>https?|ftp)://(?P<rest>[\w\-./%~+=&?#:@]*[\w/])", re.IGNORECASE)

_PHONE_RES: Final = (
    # +44 20 7946 0958, +1 (555) 123-4567, +49-30-1234567
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,5}\)?){1,5}(?![\w-]|\.\d)"),
    # (555) 123-4567
    re.compile(r"(?<!\w)\(\d{3}\)\s?\d{3}[\s.-]\d{4}(?!\w)"),
    # 555-123-4567, 555.123.4567, 555-0123
    re.compile(r"(?<![\w.,-])\d{3}([.-])\d{3}\1\d{4}(?![\w-]|\.\d)"),
    re.compile(r"(?<![\w.,-])\d{3}-\d{4}(?![\w-]|\.\d)"),
    # 1-800-555-0199, 1.800.555.0199: a North American number dialled with its leading 1
    re.compile(r"(?<![\w.,+-])1([.-])\d{3}\1\d{3}\1\d{4}(?![\w-]|\.\d)"),
    # 819 939 4321: North American groups with spaces; the area code and exchange never start with 0 or 1
    re.compile(r"(?<![\w.,-])[2-9]\d{2} [2-9]\d{2} \d{4}(?![\w-]|\.\d)"),
    # 0113 496 0000, 020 7946 0958 (leading zero, groups of digits): UK-style numbers
    re.compile(r"(?<![\w.,-])0\d{2,4}[\s-]\d{3,4}[\s-]?\d{3,4}(?![\w-]|\.\d)"),
    # 4111 1111 1111 1111: card numbers in groups of four
    re.compile(r"(?<![\w.,-])\d{4}(?: \d{4}){2,4}(?![\w-]|\.\d)"),
)
_GROUP_RE: Final = re.compile(r"\d+")

_SYMBOL_WORDS: Final = {".": "dot", "/": "slash", "-": "dash", "_": "underscore", ":": "colon", "@": "at",
                        "?": "question mark", "=": "equals", "&": "and", "#": "hash", "%": "percent", "+": "plus",
                        "~": "tilde"}
_PART_RE: Final = re.compile(r"[A-Za-z]+|\d+|[^A-Za-z\d]")
_SPELLED: Final = frozenset({"www"})


def _say_phone(match: re.Match[str]) -> str:
    """Digit by digit, a comma (a short pause) between the groups as written."""
    text = match[0]
    groups = [digits(group) for group in _GROUP_RE.findall(text)]
    return ("plus " if text.startswith("+") else "") + ", ".join(groups)


def _say_address(text: str) -> str:
    """Speak a host, path or user name: words as words, digits one by one, symbols by name."""
    words: list[str] = []
    for part in _PART_RE.findall(text):
        if part.isascii() and part.isdigit():
            words.append(digits(part))
        elif part.isalpha():
            lower = part.lower()
            words.append(spell(lower) if lower in _SPELLED or not any(c in "aeiouy" for c in lower) else lower)
        elif part in _SYMBOL_WORDS:
            words.append(_SYMBOL_WORDS[part])
    return " ".join(words)


def _say_url(match: re.Match[str]) -> str:
    spoken = _say_address(match["host"])
    if match["port"]:
        spoken += " colon " + digits(match["port"])
    if match["path"]:
        spoken += " " + _say_address(match["path"])
    return spoken


def expand_contacts(text: str) -> str:
    """Read e-mail addresses, URLs and telephone numbers as dictated.

    The "https://" of a URL is not read (nobody says it); "www" is spelled. Telephone
    numbers are recognized by their shape ("555-0123", "(555) 123-4567", "819 939 4321",
    "1-800-555-0199", "+44 20 7946 0958", "0113 496 0000", card numbers in groups of four)
    and read digit by digit.
    """
    text = _EMAIL_RE.sub(lambda m: f"{_say_address(m['user'])} at {_say_address(m['host'])}", text)
    text = _URL_RE.sub(_say_url, text)
    text = _SCHEME_URL_RE.sub(lambda m: _say_address(m["rest"]), text)
    for regex in _PHONE_RES:
        text = regex.sub(_say_phone, text)
    return text
