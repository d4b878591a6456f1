"""Amounts of money: "$3.50" -> "three dollars, fifty cents", "USD 5" -> "five dollars".

Runs before the ASCII transliteration, which would turn "£" into "GBP" and "€" into "EUR".
"""

from __future__ import annotations

import re
from typing import Final

from rtvoice.text.numbers import INT, cardinal, decimal, to_int

__all__ = ["expand_currency"]

#: Unit names (singular, plural) of the main and the fractional unit; "" where there is none.
_UNITS: Final[dict[str, tuple[str, str, str, str]]] = {
    "USD": ("dollar", "dollars", "cent", "cents"),
    "GBP": ("pound", "pounds", "penny", "pence"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "JPY": ("yen", "yen", "", ""),
    "CNY": ("yuan", "yuan", "", ""),
    "INR": ("rupee", "rupees", "paisa", "paise"),
    "CHF": ("franc", "francs", "centime", "centimes"),
    "CAD": ("canadian dollar", "canadian dollars", "cent", "cents"),
    "AUD": ("australian dollar", "australian dollars", "cent", "cents"),
    "SEK": ("krona", "kronor", "ore", "ore"),
    "NOK": ("krone", "kroner", "ore", "ore"),
    "DKK": ("krone", "kroner", "ore", "ore"),
    "RUB": ("ruble", "rubles", "kopek", "kopeks"),
    "KRW": ("won", "won", "", ""),
    "BTC": ("bitcoin", "bitcoins", "", ""),
}
_SIGNS: Final = {"$": "USD", "£": "GBP", "€": "EUR", "¥": "JPY", "₹": "INR", "₩": "KRW", "US$": "USD",
                 "C$": "CAD", "A$": "AUD"}
_SCALES: Final = {"k": "thousand", "m": "million", "mn": "million", "bn": "billion", "b": "billion",
                  "thousand": "thousand", "million": "million", "billion": "billion", "trillion": "trillion"}

_AMOUNT: Final = r"(?:(?P<int>" + INT + r"))?(?:\.(?P<frac>\d+))?"
_SCALE: Final = r"(?:\s?(?P<scale>k|mn|bn|m|b)\b|\s+(?P<word>thousand|million|billion|trillion)\b)?"
_SIGN_RE: Final = re.compile(
    r"(?P<minus>(?<![\w-])-)?(?P<sign>US\$|C\$|A\$|[$£€¥₹₩])\s?(?=\.?\d)" + _AMOUNT + _SCALE, re.IGNORECASE
)
_CODES: Final = "|".join(_UNITS)
_CODE_BEFORE_RE: Final = re.compile(r"\b(?P<code>" + _CODES + r")\s?(?=\.?\d)" + _AMOUNT + _SCALE)
_CODE_AFTER_RE: Final = re.compile(
    r"(?<![\w.])(?P<minus>-)?" + _AMOUNT.replace("?:(?P<int>", "(?P<int>", 1) + _SCALE
    + r"\s?(?P<code>" + _CODES + r")\b"
)


def _unit(count: int, singular: str, plural: str) -> str:
    return f"{cardinal(count)} {singular if count == 1 else plural}"


def _speak(code: str, integer: str | None, frac: str | None, scale: str | None, minus: bool) -> str:
    main, mains, sub, subs = _UNITS[code]
    sign = "minus " if minus else ""
    if scale:
        return f"{sign}{decimal(integer, frac)} {_SCALES[scale.lower()]} {mains}"
    if frac and (len(frac) > 2 or not sub):
        return f"{sign}{decimal(integer, frac)} {mains}"
    whole = to_int(integer) if integer else 0
    cents = int(frac.ljust(2, "0")) if frac else 0
    parts = [_unit(whole, main, mains)] if whole or not cents else []
    parts += [_unit(cents, sub, subs)] if cents else []
    return sign + ", ".join(parts)


def _by_sign(match: re.Match[str]) -> str:
    if match["int"] is None and match["frac"] is None:
        return match[0]
    return _speak(_SIGNS[match["sign"].upper()], match["int"], match["frac"], match["scale"] or match["word"],
                  bool(match["minus"]))


def _by_code(match: re.Match[str]) -> str:
    if match["int"] is None and match["frac"] is None:
        return match[0]
    minus = bool(match.groupdict().get("minus"))
    return _speak(match["code"], match["int"], match["frac"], match["scale"] or match["word"], minus)


def expand_currency(text: str) -> str:
    """Spell amounts of money written with a sign ("$", "£", "€", "¥", "₹") or an ISO code.

    "$3.50" -> "three dollars, fifty cents", "€1,234.56", "USD 5" and "5 USD" -> "five
    dollars", "$2.5 million" and "$2.5m" -> "two point five million dollars", "-$4" ->
    "minus four dollars". Must run before the ASCII transliteration.

    Args:
        text: Raw text; the currency signs must still be the Unicode characters.

    Returns:
        ``text`` with every amount of money spelled out; everything else untouched.
    """
    text = _SIGN_RE.sub(_by_sign, text)
    text = _CODE_BEFORE_RE.sub(_by_code, text)
    return _CODE_AFTER_RE.sub(_by_code, text)
