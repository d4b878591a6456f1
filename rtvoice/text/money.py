"""Amounts of money: "$3.50" -> "three dollars, fifty cents", "USD 5" -> "five dollars".

Runs before the ASCII transliteration, which would turn "£" into "GBP" and "€" into "EUR".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from rtvoice.text.numbers import INT, attributive, cardinal, decimal, to_int

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
                  "t": "trillion", "tn": "trillion",
                  "thousand": "thousand", "million": "million", "billion": "billion", "trillion": "trillion"}

_AMOUNT: Final = r"(?:(?P<int>" + INT + r"))?(?:\.(?P<frac>\d+))?"
# "$2.9T": a glued "t" is trillions; spaced, it is a word ("$5 t-shirt").
_SCALE: Final = r"(?:\s?(?P<scale>k|mn|bn|m|b|(?<=\d)tn|(?<=\d)t)\b|\s+(?P<word>thousand|million|billion|trillion)\b)?"
# A range shares the currency: "$5-10" and "$5-$10" -> "five to ten dollars", "20-30 EUR".
_SIGN_RANGE: Final = r"(?:(?P<low>" + INT + r")\s?[-\u2013]\s?(?:US\$|C\$|A\$|[$£€¥₹₩])?(?=\d))?"
_SIGN_RE: Final = re.compile(
    r"(?P<minus>(?<![\w-])-)?(?P<sign>US\$|C\$|A\$|[$£€¥₹₩])\s?(?=\.?\d)" + _SIGN_RANGE + _AMOUNT + _SCALE,
    re.IGNORECASE,
)
# "99p", "50p coin": pence written the British way (one or two digits; "1080p" is a video mode).
_PENCE_RE: Final = re.compile(r"(?<![\w.,])(?P<n>\d{1,2})p\b(?!\.m\b)")
_DECIMAL_COMMA_RE: Final = re.compile(
    r"(?:(?<=[€£$¥]\d)|(?<=[€£$¥]\d\d)|(?<=[€£$¥]\d\d\d)),(?=\d\d(?!\d|[.,]\d))"
    r"|(?:(?<=(?<![\d,.])\d)|(?<=(?<![\d,.])\d\d)|(?<=(?<![\d,.])\d\d\d)),(?=\d\d\s?EUR\b)"
)
# "5,99 €": the sign after the amount, as in much of Europe.
_DECIMAL_COMMA_HINT_RE: Final = re.compile(r",\d\d(?!\d)")
_EURO_AFTER_RE: Final = re.compile(r"(?<![\d,.])(?P<int>\d{1,3}),(?P<frac>\d\d)\s?€")
_CODES: Final = "|".join(_UNITS)
#: "$9.99/month" -> "... a month", "$20/person" -> "... per person": what a price is for, after the slash.
_PER: Final = {"mo": "a month", "month": "a month", "yr": "a year", "year": "a year", "wk": "a week", "week": "a week",
               "day": "a day", "night": "a night", "hr": "an hour", "hour": "an hour", "person": "per person",
               "head": "per head", "kg": "per kilogram", "lb": "per pound", "gal": "a gallon", "gallon": "a gallon",
        "liter": "a liter", "litre": "a liter"}
_PER_RE: Final = re.compile(r"\s?/\s?(?P<per>" + "|".join(_PER) + r")\b")
_CODE_BEFORE_RE: Final = re.compile(r"\b(?P<code>" + _CODES + r")\s?(?=\.?\d)" + _AMOUNT + _SCALE)
_CODE_AFTER_RE: Final = re.compile(
    r"(?<![\w.,-])(?:(?P<low>" + INT + r")\s?[-\u2013]\s?)?(?P<minus>(?<![\w-])-)?"
    + _AMOUNT.replace("?:(?P<int>", "(?P<int>", 1) + _SCALE + r"\s?(?P<code>" + _CODES + r")\b"
)


def _unit(count: int, singular: str, plural: str) -> str:
    return f"{cardinal(count)} {singular if count == 1 else plural}"


def _speak(code: str, integer: str | None, frac: str | None, scale: str | None, minus: bool,
           before_noun: bool = False) -> str:
    """Say an amount; ``before_noun`` ("a $20 bill") takes the singular unit, as people say it."""
    main, mains, sub, subs = _UNITS[code]
    sign = "minus " if minus else ""
    if scale:
        return f"{sign}{decimal(integer, frac)} {_SCALES[scale.lower()]} {main if before_noun else mains}"
    if frac and (len(frac) > 2 or not sub):
        return f"{sign}{decimal(integer, frac)} {mains}"
    if before_noun and not (frac and int(frac)):
        return f"{sign}{decimal(integer, None)} {main}"
    whole = to_int(integer) if integer else 0
    cents = int(frac.ljust(2, "0")) if frac else 0
    if before_noun and cents:  # "a $1.50 coffee": "a one dollar fifty coffee", "a fifty cent stamp"
        return sign + (f"{cardinal(whole)} {main} {cardinal(cents)}" if whole else f"{cardinal(cents)} {sub}")
    parts = [_unit(whole, main, mains)] if whole or not cents else []
    parts += [_unit(cents, sub, subs)] if cents else []
    return sign + ", ".join(parts)


def _with_low(match: re.Match[str], code: str, spoken: str) -> str:
    """Prefix the low end of a range: "five to ten dollars", "one dollar to two dollars, fifty cents"."""
    low = match.groupdict().get("low")
    if not low:
        return spoken
    if match["frac"] and not (match["scale"] or match["word"]):
        main, mains, _, _ = _UNITS[code]
        return f"{_unit(to_int(low), main, mains)} to {spoken}"
    return f"{cardinal(to_int(low))} to {spoken}"


def _per(text: str, end: int) -> tuple[str, int]:
    """What the amount ending at ``end`` is for ("/month" -> " a month"), and where that ends."""
    per = _PER_RE.match(text, end)
    return ("", end) if per is None else (" " + _PER[per["per"]], per.end())


def _with_per(regex: re.Pattern[str], speak: Callable[[re.Match[str]], str], text: str) -> str:
    """``regex.sub(speak, text)``, reading a "/month" right after an amount as "a month"."""
    parts: list[str] = []
    start = 0
    for match in regex.finditer(text):
        per, end = _per(text, match.end())
        spoken = speak(match)
        parts += [text[start:match.start()], spoken + (per if spoken != match[0] else "")]
        start = end if spoken != match[0] else match.end()
    return "".join(parts) + text[start:]


def _by_sign(match: re.Match[str]) -> str:
    if match["int"] is None and match["frac"] is None:
        return match[0]
    before_noun = attributive(match.string, match.start(), match.end())
    code = _SIGNS[match["sign"].upper()]
    return _with_low(match, code, _speak(code, match["int"], match["frac"], match["scale"] or match["word"],
                                         bool(match["minus"]), before_noun))


def _by_code(match: re.Match[str]) -> str:
    if match["int"] is None and match["frac"] is None:
        return match[0]
    minus = bool(match.groupdict().get("minus"))
    before_noun = attributive(match.string, match.start(), match.end())
    return _with_low(match, match["code"], _speak(match["code"], match["int"], match["frac"],
                                                  match["scale"] or match["word"], minus, before_noun))


def expand_currency(text: str) -> str:
    """Spell amounts of money written with a sign ("$", "£", "€", "¥", "₹") or an ISO code.

    "$3.50" -> "three dollars, fifty cents", "€1,234.56", "USD 5" and "5 USD" -> "five
    dollars", "$2.5 million" and "$2.5m" -> "two point five million dollars", "-$4" ->
    "minus four dollars". A range shares the currency ("$5-10" -> "five to ten dollars"),
    and an amount before a noun takes the singular ("a $20 bill" -> "a twenty dollar bill");
    "$9.99/month" is "nine dollars, ninety-nine cents a month".
    Must run before the ASCII transliteration.

    Args:
        text: Raw text; the currency signs must still be the Unicode characters.

    Returns:
        ``text`` with every amount of money spelled out; everything else untouched.
    """
    if _DECIMAL_COMMA_HINT_RE.search(text):  # "€5,99", "5,99 €": a decimal comma (a thousands group has three)
        text = _EURO_AFTER_RE.sub(lambda m: f"€{m['int']}.{m['frac']}", _DECIMAL_COMMA_RE.sub(".", text))
    text = _with_per(_SIGN_RE, _by_sign, text)
    text = _PENCE_RE.sub(lambda m: _unit(int(m["n"]), "penny", "pence"), text)
    text = _with_per(_CODE_BEFORE_RE, _by_code, text)
    return _with_per(_CODE_AFTER_RE, _by_code, text)
