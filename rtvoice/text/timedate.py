"""Times and dates: "8:15" -> "eight fifteen", "Dec. 25th, 2026" -> "december twenty-fifth, twenty twenty-six".

Announcements are full of both, and digits with colons and slashes are what a generic
number reader gets most wrong ("eight:fifteen", "twelve/zero six").
"""

from __future__ import annotations

import re
from typing import Final

from rtvoice.text.letters import spell
from rtvoice.text.numbers import cardinal, ordinal, year

__all__ = ["expand_dates", "expand_times"]

MONTHS: Final = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                 "october", "november", "december")
_MONTH_ABBREVIATIONS: Final = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
                               "sept": 9, "oct": 10, "nov": 11, "dec": 12}
_MONTH_NUMBER: Final = {**{name: i + 1 for i, name in enumerate(MONTHS)}, **_MONTH_ABBREVIATIONS}
_MONTH: Final = r"(?P<month>" + "|".join(sorted(_MONTH_NUMBER, key=len, reverse=True)) + r")\b\.?"

# "p.m." ends the sentence before a capital, unless the capital is a day, a month or a zone ("4 p.m. Saturday").
_NOT_STARTER: Final = (r"(?!(?:(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)days?|January|February|March|April|June|July|"
                       r"August|September|October|November|December|Mon|Tue|Wed|Thu|Fri|Sat|Sun|Jan|Feb|Mar|Apr|May|"
                       r"Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Eastern|Central|Mountain|Pacific|Atlantic|Local|ET|PT|CT|MT)\b)")
_MERIDIEM: Final = (r"(?:\s?(?P<ampm>[ap])(?:\.\s?m\.(?P<stop>(?=\s*$|(?-i:\s+" + _NOT_STARTER + r"[A-Z])))?"
                    r"|\s?m\b))")
_MERIDIEM_AHEAD: Final = r"\s?[ap]\.?\s?m\b"
_ZONE: Final = r"(?:\s(?P<zone>UTC|GMT|CET|CEST|BST|EST|EDT|CST|CDT|MST|MDT|PST|PDT)\b)?"
# "8:15", "08:05", "23:59:30", "10:30 PM", "8:15pm", "8.15 p.m." (a dot only with am/pm).
_TIME_RE: Final = re.compile(
    r"(?<![\w:.])(?P<h>[01]?\d|2[0-4])(?:(?P<sep>:)(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?"
    r"|\.(?P<dm>[0-5]\d)(?=" + _MERIDIEM_AHEAD + r"))" + _MERIDIEM + r"?" + _ZONE + r"(?![\w:]|\.\d)",
    re.IGNORECASE,
)
_HOUR_RE: Final = re.compile(r"(?<![\w:.])(?P<h>1[0-2]|0?[1-9])" + _MERIDIEM + _ZONE, re.IGNORECASE)
# "9:00-17:30", "9am-5pm", "9-5pm", "10:30 a.m.-2 p.m.": the dash is "to". The cheap pattern
# finds a dash between a time-like end and a time; _TIME_RANGE_LEFT_RE checks what ends before it.
_TIME_RANGE_RE: Final = re.compile(
    r"(?<=[\dmM.])\s?[-\u2013]\s?(?=\d{1,2}:\d\d|\d{1,2}(?:[:.]\d\d)?\s?[ap]\.?m\b)", re.IGNORECASE
)
_TIME_RANGE_LEFT_RE: Final = re.compile(r"(?:\d:\d\d|\d ?[ap]m|[ap]\.m\.|(?<![\d:.,-])\d\d?)$", re.IGNORECASE)
# "0900 hours", "1430 hrs", "2400 hours": the military reading, "oh nine hundred hours" (midnight as the day ends).
# "2026-12-06T10:30": the "T" of an ISO date and time is "at".
_ISO_T_RE: Final = re.compile(r"(?<=\d-\d\d)T(?=\d\d:\d\d)")
# "1430 hours of flight time" is an amount: "of" after "hours" makes a count, not a clock.
_MILITARY_RE: Final = re.compile(
    r"(?<![\w:.])(?P<h>[01]\d|2[0-3]|24(?=00))(?P<m>[0-5]\d)\s?(?P<word>hours|hrs)\b(?!\s+of\b)"
)
# A time taken, not a time of day: words before "2:00:35" ("record", "finished in") or a fraction of a
# second ("3:43.13", which no clock shows).
_LAPSE_CUE_RE: Final = re.compile(
    r"\b(?i:record|time|clocked|finished|took|lasted|duration|length|won in|ran .{1,20} in|in a time of)\b"
    r"(?:\s+\w+){0,2}\s+$"
)
_SPLIT_SECONDS_HINT_RE: Final = re.compile(r":\d\d\.\d")
_SPLIT_SECONDS_RE: Final = re.compile(r"(?<![\w:.])(?P<m>\d{1,2}):(?P<s>[0-5]\d\.\d{1,3})(?![\w:]|\.\d)")
_RATIO_RE: Final = re.compile(r"(?<![\w:])(?P<a>\d+):(?P<b>\d+)(?![\w:])")

# Numeric dates: 2026-12-06 (ISO), 12/06/2026, 12.06.2026, 12-06-26.
_ISO_RE: Final = re.compile(
    r"(?<![\w/-])(?P<y>\d{4})(?P<sep>[-/])(?P<m>0?[1-9]|1[0-2])(?P=sep)(?P<d>0?[1-9]|[12]\d|3[01])(?![\w/-])"
)  # "2026-12-06", and "2024/05/17" as some sites write it
_NUMERIC_RE: Final = re.compile(
    r"(?<![\w/.-])(?P<a>\d{1,2})(?P<sep>[/.-])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})(?![\w/-]|\.\d)"
)
_DAY: Final = r"(?P<day>[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR: Final = r"(?:,?\s(?P<year>\d{4}))?"
# "Dec. 25th, 2026", "December 25 2026", "March 3rd"; "25 December 2026", "25th of Dec".
# ... and a range of days: "Dec 24-26" -> "december twenty-fourth to twenty-sixth".
_DAY2: Final = r"(?:\s?[-\u2013]\s?(?P<day2>[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?\b)?"
_MONTH_WORD: Final = r"(?:" + "|".join(sorted(_MONTH_NUMBER, key=len, reverse=True)) + r")\b\.?"
# "Dec. 24 - Jan. 2", "June 30–July 4": a range of dates across months; the dash is "to", not a pause.
_DATE_RANGE_RE: Final = re.compile(
    r"(?i:\b" + _MONTH_WORD + r"\s" + _DAY + r"(?:,?\s\d{4})?)(?P<dash>\s?[-\u2013]\s?)(?=(?i:" + _MONTH_WORD
    + r")\s\d)"
)
_DATE_RANGE_HINT_RE: Final = re.compile(r"[-\u2013]\s?(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)")
_MONTH_DAY_RE: Final = re.compile(r"\b" + _MONTH + r"\s" + _DAY + r"\b" + _DAY2 + _YEAR + r"(?!\d)", re.IGNORECASE)
#: Words after which "12/25" is a date without its year, not a fraction ("closed on 12/25").
_DATE_CUES: Final = ("on|until|till|since|due|before|after|through|thru|expires|ending|ends|starts|begins|"
                     "Mon|Tue|Tues|Wed|Thu|Thur|Thurs|Fri|Sat|Sun|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday")
#: Words after which "1/2" is a fraction of something, not a date ("on 1/2 pound of beef", "on 3/4 cup").
_MEASURE_WORDS: Final = (r"pounds?|lbs?|ounces?|oz|cups?|teaspoons?|tsp|tablespoons?|tbsp|inch(?:es)?|feet|foot|ft|"
                         r"yards?|yd|miles?|acres?|gallons?|gal|quarts?|qt|pints?|lit(?:er|re)s?|"
                         r"(?:kilo|centi|milli)?(?:met(?:er|re)|gram)s?|kilos?|kg|km|cm|mm|ml|sticks?|slices?|"
                         r"loaf|loaves|dozen|pinch|hours?|tanks?|price|of")
_SHORT_NUMERIC_RE: Final = re.compile(
    r"\b(?P<cue>(?i:" + _DATE_CUES + r"))(?P<gap>\.?,?\s)(?P<a>\d{1,2})/(?P<b>\d{1,2})"
    r"(?![\w/]|\.\d|(?:\s+|\s?-)(?i:" + _MEASURE_WORDS + r")\b)"
)
_DAY_MONTH_RE: Final = re.compile(r"\b" + _DAY + r"(?:\sof)?\s" + _MONTH + _YEAR + r"(?!\d)", re.IGNORECASE)
_MONTH_YEAR_RE: Final = re.compile(r"\b" + _MONTH + r",?\s(?P<year>\d{4})\b", re.IGNORECASE)


def _hour_words(hour: int) -> str:
    return cardinal(hour)


def _lapse(hours: int, minutes: int, seconds: str) -> str:
    """A time taken, "2:00:35" -> "two hours and thirty-five seconds"; ``seconds`` may have a fraction."""
    parts = [f"{cardinal(n)} {unit}{'s' if n != 1 else ''}" for n, unit in ((hours, "hour"), (minutes, "minute")) if n]
    whole, _, fraction = seconds.partition(".")
    if int(whole) or fraction:
        said = cardinal(int(whole)) + (f" point {' '.join(cardinal(int(d)) for d in fraction)}" if fraction else "")
        parts.append(f"{said} second{'' if said == 'one' else 's'}")
    return " and ".join(filter(None, (", ".join(parts[:-1]), parts[-1]))) if parts else "zero seconds"


def _expand_time(match: re.Match[str]) -> str:
    hour = int(match["h"])
    if match["s"] is not None and not match["ampm"] and not match["zone"] and _LAPSE_CUE_RE.search(
            match.string, max(0, match.start() - 40), match.start()):
        return _lapse(hour, int(match["m"]), match["s"])  # "The marathon record is 2:00:35"
    minute = int(match["m"] if match["m"] is not None else match["dm"])
    ampm = match["ampm"]
    if hour > 24 or (ampm and not 1 <= hour <= 12):
        return match[0]
    if minute == 0:
        if ampm:
            spoken = _hour_words(hour)
        elif hour > 12 or match["h"].startswith("0"):  # 24-hour "17:00", "08:00", "00:00"
            spoken = f"{'oh ' if 0 < hour < 10 else ''}{_hour_words(hour) if hour else 'zero'} hundred"
        else:
            spoken = f"{_hour_words(hour)} o'clock"
    else:
        spoken = f"{_hour_words(hour) if hour else 'zero'} {'oh ' if minute < 10 else ''}{cardinal(minute)}"
    if match["s"] is not None and int(match["s"]):
        seconds = int(match["s"])
        spoken += f" and {cardinal(seconds)} second{'s' if seconds != 1 else ''}"
    if ampm:
        spoken += " " + spell(ampm + "m")
    if match["zone"]:
        spoken += " " + spell(match["zone"])
    # "9 a.m. CST." : the dot of "a.m." before a zone is no full stop (the zone's own follows).
    return spoken + ("." if match["stop"] is not None and not match["zone"] else "")


def _expand_military(match: re.Match[str]) -> str:
    hour, minute = int(match["h"]), int(match["m"])
    spoken = f"{'oh ' if 0 < hour < 10 else ''}{cardinal(hour) if hour else 'zero'}"
    spoken += " hundred" if not minute else f" {'oh ' if minute < 10 else ''}{cardinal(minute)}"
    return f"{spoken} hours"


def _expand_hour(match: re.Match[str]) -> str:
    spoken = f"{cardinal(int(match['h']))} {spell(match['ampm'] + 'm')}"
    spoken += " " + spell(match["zone"]) if match["zone"] else ""
    return spoken + ("." if match["stop"] is not None and not match["zone"] else "")


def expand_times(text: str) -> str:
    """Read clock times: "8:15" -> "eight fifteen", "08:05" -> "eight oh five".

    "10:30 PM" -> "ten thirty p m", "9am" -> "nine a m", "17:00" -> "seventeen hundred",
    "8:00" -> "eight o'clock", "12:30:15" -> "twelve thirty and fifteen seconds", "0900 hours"
    -> "oh nine hundred hours", "9am-5pm" -> "nine a m to five p m". A colon between other
    numbers is a ratio or score: "3:1" -> "three to one".
    """
    text = _ISO_T_RE.sub(" at ", text)
    text = _TIME_RANGE_RE.sub(
        lambda m: " to " if _TIME_RANGE_LEFT_RE.search(m.string, max(0, m.start() - 6), m.start()) else m[0], text)
    text = _MILITARY_RE.sub(_expand_military, text)
    if _SPLIT_SECONDS_HINT_RE.search(text):
        text = _SPLIT_SECONDS_RE.sub(lambda m: _lapse(0, int(m["m"]), m["s"]), text)
    text = _TIME_RE.sub(_expand_time, text)
    text = _HOUR_RE.sub(_expand_hour, text)
    return _RATIO_RE.sub(lambda m: f"{cardinal(int(m['a']))} to {cardinal(int(m['b']))}", text)


def _year_words(text: str) -> str:
    number = int(text)
    return year(2000 + number if number < 50 else 1900 + number) if len(text) == 2 else year(number)


def _date(month: int, day: int, year_text: str | None) -> str:
    spoken = f"{MONTHS[month - 1]} {ordinal(day)}"
    return spoken + (f", {_year_words(year_text)}" if year_text else "")


def _expand_numeric(match: re.Match[str], day_first: bool) -> str:
    a, b = int(match["a"]), int(match["b"])
    month, day = (b, a) if day_first or match["sep"] == "." else (a, b)
    if month > 12 and day <= 12:
        month, day = day, month  # "25/12/2026" is unambiguous whatever the default order
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match[0]
    if match["sep"] == "." and len(match["y"]) == 2:
        return match[0]  # "1.2.26" looks more like a version than a date
    return _date(month, day, match["y"])


def _expand_month_day(match: re.Match[str]) -> str:
    month_word = match["month"].lower()
    if month_word == "may" and match[0][0].islower():
        return match[0]  # "may 5" is a verb and a number more often than a date
    if match["day2"]:
        month = MONTHS[_MONTH_NUMBER[month_word] - 1]
        spoken = f"{month} {ordinal(int(match['day']))} to {ordinal(int(match['day2']))}"
        return spoken + (f", {_year_words(match['year'])}" if match["year"] else "")
    return _date(_MONTH_NUMBER[month_word], int(match["day"]), match["year"])


def _expand_short_numeric(match: re.Match[str], day_first: bool) -> str:
    a, b = int(match["a"]), int(match["b"])
    month, day = (b, a) if day_first else (a, b)
    if month > 12 and day <= 12:
        month, day = day, month
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match[0]
    return f"{match['cue']}{match['gap']}{MONTHS[month - 1]} {ordinal(day)}"


def _expand_day_month(match: re.Match[str]) -> str:
    if match["month"] == "may":
        return match[0]  # "group 3 may now board": the verb
    month = MONTHS[_MONTH_NUMBER[match["month"].lower()] - 1]
    article = "" if match.string[max(0, match.start() - 4):match.start()].lower() == "the " else "the "
    spoken = f"{article}{ordinal(int(match['day']))} of {month}"
    if match["year"]:
        return spoken + f", {year(int(match['year']))}"
    rest = match.string[match.end():].lstrip()
    ends = match[0].endswith(".") and (not rest or rest[0].isupper())
    return spoken + ("." if ends else "")  # "... on 14 June." / "until 31 Dec." end the sentence


def expand_dates(text: str, day_first: bool = False) -> str:
    """Read dates: "2026-12-06" and "12/06/2026" -> "december sixth, twenty twenty-six".

    Written forms too: "Dec. 25th, 2026" -> "december twenty-fifth, twenty twenty-six",
    "25 December 2026" -> "the twenty-fifth of december, twenty twenty-six", "March 2026"
    -> "march twenty twenty-six", "Dec 24-26" -> "december twenty-fourth to twenty-sixth";
    "closed on 12/25" -> "closed on december twenty-fifth" after a word that takes a date.

    Args:
        text: Cased ASCII text.
        day_first: Read ambiguous numeric dates as day/month (Europe) rather than
            month/day (United States); the voice's ``text.date_order`` decides.
    """
    text = _ISO_RE.sub(lambda m: _date(int(m["m"]), int(m["d"]), m["y"]), text)
    text = _NUMERIC_RE.sub(lambda m: _expand_numeric(m, day_first), text)
    text = _SHORT_NUMERIC_RE.sub(lambda m: _expand_short_numeric(m, day_first), text)
    if _DATE_RANGE_HINT_RE.search(text):
        text = _DATE_RANGE_RE.sub(lambda m: m[0][:m.start("dash") - m.start()] + " to ", text)
    text = _MONTH_DAY_RE.sub(_expand_month_day, text)
    text = _DAY_MONTH_RE.sub(_expand_day_month, text)
    return _MONTH_YEAR_RE.sub(lambda m: f"{MONTHS[_MONTH_NUMBER[m['month'].lower()] - 1]} {year(int(m['year']))}",
                              text)
