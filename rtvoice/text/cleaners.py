"""English text cleaning compatible with NVIDIA's Tacotron 2 ``english_cleaners``.

The NGC checkpoints were trained on text that went through: ASCII transliteration,
lowercasing, number expansion, abbreviation expansion and whitespace collapsing, in that
order. Speaking text cleaned any other way makes the model mispronounce it, so
:func:`normalize` repeats those steps. It adds only what keeps unusual input from
crashing or babbling: control characters are removed and amounts of money are spelled
before the transliteration can turn "£" into "GBP".
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from anyascii import anyascii

from rtvoice.errors import TextError
from rtvoice.text.numbers import expand_currency, expand_numbers

__all__ = ["ABBREVIATIONS", "decode_utf8", "normalize", "normalize_fragment"]

#: NVIDIA's abbreviations (matched lowercase, with their dot) and what they are read as.
ABBREVIATIONS: Final[tuple[tuple[str, str], ...]] = (
    ("mrs", "misess"),
    ("mr", "mister"),
    ("dr", "doctor"),
    ("st", "saint"),
    ("co", "company"),
    ("jr", "junior"),
    ("maj", "major"),
    ("gen", "general"),
    ("drs", "doctors"),
    ("rev", "reverend"),
    ("lt", "lieutenant"),
    ("hon", "honorable"),
    ("sgt", "sergeant"),
    ("capt", "captain"),
    ("esq", "esquire"),
    ("ltd", "limited"),
    ("col", "colonel"),
    ("ft", "fort"),
)

_ABBREVIATION_RES: Final = tuple(
    (re.compile(rf"\b{short}\."), long) for short, long in ABBREVIATIONS
)

_WHITESPACE_RE: Final = re.compile(r"\s+")
_NON_ASCII_RE: Final = re.compile(r"[^\x00-\x7f]")

#: Characters the transliteration leaves that have no symbol but an obvious reading.
#: Double quotes carry no sound; dropping them here spares a warning per quoted sentence.
_PUNCTUATION: Final = str.maketrans({"&": " and ", "%": " percent ", "[": "(", "]": ")", '"': ""})


def _without_controls(text: str) -> str:
    """Drop control and format characters (NUL, escape codes, zero-width spaces, BOMs).

    Whitespace controls (tab, newline, ...) become spaces instead, so words stay apart.
    """
    return "".join(
        " " if char.isspace() else char
        for char in text
        if char.isspace() or unicodedata.category(char) not in ("Cc", "Cf")
    )


def _transliterate(match: re.Match[str]) -> str:
    """Transliterate one non-ASCII character with anyascii ("é" -> "e", "中" -> "Zhong").

    anyascii spells emoji by name (":grinning:"); spoken, that is noise, so they go.
    """
    ascii_text = anyascii(match[0])
    is_emoji = len(ascii_text) > 2 and ascii_text[0] == ascii_text[-1] == ":"
    return "" if is_emoji else ascii_text


def normalize_fragment(text: str) -> str:
    """Clean a piece of a longer text: like :func:`normalize`, but keep edge spaces.

    :func:`rtvoice.text.text_to_ids` cleans the text between ARPAbet groups one piece at
    a time; trimming each piece would glue the words to the phonemes around them.

    Args:
        text: Any Unicode text, without ARPAbet braces.

    Returns:
        The cleaned text; a leading or trailing space survives as one space.
    """
    text = expand_currency(_without_controls(text))
    text = _NON_ASCII_RE.sub(_transliterate, text).lower()
    text = expand_numbers(text)
    for regex, replacement in _ABBREVIATION_RES:
        text = regex.sub(replacement, text)
    text = text.translate(_PUNCTUATION)
    return _WHITESPACE_RE.sub(" ", text)


def normalize(text: str) -> str:
    """Clean English text the way NVIDIA's ``english_cleaners`` did for training.

    Steps: remove control characters, spell money ("$3.50" -> "three dollars, fifty
    cents"), transliterate to ASCII with anyascii ("café" -> "cafe"), lowercase, spell
    numbers (cardinals, decimals, ordinals, percentages, negatives, years), expand
    NVIDIA's abbreviations ("dr." -> "doctor"), collapse whitespace and trim.

    Args:
        text: Any Unicode text.

    Returns:
        Lowercase ASCII text without digits. It may still hold characters outside the
        symbol set (for example "#"); :func:`rtvoice.text.text_to_ids` drops those.
    """
    return normalize_fragment(text).strip()


def decode_utf8(data: bytes) -> str:
    """Decode text received at an edge (CLI, MQTT, HTTP) as strict UTF-8.

    Replacing bad bytes would speak garbage; the caller should refuse the message
    instead, so this raises our error with the offending byte and where it is.

    Args:
        data: The raw bytes.

    Returns:
        The decoded text.

    Raises:
        TextError: ``data`` is not valid UTF-8; ``length`` is the number of bytes.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = (
            f"Text is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}). "
            f"Note: {exc.reason}, in {len(data)} bytes. Hint: send the text encoded as UTF-8."
        )
        raise TextError(message, length=len(data)) from exc
