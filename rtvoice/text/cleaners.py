"""English text normalization: what users write -> what the voice should say.

The NGC checkpoints (and ours, trained the same way) learned from text that went through
NVIDIA's ``english_cleaners``: ASCII transliteration, lowercasing, number and abbreviation
expansion, whitespace collapsing. :func:`normalize` ends with those steps, so the voices
hear what they learned; before them it reads the semiotic classes announcements are full
of, each in its own module, in an order where none can spoil another's input:

1. URLs, e-mail addresses and telephone numbers (:mod:`rtvoice.text.contacts`);
2. money (:mod:`rtvoice.text.money`), before the transliteration turns "£" into "GBP";
3. times and dates (:mod:`rtvoice.text.timedate`);
4. measures and units (:mod:`rtvoice.text.measures`);
5. abbreviations in context, Roman numerals (:mod:`rtvoice.text.roman`), letters with
   digits, acronyms (:mod:`rtvoice.text.words`), which need the text's case;
6. the numbers left (:mod:`rtvoice.text.numbers`), then symbols by name.

The output holds only lowercase letters, spaces and the punctuation every voice's symbol
set has (``!'(),.:;?-``), so nothing is dropped later without a word.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from anyascii import anyascii

from rtvoice.errors import TextError
from rtvoice.text import letters
from rtvoice.text.contacts import expand_contacts
from rtvoice.text.measures import expand_measures
from rtvoice.text.money import expand_currency
from rtvoice.text.numbers import expand_decades, expand_numbers
from rtvoice.text.roman import expand_roman
from rtvoice.text.timedate import expand_dates, expand_times
from rtvoice.text.words import (
    ABBREVIATIONS,
    expand_abbreviations,
    expand_acronyms,
    expand_alphanumerics,
    expand_symbols,
)

__all__ = ["ABBREVIATIONS", "SPEAKABLE", "decode_utf8", "normalize", "normalize_fragment"]

#: Every character :func:`normalize` may output: a subset of every voice's symbols.
SPEAKABLE: Final = frozenset("abcdefghijklmnopqrstuvwxyz !'(),.:;?-")

_WHITESPACE_RE: Final = re.compile(r"\s+")
_DIGIT_RE: Final = re.compile(r"\d")
_SPACE_BEFORE_PUNCT_RE: Final = re.compile(r" +(?=[,.;:!?)])|(?<=\() +")
_REPEATED_COMMA_RE: Final = re.compile(r",(?:\s*,)+")
# An abbreviation's dot right before a comma, semicolon or colon ("Bart., he", "viz.:"): the pause is the
# latter's. An ellipsis ("wait..., then") stays.
_DOT_BEFORE_PAUSE_RE: Final = re.compile(r"(?<!\.)\.(?=[,;:])")
#: Characters kept through the early transliteration because a later step reads them.
_KEEP: Final = "£€¥₹₩°²³×±"
_NON_ASCII_RE: Final = re.compile(rf"[^\x00-\x7f{_KEEP}]")
_VULGAR_FRACTIONS: Final = {"½": " 1/2", "⅓": " 1/3", "⅔": " 2/3", "¼": " 1/4", "¾": " 3/4", "⅕": " 1/5",
                            "⅛": " 1/8", "⅜": " 3/8", "⅝": " 5/8", "⅞": " 7/8"}
_FRACTIONS_RE: Final = re.compile("[" + "".join(_VULGAR_FRACTIONS) + "]")
# "Meeting moved ➡️ 3 PM", "London → Paris": an arrow is "to" (anyascii drops the emoji one, keeps "->").
_ARROWS_RE: Final = re.compile("[\u2192\u27a1\u21d2]\ufe0f?")
# A colon glued between words ("one:twenty-two", as LJSpeech writes times) is a word break:
# read as written, a neural voice says "colon" there.
_GLUED_COLON_RE: Final = re.compile(r"(?<=[a-z]):(?=[a-z])")
_NUMBER_WORD: Final = (r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
                       r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|"
                       r"ninety|hundred|thousand|million|billion|point|minus)(?:-[a-z]+)?")
# "between 2-4 PM" was read "between two to four p m": after "between" a range's "to" is "and".
_BETWEEN_RANGE_RE: Final = re.compile(
    r"\b(?P<low>between (?:" + _NUMBER_WORD + r" ){0,5}?" + _NUMBER_WORD + r"(?: \x01?[ap] \x01?m)?) to "
    r"(?=" + _NUMBER_WORD + ")"
)
_LEFTOVER_RE: Final = re.compile(r"[^abcdefghijklmnopqrstuvwxyz !'(),.:;?\-]")
# What a second pass would reread in the output of text glued from symbols and abbreviations ("1Dr.",
# "x.com" after "×", "d:T6", "vS+"): a dot or colon inside a word, a "dr.", "st." or "vs" left over, a
# spaced dash, two commas.
# Each is searched only when a cheap test finds its mark: most output holds none.
_DOT_IN_WORD_RE: Final = re.compile(r"\.[^\s.')]")
_COLON_IN_WORD_RE: Final = re.compile(r":[a-z]")
_LEFT_ABBREVIATION_RE: Final = re.compile(r"(?<![a-z'])(?:dr\.|st\.|vs\b)")
#: How many times output holding such text is normalized again (twice has been enough).
_MAX_REREADS: Final = 3


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


def normalize_fragment(text: str, day_first: bool = False, letter_names: bool = False) -> str:
    """Normalize a piece of a longer text: like :func:`normalize`, but keep edge spaces.

    :func:`rtvoice.text.text_to_ids` cleans the text between ARPAbet groups one piece at
    a time; trimming each piece would glue the words to the phonemes around them.

    Args:
        text: Any Unicode text, without ARPAbet braces.
        day_first: Read ambiguous numeric dates ("04/05/2026") as day/month.
        letter_names: Write spelled letters as their names ("bee bee see"), as synthesis does.

    Returns:
        The normalized text; a leading or trailing space survives as one space.
    """
    text = _FRACTIONS_RE.sub(lambda m: _VULGAR_FRACTIONS[m[0]], _without_controls(text))
    text = _ARROWS_RE.sub(" to ", text)
    text = _NON_ASCII_RE.sub(_transliterate, text)
    text = expand_contacts(text)
    # Money, times, dates, measures and numbers all start at a digit, and most sentences have
    # none (LJSpeech's have none): skipping them there halves the time a sentence takes.
    has_digit = _DIGIT_RE.search(text) is not None
    if has_digit:
        text = expand_currency(text)
        text = expand_times(text)
        text = expand_dates(text, day_first)
        text = expand_measures(expand_decades(text))
    text = expand_roman(expand_abbreviations(text))
    if has_digit:
        text = expand_alphanumerics(text)
    text = expand_acronyms(text)
    if has_digit:
        text = expand_numbers(text)
    text = _GLUED_COLON_RE.sub(" ", anyascii(expand_symbols(text)).lower())
    if has_digit and "between" in text:
        text = _BETWEEN_RANGE_RE.sub(lambda m: m["low"] + " and ", text)
    text = _LEFTOVER_RE.sub(" ", letters.finish(text, letter_names))
    text = _REPEATED_COMMA_RE.sub(",", _WHITESPACE_RE.sub(" ", text))
    return _DOT_BEFORE_PAUSE_RE.sub("", _SPACE_BEFORE_PUNCT_RE.sub("", text))


def _rereads(spoken: str) -> bool:
    """Whether a second pass would reread something in ``spoken``, the output of :func:`normalize_fragment`."""
    return (_DOT_IN_WORD_RE.search(spoken) is not None
            or ":" in spoken and _COLON_IN_WORD_RE.search(spoken) is not None
            or ("dr." in spoken or "st." in spoken or "vs" in spoken)
            and _LEFT_ABBREVIATION_RE.search(spoken) is not None
            or " - " in spoken or ",," in spoken or ", ," in spoken)


def normalize(text: str, day_first: bool = False, letter_names: bool = False) -> str:
    """Normalize English text for speech: what users write -> what the voice should say.

    "The 8:15 to Leeds" -> "the eight fifteen to leeds", "Call 555-0123" -> "call five five
    five, zero one two three", "Dr. Smith lives at 221B Baker St." -> "doctor smith lives at
    two twenty-one b baker street.", "72°F" -> "seventy-two degrees fahrenheit". See the
    module docstring for the classes and their order.

    Args:
        text: Any Unicode text.
        day_first: Read ambiguous numeric dates ("04/05/2026") as day/month (the voice's
            ``text.date_order``); unambiguous ones ("25/12/2026") are read right either way.
        letter_names: Write letters read one by one as their names: "p m" -> "pee em",
            "b b c" -> "bee bee see" (the voice's ``text.letter_names``; see
            :mod:`rtvoice.text.letters` for why synthesis does).

    Returns:
        Lowercase ASCII text without digits, holding only :data:`SPEAKABLE` characters.
        Normalizing it again changes nothing (tests/text/test_text_idempotent.py): output still
        holding what a second pass rereads (text glued from symbols and abbreviations: "1Dr.",
        "×.com") is normalized again until it is stable.
    """
    spoken = normalize_fragment(text, day_first, letter_names).strip()
    for _ in range(_MAX_REREADS):  # normalizing the output again must change nothing
        if not _rereads(spoken):
            break
        again = normalize_fragment(spoken, day_first, letter_names).strip()
        if again == spoken:
            break
        spoken = again
    return spoken


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
