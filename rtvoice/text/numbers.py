"""Numbers to words, the way NVIDIA's Tacotron 2 was trained to hear them.

The checkpoints learned from LJSpeech text normalised by keithito's ``english_cleaners``:
cardinals without "and", years read in pairs ("nineteen eighty-four"), "three dollars,
fifty cents". We follow that shape so the voice sounds as it did in training, and use
num2words for every number word rather than tables of our own.

The spelling helpers here (:func:`cardinal`, :func:`ordinal`, :func:`year`,
:func:`digits`, :func:`decimal`) are shared by the semiotic classes (money, times, dates,
measures, telephone numbers); :func:`expand_numbers` reads whatever numbers those left.
"""

from __future__ import annotations

import re
from typing import Final

from num2words import num2words

from rtvoice.text.letters import MARK, spell

__all__ = ["INT", "attributive", "cardinal", "decimal", "digits", "expand_decades", "expand_numbers", "ordinal",
           "pairs", "to_int", "year"]

#: An integer, with or without comma grouping ("1,234,567" or "1234567").
INT: Final = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"

#: Digit strings at least this long (card and order numbers) are read digit by digit.
_DIGITWISE_MIN_LEN: Final = 16
#: Plain integers longer than this are read digit by digit: nobody says "nine hundred
#: ninety-nine quintillion ...", and num2words' words for them take longer to say.
_CARDINAL_MAX_LEN: Final = 15

_DIGIT_WORDS: Final = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: Words after a four-digit number that make it a count, not a year ("1984 people").
#: Anything else (a verb, a preposition, punctuation, the end) leaves the year reading.
_NOT_COUNT_WORDS: Final = frozenset(
    "a an and as at by for from in into is it of on or saw than that the then to until was were when where "
    "which while will with ad bc bce ce began brought came had has have marked onwards onward".split()
)
_YEAR_CUES: Final = frozenset(
    "in since from by until till before after during of year years circa around early late mid summer winter "
    "spring autumn fall january february march april may june july august september october november december "
    "back born died class".split()
)

_FRACTION_NAMES: Final = {2: ("half", "halves"), 4: ("quarter", "quarters")}

# A minus sign counts only where it cannot be a hyphen or a range dash ("1990-95").
_MINUS: Final = r"(?P<minus>(?<![\w-])-)?"
_FRACTION_RE: Final = re.compile(
    r"(?<![\w/.])(?:(?P<whole>\d+)\s+)?(?P<num>\d{1,3})/(?P<den>\d{1,3})(?![\w/]|\.\d)"
)
# "rated 4.5/5", "scored 98/100": a score, "four point five out of five" (a decimal numerator, or a word before).
_SCORE_RE: Final = re.compile(
    r"(?<![\w/.])(?P<a>\d+(?:\.\d+)?)/(?P<b>5|10|20|100)(?![\w/]|\.\d)"
)
_SCORE_CUES: Final = frozenset("rated rating scored score scores got gets gave give grade marks earned".split())
_RANGE_RE: Final = re.compile(r"(?<![\w.,-])(?P<a>\d+(?:\.\d+)?)\s?-\s?(?P<b>\d+(?:\.\d+)?)(?![\w.]*\d|-)")
_ORDINAL_RE: Final = re.compile(r"(?<![\d,])(?P<int>" + INT + r")(?P<suf>st|nd|rd|th)\b", re.IGNORECASE)
_DECADE_RE: Final = re.compile(
    r"(?<![\w'])(?:'(?P<short>\d0)|(?P<full>1\d\d0|20\d0))'?s\b"
    r"|\b(?P<cue>[Tt]he|early|late|[Mm]id|[Hh]is|[Hh]er|their|low|high|upper|lower)(?P<gap>[ -])(?P<bare>[1-9]0)s\b"
)
# "in '85" -> "in eighty-five", "since '05" -> "since oh five": a year without its century.
_SHORT_YEAR_RE: Final = re.compile(r"(?<![\w'])'(?P<yy>\d\d)(?![\w'])")
# "1.5M users", "2.3B", "$" aside (money reads its own): a decimal with a capital scale letter.
_SCALED_RE: Final = re.compile(r"(?<![\w.])(?P<n>\d+\.\d+)(?P<scale>[KMBT])\b|(?<![\w.])(?P<n2>\d+(?:\.\d+)?)\s?bn\b")
# "10^6" -> "ten to the power of six" (the caret alone is dropped, which would glue the digits).
_POWER_RE: Final = re.compile(r"(?<![\w.])(?P<a>\d+(?:\.\d+)?)\^(?P<b>-?\d+)(?![\w.])")
_SCALE_WORDS: Final = {"K": "thousand", "M": "million", "B": "billion", "T": "trillion"}
# "v3.0.0-rc.1", "4.0.0-beta.2": a pre-release tag after a version ("... zero beta two", no dot).
_PRERELEASE_RE: Final = re.compile(r"(?<=\d)-(?P<tag>alpha|beta|rc|pre|preview|dev)\.?(?=\d)", re.IGNORECASE)
#: Words after which "3.12" is a version, "three point twelve": its parts are numbers, not digits.
_VERSION_CUES: Final = frozenset("version python release firmware kernel java ruby php perl".split())
_NUMBER_RE: Final = re.compile(
    r"(?<!\w)" + _MINUS + r"(?:(?P<int>" + INT + r")(?:\.(?P<frac>\d+))?|\.(?P<frac2>\d+))(?![\d.]\d|\d)"
)
_DOTTED_RE: Final = re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}(?![\w.]\w)")
_PLAIN_RE: Final = re.compile(
    _MINUS + r"(?P<int>" + INT + r")?(?:\.(?P<frac>\d+))?"
)
#: Words after which a number is dialled or keyed, not counted: "call 911", "PIN 1234".
_DIGIT_CUES: Final = frozenset("call dial ring text pin code extension ext passcode postcode otp".split())
#: Words after which a number of five or more digits is a reference read digit by digit: "order #12345"
#: ("#" was read "number"), "booking 483920".
_REFERENCE_CUES: Final = frozenset("number confirmation booking reference ref tracking ticket invoice account".split())
# "Your code is 482913", "The PIN was 0417", "OTP: 4821": the cue (perhaps spelled already: "OTP" is
# marked letters by now), then "is" or "was", then the number.
# "Text HELP to 12345": a short code to text, dialled, not counted.
_TEXT_TO_RE: Final = re.compile(r"\b[Tt]ext\s+\S+(?:\s+\S+)?\s+to\s+$")
_CUE_IS_RE: Final = re.compile(r"((?:" + MARK + r"[a-z] ?)+|[A-Za-z]+)(?:\s+(?:is|was))?\W*$")
#: Words after which a three- or four-digit number is a name said in pairs: "Room 1205" ->
#: "room twelve oh five", "Flight 1403" -> "flight fourteen oh three", "Route 101" -> "route one oh one".
_NUMBERED_CUES: Final = frozenset("room suite flight apartment unit bus route highway interstate boeing".split())
#: Street types: a number before a name and one of them is a house number ("3100 Main St." -> "thirty-one
#: hundred main street"). Abbreviations ("St.", "Ave.") are expanded before numbers are read.
_STREET_TYPES: Final = ("street|avenue|road|boulevard|drive|lane|way|court|place|square|terrace|parkway|highway|"
                        "circle|plaza|crescent|close|row")
_STREET_AHEAD_RE: Final = re.compile(
    r"(?:\s+(?:[A-Z][\w'-]*|[a-z-]*(?:first|second|third|th))){1,3}\s+(?i:" + _STREET_TYPES + r")\b"
)  # "350 Fifth Avenue", and "350 5th Avenue", whose ordinal was read first
_NEXT_WORD_RE: Final = re.compile(r"\s*([A-Za-z]+)")
_A_BEFORE_RE: Final = re.compile(r"(?<![\w'])[Aa]n?\s+$")
_NOUN_AFTER_RE: Final = re.compile(
    r"[\s-]+(?!(?:and|or|to|of|for|per|in|on|at|a|an|the|each|off|more|less|than|from|is|was|are|were|will|"
    r"would|can|could|should|with|by|up|down|away|ago)\b)(?:[a-z]|[A-Z]{2,}\b)"
)
_PREV_WORD_RE: Final = re.compile(r"([A-Za-z]+)\W*$")
# Other determiners make the amount attributive too ("the 100m sprint", "your 16 GB plan"), but a
# word after them may also end the phrase ("the 20 GB left", "the $20 you gave"): those words are not nouns.
_DETERMINER_BEFORE_RE: Final = re.compile(r"(?<![\w'])(?:[Tt]he|[Tt]his|[Yy]our|[Oo]ur|[Mm]y|[Hh]is|[Hh]er|[Tt]heir|"
                                          r"[Ii]ts|[Ee]very|\w+'s)\s+$")
_NOT_NOUN_AFTER_RE: Final = re.compile(
    r"[\s-]+(?:left|remaining|available|free|total|behind|ahead|into|over|under|out|back|long|wide|high|deep|tall|"
    r"thick|old|later|earlier|above|below|you|we|they|he|she|it|that|which|who|i|me|him|them|us|today|tonight|"
    r"yesterday|tomorrow|now|then|there|here|so|too|all|instead|but|if|because|before|after|since|till|until|"
    r"into|onto|across|through|along|around|toward|towards|past|beyond|every|only|just|already|yet|ago)\b"
)


def attributive(text: str, start: int, end: int) -> bool:
    """Whether the amount at ``text[start:end]`` describes the noun after it: "a $20 bill", "a 10 km run".

    Such an amount takes the singular unit ("a twenty dollar bill", "a ten kilometer run"); the
    evidence is "a" or "an" before it and a word after it that is not a conjunction or preposition,
    or another determiner ("the 100m sprint", "his 500 mg dose") and a word after it that is a noun.
    """
    if _NOUN_AFTER_RE.match(text, end) is None:
        return False
    if _A_BEFORE_RE.search(text, max(0, start - 8), start) is not None:
        return True
    return _DETERMINER_BEFORE_RE.search(text, max(0, start - 24), start) is not None and \
        _NOT_NOUN_AFTER_RE.match(text, end) is None


def to_int(text: str) -> int:
    """``int`` of a digit string that may carry comma grouping."""
    return int(text.replace(",", ""))


def cardinal(number: int) -> str:
    """Spell ``number`` with num2words, without the "and" NVIDIA's training text lacks."""
    if number < 0:
        return "minus " + cardinal(-number)
    if len(str(number)) > _CARDINAL_MAX_LEN:
        return digits(str(number))
    try:
        spelled: str = num2words(number)
    except (OverflowError, NotImplementedError):  # beyond num2words' named powers of ten
        return digits(str(number))
    return spelled.replace(" and ", " ")


def ordinal(number: int) -> str:
    """Spell ``number`` as an ordinal: 22 -> "twenty-second"."""
    if len(str(number)) > _CARDINAL_MAX_LEN:
        return digits(str(number))
    spelled: str = num2words(number, to="ordinal")
    return spelled.replace(" and ", " ")


def year(number: int) -> str:
    """Read ``number`` as a year: 1984 -> "nineteen eighty-four", 2005 -> "two thousand five".

    1905 is "nineteen oh five", as people say it (and as keithito's cleaners wrote it).
    """
    if not 1000 <= number <= 9999 or number % 1000 < 10:
        return cardinal(number)
    return pairs(str(number))


def pairs(text: str) -> str:
    """Read a three- or four-digit number the way house, room and flight numbers are said.

    "2408" -> "twenty-four oh eight", "1403" -> "fourteen oh three", "3100" -> "thirty-one
    hundred", "923" -> "nine twenty-three", "602" -> "six oh two"; "500" and "2000" stay
    cardinals. Other lengths, and numbers with a leading zero, are read as cardinals or digits.
    """
    if len(text) not in (3, 4) or not text.isdigit() or text[0] == "0":
        return digits(text) if text.isdigit() and text[0] == "0" else cardinal(to_int(text))
    head, tail = int(text[:-2]), int(text[-2:])
    if tail == 0:
        return cardinal(int(text)) if head % 10 == 0 else f"{cardinal(head)} hundred"
    return f"{cardinal(head)} {'oh ' if tail < 10 else ''}{cardinal(tail)}"


def digits(text: str) -> str:
    """Read a digit string one digit at a time ("007" -> "zero zero seven")."""
    return " ".join(_DIGIT_WORDS[ord(digit) - 48] for digit in text if "0" <= digit <= "9")


def decimal(integer: str | None, fraction: str | None) -> str:
    """Spell ``integer.fraction`` as "three point one four"; the fraction is read per digit."""
    if not integer:
        return f"point {digits(fraction)}" if fraction else "zero"
    spelled = cardinal(to_int(integer))
    return f"{spelled} point {digits(fraction)}" if fraction else spelled


def number(text: str) -> str:
    """Spell a plain number as written ("-1,234.5", "42", ".5")."""
    match = _PLAIN_RE.fullmatch(text)
    if match is None:
        return digits(text)
    minus = "minus " if match["minus"] else ""
    return minus + decimal(match["int"], match["frac"])


def fraction(num: int, den: int) -> str:
    """Spell ``num/den``: "one half", "three quarters", "five eighths"."""
    if den in _FRACTION_NAMES:
        name = _FRACTION_NAMES[den][0 if num == 1 else 1]
    elif den == 1:
        return cardinal(num)
    else:
        name = ordinal(den) + ("" if num == 1 else "s")
    return f"{cardinal(num)} {name}"


def _expand_fraction(match: re.Match[str]) -> str:
    num, den = int(match["num"]), int(match["den"])
    if match[0] == "24/7" or num == den and not match["whole"]:
        return f"{cardinal(num)} {cardinal(den)}"  # "twenty-four seven", "a fifty fifty chance"
    if den == 0:
        return f"{cardinal(num)} slash zero"
    spoken = fraction(num, den)
    if match["whole"]:
        article = "a " if num == 1 and den in _FRACTION_NAMES else ""
        spoken = f"{cardinal(int(match['whole']))} and {article}{spoken if not article else _FRACTION_NAMES[den][0]}"
    return spoken


def _expand_score(match: re.Match[str]) -> str:
    previous = _PREV_WORD_RE.search(match.string, max(0, match.start() - 24), match.start())
    if "." not in match["a"] and (previous is None or previous[1].lower() not in _SCORE_CUES):
        return match[0]
    out_of = "a hundred" if match["b"] == "100" else cardinal(int(match["b"]))
    return f"{number(match['a'])} out of {out_of}"


def _expand_range(match: re.Match[str]) -> str:
    a, b = match["a"], match["b"]
    if len(a) == 4 and len(b) in (2, 4) and a.isdigit() and b.isdigit() and 1000 <= int(a) < 2100:
        # "1990-95", "2020-2026": years.
        second = year(int(b)) if len(b) == 4 else cardinal(int(b))
        return f"{year(int(a))} to {second}"
    return f"{number(a)} to {number(b)}"


def _expand_decade(match: re.Match[str]) -> str:
    short = match["short"] or match["bare"]
    if short:
        tens = "two thousand" if short == "00" else cardinal(int(short))  # "the '00s": the two thousands
        plural = tens[:-1] + "ies" if tens.endswith("y") else tens + "s"  # "nineties"; "ten" -> "tens"
        return (f"{match['cue']}{match['gap']}" if match["bare"] else "") + plural
    spoken = year(int(match["full"]))
    return spoken[:-1] + "ies" if spoken.endswith("y") else spoken + "s"  # "nineteen nineties", "... hundreds"


def _is_year(text: str, match: re.Match[str]) -> bool:
    """Whether a bare four-digit number reads as a year: "in 1984" but not "1984 people"."""
    previous = _PREV_WORD_RE.search(text, max(0, match.start() - 24), match.start())
    if previous is not None and previous[1].lower() in _YEAR_CUES:
        return True
    following = _NEXT_WORD_RE.match(text, match.end())
    return following is None or following[1].lower() in _NOT_COUNT_WORDS or following[1][0].isupper()


def _expand_number(text: str) -> str:
    def spell(match: re.Match[str]) -> str:
        raw, frac, minus = match["int"], match["frac"] or match["frac2"], match["minus"]
        sign = "minus " if minus else ""
        if raw is not None and frac is None and not minus and "," not in raw:
            if len(raw) >= _DIGITWISE_MIN_LEN or (len(raw) > 1 and raw[0] == "0"):
                return digits(raw)
            previous = _PREV_WORD_RE.search(text, max(0, match.start() - 24), match.start())
            if len(raw) > 1 and previous is not None and previous[1].lower() in _DIGIT_CUES:
                return digits(raw)
            if len(raw) >= 5 and previous is not None and previous[1].lower() in _REFERENCE_CUES:
                return digits(raw)
            cue_is = _CUE_IS_RE.search(text, max(0, match.start() - 32), match.start())
            cue = "" if cue_is is None else cue_is[1].replace(MARK, "").replace(" ", "").lower()
            if len(raw) > 2 and cue in _DIGIT_CUES or len(raw) >= 4 and cue == "to" and _TEXT_TO_RE.search(
                    text, max(0, match.start() - 40), match.start()):
                return digits(raw)
            if len(raw) in (3, 4) and (previous is not None and previous[1].lower() in _NUMBERED_CUES
                                       or _STREET_AHEAD_RE.match(text, match.end())):
                return pairs(raw)
            if len(raw) == 4 and 1000 < int(raw) < 3000 and _is_year(text, match):
                return year(int(raw))
        if raw is not None and frac is not None and len(frac) == 2 and frac[0] != "0" and not minus:
            previous = _PREV_WORD_RE.search(text, max(0, match.start() - 24), match.start())
            if previous is not None and previous[1].lower() in _VERSION_CUES:
                return f"{cardinal(to_int(raw))} point {cardinal(int(frac))}"  # "Python 3.12"
        return sign + decimal(raw, frac)

    return _NUMBER_RE.sub(spell, text)


def expand_decades(text: str) -> str:
    """Read decades: "the 1990s" -> "the nineteen nineties", "the '80s" -> "the eighties".

    "the 90s" is a decade too ("in 90s" may be seconds); "in '85" is a year: "in eighty-five".
    Runs before the measures, which would read the "s" as seconds.
    """
    text = _DECADE_RE.sub(_expand_decade, text)
    return _SHORT_YEAR_RE.sub(lambda m: ("oh " if m["yy"][0] == "0" else "") + cardinal(int(m["yy"])), text)


def expand_numbers(text: str) -> str:
    """Spell whatever numbers the semiotic classes left: ranges, fractions, ordinals, decimals.

    "1,000,000" -> "one million", "3.5" -> "three point five", "22nd" -> "twenty-second",
    "3/4" -> "three quarters", "5-10" -> "five to ten", "-4" -> "minus four", "1990s" ->
    "nineteen nineties"; a bare four-digit number between 1000 and 3000 is a year ("in 1984"
    -> "nineteen eighty-four") unless a count noun follows ("1984 people").

    Args:
        text: Cased ASCII text (the year test looks at the words around a number).

    Returns:
        ``text`` without any digits left.
    """
    text = expand_decades(text)
    text = _POWER_RE.sub(lambda m: f"{number(m['a'])} to the power of {number(m['b'])}", text)
    text = _SCALED_RE.sub(lambda m: f"{number(m['n'] or m['n2'])} {_SCALE_WORDS.get(m['scale'], 'billion')}", text)
    text = _ORDINAL_RE.sub(lambda m: ordinal(to_int(m["int"])), text)
    if "/" in text:
        text = _SCORE_RE.sub(_expand_score, text)
    text = _FRACTION_RE.sub(_expand_fraction, text)
    text = _RANGE_RE.sub(_expand_range, text)
    if "-" in text:
        text = _PRERELEASE_RE.sub(lambda m: " " + (spell(m["tag"]) if m["tag"].lower() == "rc" else m["tag"]) + " ",
                                  text)
    text = _DOTTED_RE.sub(lambda m: " dot ".join(cardinal(int(p)) for p in m[0].split(".")), text)
    text = _expand_number(text)
    return re.sub(r"\d+", lambda m: digits(m[0]), text)  # whatever is left ("1.2.3"), digit by digit
