"""Measures: a number and its unit, "5 km" -> "five kilometers", "72°F" -> "seventy-two degrees fahrenheit".

A unit symbol alone is ambiguous ("m" is meters after a number and a letter elsewhere),
so units are read only right after a number, in the singular for exactly one.
"""

from __future__ import annotations

import re
from typing import Final

from rtvoice.text.numbers import INT, attributive, cardinal, fraction, number

__all__ = ["expand_measures"]

#: Unit symbol -> (singular, plural). Case matters: "mb" is not "MB", "M" is not "m".
_UNITS: Final[dict[str, tuple[str, str]]] = {
    "km": ("kilometer", "kilometers"), "m": ("meter", "meters"), "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"), "nm": ("nanometer", "nanometers"), "mi": ("mile", "miles"),
    "ft": ("foot", "feet"), "yd": ("yard", "yards"), "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"), "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"), "l": ("liter", "liters"), "L": ("liter", "liters"),
    "ml": ("milliliter", "milliliters"), "mL": ("milliliter", "milliliters"), "gal": ("gallon", "gallons"),
    "mph": ("mile per hour", "miles per hour"), "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"), "kmh": ("kilometer per hour", "kilometers per hour"),
    "m/s": ("meter per second", "meters per second"), "Hz": ("hertz", "hertz"), "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"), "GHz": ("gigahertz", "gigahertz"),
    "KB": ("kilobyte", "kilobytes"), "kB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"), "Mbps": ("megabit per second",
    "megabits per second"), "Gbps": ("gigabit per second", "gigabits per second"), "W": ("watt", "watts"),
    "kW": ("kilowatt", "kilowatts"), "MW": ("megawatt", "megawatts"), "kWh": ("kilowatt hour", "kilowatt hours"),
    "V": ("volt", "volts"), "mA": ("milliamp", "milliamps"), "mAh": ("milliamp hour", "milliamp hours"),
    "dB": ("decibel", "decibels"), "ms": ("millisecond", "milliseconds"), "s": ("second", "seconds"),
    "sec": ("second", "seconds"), "min": ("minute", "minutes"), "mins": ("minute", "minutes"),
    "h": ("hour", "hours"), "hr": ("hour", "hours"), "hrs": ("hour", "hours"), "ha": ("hectare", "hectares"),
    "km²": ("square kilometer", "square kilometers"), "m²": ("square meter", "square meters"),
    "sq ft": ("square foot", "square feet"), "m³": ("cubic meter", "cubic meters"), "kcal": ("calorie", "calories"),
    "°C": ("degree celsius", "degrees celsius"), "°F": ("degree fahrenheit", "degrees fahrenheit"),
    "°K": ("kelvin", "kelvin"), "°": ("degree", "degrees"), "tsp": ("teaspoon", "teaspoons"),
    "tbsp": ("tablespoon", "tablespoons"),
    "%": ("percent", "percent"), "x": ("times", "times"), "mpg": ("mile per gallon", "miles per gallon"),
    "pts": ("point", "points"),
    "bpm": ("beat per minute", "beats per minute"),
}
_NO_SPACE_ONLY: Final = frozenset({"x", "°", "s", "h", "V", "W", "L"})
"""Units read only when glued to the number ("5x", "3h"): spaced, they are usually words ("5 s" aside)."""

_UNIT_ALT: Final = "|".join(re.escape(unit) for unit in sorted(_UNITS, key=len, reverse=True))
_NUMBER: Final = r"(?P<minus>(?<![\w-])[-−])?(?P<value>(?:" + INT + r")(?:\.\d+)?|\.\d+)"
# A range shares its unit: "5-10 km" -> "five to ten kilometers", "10-20%".
_LOW: Final = r"(?:(?P<low>(?:" + INT + r")(?:\.\d+)?)\s?[-\u2013]\s?)?"
_MEASURE_RE: Final = re.compile(
    r"(?<![\w.,/-])" + _LOW + _NUMBER + r"(?P<space>\s?)(?P<unit>" + _UNIT_ALT + r")(?![\w²³])"
)
# "1 1/2 tbsp", "3/4 tsp": a fraction of a unit ("one and a half tablespoons", "three quarters of a teaspoon").
# Spelled, too: "1/2 pound" -> "half a pound", as "1/2 lb" is ("one half pound" was the fraction, then the word).
_UNIT_WORDS: Final[dict[str, tuple[str, str]]] = {
    form: (singular, plural) for singular, plural in (
        ("pound", "pounds"), ("ounce", "ounces"), ("cup", "cups"), ("teaspoon", "teaspoons"),
        ("tablespoon", "tablespoons"), ("inch", "inches"), ("foot", "feet"), ("yard", "yards"), ("mile", "miles"),
        ("acre", "acres"), ("gallon", "gallons"), ("quart", "quarts"), ("pint", "pints"), ("liter", "liters"),
        ("litre", "litres"), ("meter", "meters"), ("metre", "metres"), ("kilometer", "kilometers"),
        ("kilogram", "kilograms"), ("gram", "grams"), ("hour", "hours"), ("dozen", "dozen"))
    for form in (singular, plural)
}
_FRACTION_UNIT_RE: Final = re.compile(
    r"(?<![\w.,/-])(?:(?P<whole>\d+)\s)?(?P<num>\d)/(?P<den>[2-9]|1[0-6])\s?(?:(?P<unit>" + _UNIT_ALT + r")(?![\w²³])"
    r"|(?P<word>(?i:" + "|".join(sorted(_UNIT_WORDS, key=len, reverse=True)) + r"))\b)"
)
# 55", 1-2": the inch mark after a number, where it cannot close a quotation (an even count of " before it).
_INCH_MARK_RE: Final = re.compile(r"(?<![\w.,-])" + _LOW + _NUMBER + r"\"(?!\w)")
_DIMENSIONS_RE: Final = re.compile(r"(?<![\w.])(?P<a>\d+(?:\.\d+)?)\s?[x×]\s?(?P<b>\d+(?:\.\d+)?)(?![\w.]\w)")
_DEGREES_WORD_RE: Final = re.compile(r"(?<=\d)\s?°\s?(?P<scale>[CF])\b")
# A height in feet and inches: 5'11" -> "five feet eleven inches" (primes are transliterated to ' and ").
_FEET_INCHES_RE: Final = re.compile(r"(?<![\w.'])(?P<ft>\d)'\s?(?P<inch>\d{1,2})(?:\"|'')")
# "in" is a preposition; with its dot after a number it is inches ("Add 15 in.", "a 12 in. pipe").
_INCHES_RE: Final = re.compile(r"(?<![\w.,-])" + _LOW + _NUMBER + r"\s?in\.(?P<stop>(?=\s*$|\s+[A-Z]))?")
# Without the dot only before a dimension word: "12 in wide", "a 6 in long pipe" ("10 in stock" stays).
_BARE_INCHES_RE: Final = re.compile(
    r"(?<![\w.,-])" + _LOW + _NUMBER + r"\s?in(?=\s+(?:wide|long|tall|high|deep|thick|across|diagonal|square)\b)"
)
# "1h 30m", "2h15m", "1h 30m 20s": a duration, so the "m" after hours is minutes, not meters.
_DURATION_RE: Final = re.compile(
    r"(?<![\w.])(?P<h>\d+)\s?h\s?(?P<m>\d+)\s?m(?:in)?(?:\s?(?P<s>\d+)\s?s)?(?![\w²³])"
)
# "1e6", "1.5e8 km", "6.02E23": scientific notation, said "... times ten to the power of ...".
_SCIENTIFIC_RE: Final = re.compile(
    r"(?<![\w.])(?P<m>\d+(?:\.\d+)?)[eE](?P<e>[-+]?\d{1,3})(?![\w.]\w|\w)(?:\s?(?P<unit>" + _UNIT_ALT + r")(?![\w²³]))?"
)
# "21C", "30F" glued, with a word about the weather before it: "Temp 21C", "a high of 30C".
_TEMPERATURE_CUE: Final = r"(?i:temp|temps|temperature|temperatures|high|highs|low|lows|feels like|around|near)"
_GLUED_DEGREES_RE: Final = re.compile(r"(?<![\w.])[-−]?\d{1,3}(?P<scale>[CF])\b")
_TEMPERATURE_BEFORE_RE: Final = re.compile(
    r"(?<!\w)" + _TEMPERATURE_CUE + r"(?:\s(?:of|is|at|to|near|around|about))?:?\s$"
)
#: Cheap tests that a pattern can match at all: most text has no scientific number or duration.
_EQUALS_AHEAD_RE: Final = re.compile(r"\s?=")
_GLUED_DEGREES_HINT_RE: Final = re.compile(r"\d[CF]\b")
_BARE_INCHES_HINT_RE: Final = re.compile(r"\d ?in (?:wide|long|tall|high|deep|thick|across|diagonal|square)\b")
_SCIENTIFIC_HINT_RE: Final = re.compile(r"\d[eE][-+]?\d")
_DURATION_HINT_RE: Final = re.compile(r"\d ?h ?\d")
# A range written with its unit twice: "5.25%-5.5%", "20°C-25°C" -> read like "5.25-5.5%".
_REPEATED_UNIT_RE: Final = re.compile(r"(?<=\d)(?P<unit>%|°[CF]?)\s?(?P<dash>[-\u2013])\s?(?=\d[\d.,]*\s?(?P=unit))")


def _speak(match: re.Match[str]) -> str:
    unit = match["unit"]
    if match["space"] and unit in _NO_SPACE_ONLY and unit not in ("°", "s", "h"):
        return match[0]
    value = match["value"]
    singular, plural = _UNITS[unit]
    one = value in ("1", "1.0") and not match["minus"] and not match["low"]
    spoken = ("minus " if match["minus"] else "") + number(value)
    if match["low"]:
        spoken = f"{number(match['low'])} to {spoken}"
    if unit == "x":
        return f"{spoken} times"
    if one or unit != "%" and attributive(match.string, match.start(), match.end()):
        return f"{spoken} {singular}"  # "a 10 km run": the unit is singular before a noun
    return f"{spoken} {plural}"


def _dimensions(match: re.Match[str]) -> str:
    """"2x4" is "two by four"; before "=" it is arithmetic: "5 × 3 = 15" -> "five times three"."""
    times = _EQUALS_AHEAD_RE.match(match.string, match.end()) is not None
    return f"{number(match['a'])} {'times' if times else 'by'} {number(match['b'])}"


def _glued_degrees(match: re.Match[str]) -> str:
    cue = _TEMPERATURE_BEFORE_RE.search(match.string, max(0, match.start() - 24), match.start())
    return match[0] if cue is None else f"{match[0][:-1]}°{match['scale']}"


def _unit(value: str, unit: str | None) -> str:
    """The unit's name for ``value`` ("1" -> singular), or "" without a unit."""
    if not unit:
        return ""
    singular, plural = _UNITS[unit]
    return " " + (singular if value == "1" else plural)


def _duration(match: re.Match[str]) -> str:
    spoken = f"{number(match['h'])}{_unit(match['h'], 'h')} {number(match['m'])}{_unit(match['m'], 'min')}"
    return spoken + (f" {number(match['s'])}{_unit(match['s'], 's')}" if match["s"] else "")


def _scientific(match: re.Match[str]) -> str:
    exponent = match["e"].lstrip("+")
    mantissa = "" if match["m"] == "1" else f"{number(match['m'])} times "  # "1e6": "ten to the power of six"
    spoken = f"{mantissa}ten to the power of {number(exponent)}"
    return spoken + _unit("", match["unit"])


def _fraction_unit(match: re.Match[str]) -> str:
    num, den, unit = int(match["num"]), int(match["den"]), match["unit"]
    if unit in _NO_SPACE_ONLY or unit == "%" or num >= den:
        return match[0]
    singular, plural = _UNITS[unit] if unit else _UNIT_WORDS[match["word"].lower()]
    before_noun = attributive(match.string, match.start(), match.end())  # "a 1/2 mile walk": "a half mile walk"
    if match["whole"]:
        part = "a half" if (num, den) == (1, 2) else "a quarter" if (num, den) == (1, 4) else fraction(num, den)
        return f"{cardinal(int(match['whole']))} and {part} {singular if before_noun else plural}"
    if before_noun:
        return f"{'half' if (num, den) == (1, 2) else fraction(num, den)} {singular}"
    article = "an" if singular[0] in "aeiou" or singular.startswith("hour") else "a"  # "half an ounce"
    return f"half {article} {singular}" if (num, den) == (1, 2) else f"{fraction(num, den)} of {article} {singular}"


def _inch_mark(match: re.Match[str]) -> str:
    if match.string.count('"', 0, match.start()) % 2:
        return match[0]  # 'say "5"': the mark closes a quotation
    one = match["value"] == "1" and not match["minus"] and not match["low"]
    spoken = ("minus " if match["minus"] else "") + number(match["value"])
    if match["low"]:
        spoken = f"{number(match['low'])} to {spoken}"
    return f"{spoken} {'inch' if one or attributive(match.string, match.start(), match.end()) else 'inches'}"


def _inches(match: re.Match[str]) -> str:
    one = match["value"] == "1" and not match["minus"] and not match["low"] \
        or attributive(match.string, match.start(), match.end())
    spoken = ("minus " if match["minus"] else "") + number(match["value"])
    if match["low"]:
        spoken = f"{number(match['low'])} to {spoken}"  # "2–4 in." -> "two to four inches"
    return f"{spoken} {'inch' if one else 'inches'}" + ("." if match.groupdict().get("stop") is not None else "")


def expand_measures(text: str) -> str:
    """Read a number with its unit: "5 km", "-5 °C", "3.2GHz", "60 mph", "50%", "2x4", "15 in.".

    Units are matched case-sensitively ("MB" megabytes, "mb" left alone) and only after a
    number, so words that look like units ("I am 5 m away" aside) stay words. A range shares
    the unit ("5-10 km" -> "five to ten kilometers"), and an amount before a noun takes the
    singular ("a 10 km run" -> "a ten kilometer run").
    """
    text = text.replace("º", "°").replace("˚", "°")
    if _GLUED_DEGREES_HINT_RE.search(text):
        text = _GLUED_DEGREES_RE.sub(_glued_degrees, text)
    text = _DEGREES_WORD_RE.sub(lambda m: f"°{m['scale']}", text)
    if "%" in text or "°" in text:
        text = _REPEATED_UNIT_RE.sub(lambda m: m["dash"], text)
    if _SCIENTIFIC_HINT_RE.search(text):
        text = _SCIENTIFIC_RE.sub(_scientific, text)
    if _DURATION_HINT_RE.search(text):
        text = _DURATION_RE.sub(_duration, text)
    text = _DIMENSIONS_RE.sub(_dimensions, text)
    text = _INCHES_RE.sub(_inches, text)
    if _BARE_INCHES_HINT_RE.search(text):
        text = _BARE_INCHES_RE.sub(_inches, text)
    if "/" in text:
        text = _FRACTION_UNIT_RE.sub(_fraction_unit, text)
    text = _FEET_INCHES_RE.sub(lambda m: f"{number(m['ft'])} {'foot' if m['ft'] == '1' else 'feet'} "
                               f"{number(m['inch'])} {'inch' if m['inch'] == '1' else 'inches'}", text)
    if '"' in text:
        text = _INCH_MARK_RE.sub(_inch_mark, text)
    return _MEASURE_RE.sub(_speak, text)
