"""Numbers to words, the way NVIDIA's Tacotron 2 was trained to hear them.

The checkpoints learned from LJSpeech text normalised by keithito's ``english_cleaners``:
cardinals without "and", years read in pairs ("nineteen eighty-four"), "three dollars,
fifty cents". We follow that shape so the voice sounds as it did in training, and use
num2words for every number word rather than tables of our own.
"""

from __future__ import annotations

import re
from typing import Final

from num2words import num2words

__all__ = ["expand_currency", "expand_numbers"]

#: Unit names (singular, plural) of the main and the fractional unit, per currency sign.
#: Runs before the ASCII transliteration, which would turn "£" into "GBP".
_CURRENCIES: Final[dict[str, tuple[str, str, str, str]]] = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}

_INT: Final = r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)"

_CURRENCY_RE: Final = re.compile(
    r"(?P<minus>(?<![\w-])-)?(?P<sign>[$£€])\s?(?=\.?\d)"
    r"(?:" + _INT + r")?(?:\.(?P<frac>\d+))?"
    r"(?:\s+(?P<scale>thousand|million|billion|trillion)\b)?",
    re.IGNORECASE,
)

# A minus sign counts only where it cannot be a hyphen or a range dash ("1990-95").
_NUMBER_RE: Final = re.compile(
    r"(?P<minus>(?<![\w-])-)?"
    + _INT
    + r"(?:(?P<ord>st|nd|rd|th)\b|(?:\.(?P<frac>\d+))?(?P<pct>\s?%)?)"
)

#: Digit strings at least this long (phone, card and order numbers) are read digit by digit.
_DIGITWISE_MIN_LEN: Final = 16


def _words(number: int, to: str = "cardinal") -> str:
    """Spell ``number`` with num2words, without the "and" NVIDIA's training text lacks."""
    try:
        spelled: str = num2words(number, to=to)
    except (OverflowError, NotImplementedError):
        # Beyond num2words' named powers of ten: read the digits instead of failing.
        return _digits(str(abs(number)))
    return spelled.replace(" and ", " ")


def _digits(digits: str) -> str:
    """Read a digit string one digit at a time ("007" -> "zero zero seven")."""
    return " ".join(_words(int(digit)) for digit in digits)


def _decimal(integer: str, fraction: str | None) -> str:
    """Spell ``integer.fraction`` as "three point one four"; the fraction is read per digit."""
    spelled = _words(int(integer)) if integer else "zero"
    return f"{spelled} point {_digits(fraction)}" if fraction else spelled


def _unit(count: int, singular: str, plural: str) -> str:
    return f"{_words(count)} {singular if count == 1 else plural}"


def _expand_currency(match: re.Match[str]) -> str:
    main, mains, sub, subs = _CURRENCIES[match["sign"]]
    integer = (match["int"] or "").replace(",", "")
    frac = match["frac"]
    minus = "minus " if match["minus"] else ""
    if match["scale"]:
        return f"{minus}{_decimal(integer, frac)} {match['scale'].lower()} {mains}"
    if frac and len(frac) > 2:
        return f"{minus}{_decimal(integer, frac)} {mains}"
    whole = int(integer or "0")
    cents = int(frac.ljust(2, "0")) if frac else 0
    parts = [_unit(whole, main, mains)] if whole else []
    parts += [_unit(cents, sub, subs)] if cents else []
    return minus + (", ".join(parts) or f"zero {mains}")


def _expand_number(match: re.Match[str]) -> str:
    raw = match["int"]
    integer = raw.replace(",", "")
    minus = "minus " if match["minus"] else ""
    if match["ord"]:
        return minus + _words(int(integer), to="ordinal")
    plain = raw == integer and not (match["frac"] or match["pct"] or minus)
    if plain and (len(integer) >= _DIGITWISE_MIN_LEN or (len(integer) > 1 and integer[0] == "0")):
        spelled = _digits(integer)
    elif plain and 1000 < int(integer) < 3000:
        # NVIDIA's range for year-style reading: "1984" -> "nineteen eighty-four".
        spelled = _words(int(integer), to="year")
    else:
        spelled = _decimal(integer, match["frac"])
    return minus + spelled + (" percent" if match["pct"] else "")


def expand_currency(text: str) -> str:
    """Spell amounts of money: "$3.50" -> "three dollars, fifty cents".

    Handles "$", "£" and "€" before the amount, comma grouping, a leading minus and a
    following scale word ("$2.5 million" -> "two point five million dollars"). Must run
    before the ASCII transliteration, which rewrites the pound and euro signs.

    Args:
        text: Raw text; the currency signs must still be the Unicode characters.

    Returns:
        ``text`` with every amount of money spelled out; everything else untouched.
    """
    return _CURRENCY_RE.sub(_expand_currency, text)


def expand_numbers(text: str) -> str:
    """Spell cardinals, decimals, ordinals, percentages and negative numbers.

    "1,000,000" -> "one million", "3.5" -> "three point five", "22nd" -> "twenty-second",
    "50%" -> "fifty percent", "-4" -> "minus four", and bare numbers between 1000 and
    3000 are read as years ("1984" -> "nineteen eighty-four"), as NVIDIA's cleaners do.

    Args:
        text: ASCII text, lowercased (ordinal suffixes are matched in lowercase).

    Returns:
        ``text`` without any digits left.
    """
    return _NUMBER_RE.sub(_expand_number, text)
