"""Abbreviations in context, acronyms, letters with digits, and symbols.

"St." is "Street" after a name and "Saint" before one; "Dr." is "Doctor" before a name
and "Drive" after one. Capitals are spelled ("BBC" -> "b b c") unless they read as a word
("NASA"), and "221B" is a house number with a letter. These rules need the text's case,
so they run before it is lowercased.
"""

from __future__ import annotations

import re
from typing import Final

from rtvoice.text.letters import MARK, spell
from rtvoice.text.numbers import cardinal, digits, pairs, year

__all__ = ["ABBREVIATIONS", "STARTERS", "expand_abbreviations", "expand_acronyms", "expand_alphanumerics",
           "expand_symbols"]

#: NVIDIA's abbreviations (matched with their dot, any case) and what they are read as, plus a few more.
ABBREVIATIONS: Final[tuple[tuple[str, str], ...]] = (
    ("mrs", "misess"), ("mr", "mister"), ("dr", "doctor"), ("st", "saint"), ("co", "company"),
    ("jr", "junior"), ("maj", "major"), ("gen", "general"), ("drs", "doctors"), ("rev", "reverend"),
    ("lt", "lieutenant"), ("hon", "honorable"), ("sgt", "sergeant"), ("capt", "captain"), ("esq", "esquire"),
    ("ltd", "limited"), ("col", "colonel"), ("ft", "fort"),
    ("ms", "miz"), ("prof", "professor"), ("sr", "senior"), ("vs", "versus"), ("etc", "et cetera"),
    ("inc", "incorporated"), ("corp", "corporation"), ("dept", "department"), ("approx", "approximately"),
    ("ave", "avenue"), ("rd", "road"), ("blvd", "boulevard"), ("ln", "lane"), ("mt", "mount"), ("sq", "square"),
    ("hwy", "highway"), ("pl", "place"), ("no", "number"), ("nos", "numbers"), ("tel", "telephone"),
    ("est", "established"), ("min", "minutes"), ("hrs", "hours"), ("sec", "seconds"),
    ("apt", "apartment"), ("para", "paragraph"), ("fig", "figure"), ("vol", "volume"), ("bldg", "building"),
    ("ext", "extension"), ("pkwy", "parkway"),
)
#: Weekdays, read only when capitalized ("Mon."), and able to end a sentence ("ships Mon.").
_WEEKDAYS: Final = {"Mon": "monday", "Tue": "tuesday", "Tues": "tuesday", "Wed": "wednesday", "Thu": "thursday",
                    "Thur": "thursday", "Thurs": "thursday", "Fri": "friday", "Sat": "saturday", "Sun": "sunday"}
_WEEKDAY_RE: Final = re.compile(r"(?<![\w.'])(?P<word>" + "|".join(_WEEKDAYS) + r")\.(?!\w)")
_DAY_NAMES: Final = {**_WEEKDAYS, **{day.capitalize(): day for day in set(_WEEKDAYS.values())}}
# "Mon-Fri", "Monday–Friday", "Sat.-Sun.": a range of days, dots or not ("monday to friday").
_WEEKDAY_RANGE_RE: Final = re.compile(
    r"(?<![\w.'])(?P<a>" + "|".join(sorted(_DAY_NAMES, key=len, reverse=True)) + r")\.?\s?[-\u2013]\s?"
    r"(?P<b>" + "|".join(sorted(_DAY_NAMES, key=len, reverse=True)) + r")(?P<dot>\.)?(?!\w)"
)
_DAY_ALT: Final = "|".join(sorted(_DAY_NAMES, key=len, reverse=True))
# "Sat & Sun", "Sat/Sun", "Mon, Wed and Fri": days listed together, dots or not.
_WEEKDAY_LIST_RE: Final = re.compile(
    r"(?<![\w.'])(?P<a>" + _DAY_ALT + r")\.?(?P<join>\s?[&/]\s?|,\s|\s(?:and|or)\s)(?=(?:" + _DAY_ALT + r")\b)"
)
_DAY_HINT_RE: Final = re.compile("Mon|Tue|Wed|Thu|Fri|Sat|Sun")
_LISTED_DAY_RE: Final = re.compile(
    r"(?P<prev>\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)(?:\s(?:and|or)\s|,\s))"
    r"(?P<b>" + _DAY_ALT + r")(?!\w)"
)
# "due Fri, Nov 8" (dates were read first: "Fri, november eighth"): a weekday before a date.
_WEEKDAY_DATE_RE: Final = re.compile(
    r"(?<![\w.'])(?P<word>" + "|".join(_WEEKDAYS) + r")(?=,?\s(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
    r"[a-z]*\b|\sthe\s[a-z-]+(?:st|nd|rd|th)\sof\b)"
)  # "Tue 14 May" was read "Tue the fourteenth of may"
# "#WorldCup" -> "hashtag world cup": a hashtag's capitals mark its words.
_HASHTAG_RE: Final = re.compile(r"(?<![\w#])#(?P<tag>[A-Za-z][a-z]+(?:[A-Z][a-z]+)+)\b")
# "Node.js", "Vue.js": said "node j s"; the dot inside a name is no full stop.
_DOT_JS_RE: Final = re.compile(r"\b(?P<name>[A-Z][A-Za-z]*)\.js\b")
_VERSION_RE: Final = re.compile(r"(?<![\w.])v(?=\d+(?:\.\d+)+\b)")
#: Abbreviations that stand after a name (street types, company forms): their dot may also end the sentence.
_SUFFIXES: Final = frozenset({"jr", "sr", "esq", "co", "inc", "ltd", "corp", "ave", "rd", "blvd", "ln", "hwy", "pl",
                              "pkwy", "etc"})
#: Abbreviations read so only right before a number ("No. 5" but "no." is "no").
_BEFORE_NUMBER: Final = frozenset({"no", "nos", "tel", "min", "sec", "hrs", "est", "pl", "sq", "ext"})
_TABLE: Final = dict(ABBREVIATIONS)
_ABBREVIATION_RE: Final = re.compile(r"(?<![\w.'])(?P<word>" + "|".join(_TABLE) + r")\.(?!\w)", re.IGNORECASE)
_CONTEXT_RE: Final = re.compile(r"(?<![\w.'])(?P<word>St|Dr)(?P<dot>\.?)(?!\w)")
# "vs" without its dot, between two things ("Lakers vs Celtics"); with the dot it is in the table.
_BARE_VS_RE: Final = re.compile(r"(?<![\w.'])(?P<word>[Vv]s)(?=\s)")  # "VS" stays spelled: "Open VS Code"
# What "vs" must stand between: a word or number before it, not a lone lowercase letter (normalized text's
# "selected t vs." is "TVs" spelled, and must not turn into "versus" when normalized again) ...
_VS_BEFORE_RE: Final = re.compile(r"(?:^|\s)(?P<word>\S*[\w)'\"])\s+$")
# ... and a word, number or amount after it.
_VS_AFTER_RE: Final = re.compile(r"\s+[\w(\"'$\u00a3\u20ac\u00a5#]")
_NUMBER_SIGN_RE: Final = re.compile(r"#\s?(?=\d|[A-Za-z]{1,3}\d)")
_PREV_CAP_RE: Final = re.compile(r"(?:[A-Z][\w'-]*|\d+\w*)\s+$")
_NEXT_CAP_RE: Final = re.compile(r"\s+[A-Z]")
#: Words that, capitalized after an abbreviation's dot, show that the dot also ended the sentence.
STARTERS: Final = frozenset("The He She It We They I This That There These Those A An Then But And So You Our His Her "
                            "Its Their Please Next Now If When Trains All No Yes In On At After While Although Though "
                            "As".split())
# "A." and "I." are initials, not the article or the pronoun starting a sentence.
_NEXT_STARTER_RE: Final = re.compile(r"\s+(?P<word>[A-Z][a-z]*)\b(?!\.)")
_LATIN: Final = ((re.compile(r"\be\.g\.(?!\w)", re.IGNORECASE), "for example"),
                 (re.compile(r"\bi\.e\.(?!\w)", re.IGNORECASE), "that is"),
                 (re.compile(r"\ba\.k\.a\.?(?!\w)", re.IGNORECASE), "also known as"))

#: All-capital words read as words, not letter by letter.
_ACRONYM_WORDS: Final = frozenset(
    "NASA NATO UNESCO UNICEF AIDS LASER RADAR SCUBA NASDAQ FIFA OPEC IKEA LEGO COVID GIF JPEG PIN SIM NAFTA OSHA "
    "FEMA ASCII CAPTCHA WIFI SARS ISIS INTERPOL DARPA SWAT WASP POTUS SCOTUS ANSI ASAP RAM ROM LAN WAN NIC TED ZIP MAX "
    "STOP HELP START INFO".split()
)
_SPECIAL: Final = {"OK": "okay", "Wi-Fi": "wifi", "WiFi": "wifi", "iOS": spell("iOS"), "macOS": "mac " + spell("OS"),
                   "TV": spell("TV"), "AM": spell("AM"), "PM": spell("PM")}
_CAPS_RE: Final = re.compile(r"(?<![\w'])(?P<caps>[A-Z]{2,})(?P<plural>s|'s)?(?![\w'])")
# "U.S.", "p.m." and, without the last dot, "p.m"; a possessive stays one: "the M.P.'s" -> "the m p's".
_DOTTED_CAPS_RE: Final = re.compile(
    r"(?<![\w.])(?P<letters>(?:[A-Za-z]\.){2,}|(?:[A-Za-z]\.)+[A-Za-z](?![\w.]))(?P<s>'s)?(?!\w)"
)
# An initial before a name ("J. D. Tippit"), or the last of spaced initials ("an I. O. U. for it", "A. B., your").
_INITIAL_RE: Final = re.compile(
    r"(?<![\w.])(?P<letter>[A-Z])\.(?:(?=\s+[A-Z])|(?<=\b[A-Z]\.\s[A-Z]\.)(?=\s+[a-z]|[,;:)]))"
)
_VOWELS: Final = frozenset("AEIOUY")
#: Academic degrees whose dots split them unevenly ("LL.D." would be "l l.d"): the letters said, or a word.
_DEGREES: Final = {"Ph.D": "PHD", "LL.B": "LLB", "LL.M": "LLM", "LL.D": "LLD", "M.Sc": "MSC", "B.Sc": "BSC",
                   "M.Phil": "M phil", "D.Phil": "D phil", "B.Ed": "BED", "M.Ed": "MED", "Ed.D": "EDD"}
_DEGREE_HINT_RE: Final = re.compile(r"\.(?:D|B|M|Sc|Phil|Ed)")
_DEGREE_RE: Final = re.compile(r"(?<![\w.])(?P<degree>" + "|".join(re.escape(d) for d in _DEGREES) + r")(?P<dot>\.)?"
                               r"(?P<s>'?s)?(?!\w)")

# "221B", "A4", "M25", "MP3", "COVID-19", "4K", "B2B", "3D", "BA123"; not after a slash ("1/2-pound" is a fraction).
_ALNUM_RE: Final = re.compile(
    r"(?<![\w.'-])(?!(?<=\d/)\d+-[A-Za-z])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w'])"
)
_RUN_RE: Final = re.compile(r"[A-Za-z]+|\d+")
# "1080p", "720p", "1080i": video modes, said in pairs ("ten eighty p").
_VIDEO_MODE_RE: Final = re.compile(r"(?<![\w.])(?P<n>480|576|720|1080|1440|2160|4320)(?P<scan>[pi])\b")
# "Q3 2024", "H1 2025", "FY2024", "FY 24": the number after a fiscal period is a year ("q three twenty twenty-four").
_PERIOD_HINT_RE: Final = re.compile(r"Q[1-4]|H[12]|FY")
_PERIOD_YEAR_RE: Final = re.compile(
    r"(?<![\w.'-])(?P<period>Q[1-4]|H[12]|FY)\s?(?P<year>(?:19|20)\d\d|'?\d\d)(?![\w.]\w|\w)"
)
# "Springfield, IL 62704": a ZIP code after a state's code, read digit by digit.
_ZIP_RE: Final = re.compile(r"(?<=,\s)(?P<state>[A-Z]{2})\s(?P<zip>\d{5})(?:-(?P<plus4>\d{4}))?\b")
# "10M+ downloads", "5K+ steps": a count with its scale letter.
_SCALED_PLUS_RE: Final = re.compile(r"(?<![\w.])(?P<n>\d+)(?P<scale>[KMB])\+")
_SCALE_NAMES: Final = {"K": "thousand", "M": "million", "B": "billion"}
# "Apt 4B" without its dot, before a number.
_APT_RE: Final = re.compile(r"\bApt\b(?=\s\d)")
# "Flight UA 901", "Flight DL1234": after "flight" an airline's code, then the number said in pairs.
_FLIGHT_RE: Final = re.compile(
    r"\b(?P<cue>[Ff]light)\s(?P<code>[A-Z]{2}|[A-Z]\d|\d[A-Z])\s?(?P<n>[1-9]\d{2,3})(?![\w.]\w|\w)"
)
# Left for the number reader: "22nd", "1990s", and compounds like "21st-century".
_ORDINAL_WORD_RE: Final = re.compile(r"\d+(?:st|nd|rd|th|s)(?:-[A-Za-z]+)*", re.IGNORECASE)

_SYMBOLS: Final = (
    (re.compile(r"#\s?(?=\d)"), " number "),
    (re.compile(r"(?<=\w)/(?=\w)"), " slash "),
    (re.compile(r"\s&\s|&"), " and "),
    (re.compile(r"(?<!\w)@(?=\w)"), " at "),
    (re.compile(r"#(?=[A-Za-z" + MARK + "])"), " hashtag "),  # "#TTS" was spelled (marked) before this
    (re.compile("±"), " plus or minus "),
    (re.compile(r"\+"), " plus "),
    (re.compile(r"="), " equals "),
    (re.compile(r"\s\*\s|×"), " times "),
    (re.compile(r"<"), " less than "),
    (re.compile(r">"), " greater than "),
    (re.compile(r"~"), " about "),
    (re.compile(r"(?<=\w)_(?=\w)"), " underscore "),
    (re.compile(r"\\"), " backslash "),
    (re.compile(r"@"), " at "),
    (re.compile(r"#"), " number "),
    (re.compile(r"\$"), " dollars "),
    (re.compile("€"), " euros "),
    (re.compile("£"), " pounds "),
    (re.compile("¥"), " yen "),
    (re.compile("₹"), " rupees "),
    (re.compile("₩"), " won "),
    (re.compile("°"), " degrees "),
    (re.compile("²"), " squared "),
    (re.compile("³"), " cubed "),
    (re.compile(r"%"), " percent "),
    (re.compile(r"\*"), " star "),
    (re.compile(r"\|"), ", "),
    (re.compile(" / "), ", "),  # "5 PM ET / 2 PM PT": a spaced slash parts two phrases
    (re.compile(r"(?<=\w)/|/(?=\w)|/"), " "),
    (re.compile(r"[\[{]"), "("),
    (re.compile(r"[\]}]"), ")"),
    (re.compile(r"\s[-\u2013\u2014]{1,2}\s|\u2013|\u2014"), ", "),
    (re.compile(r"[\"`^_]"), ""),
)


def _spell(letters: str) -> str:
    return spell(letters)


def _ends_sentence(text: str, end: int) -> bool:
    """Whether an abbreviation's dot ending at ``end`` also ends the sentence (the text, or before "The")."""
    if not text[end:].strip():
        return True
    following = _NEXT_STARTER_RE.match(text, end)
    return following is not None and following["word"] in STARTERS


def _context(match: re.Match[str], text: str) -> str:
    """St./Dr. before a capitalized name are titles; after a name or number, street types."""
    word, dot = match["word"], match["dot"]
    after_name = _PREV_CAP_RE.search(text, max(0, match.start() - 40), match.start()) is not None
    before_name = _NEXT_CAP_RE.match(text, match.end()) is not None
    if not dot and not (after_name or before_name):
        return match[0]  # "St" or "Dr" without a dot and no name near: leave it
    if after_name and (not before_name or dot and match.end() == len(text.rstrip())):
        street = "street" if word == "St" else "drive"
        ends = dot and _ends_sentence(text, match.end())
        return street + ("." if ends else "")
    return "saint" if word == "St" else "doctor"


def _between_things(text: str, start: int, end: int) -> bool:
    """Whether "vs" at ``text[start:end]`` stands between two things, as "versus" does."""
    before = _VS_BEFORE_RE.search(text, max(0, start - 40), start)
    if before is None or len(before["word"]) == 1 and "a" <= before["word"] <= "z":
        return False  # "t vs." is "TVs" as normalize writes it; "x vs. y" stays too
    return _VS_AFTER_RE.match(text, end) is not None


def _abbreviation(match: re.Match[str], text: str) -> str:
    word = match["word"].lower()
    if word == "vs" and not _between_things(text, match.start(), match.end()):
        return match[0]
    rest = text[match.end():]
    if word in _BEFORE_NUMBER and not re.match(r"\s*\d", rest):
        return match[0]
    spoken = _TABLE[word]
    if word in _SUFFIXES and _ends_sentence(text, match.end()):
        return spoken + "."  # "Acme Inc. Then ..." / "... Baker Rd." ends a sentence
    return spoken


def _expand_weekdays(text: str) -> str:
    """Weekday abbreviations: ranges ("Mon-Fri"), lists ("Sat & Sun"), with a dot, before a date."""
    text = _WEEKDAY_RANGE_RE.sub(lambda m: f"{_DAY_NAMES[m['a']]} to {_DAY_NAMES[m['b']]}"
                                 + ("." if m["dot"] and _ends_sentence(m.string, m.end()) else ""), text)
    text = _WEEKDAY_LIST_RE.sub(lambda m: _DAY_NAMES[m["a"]] + (" and " if m["join"].strip() in "&/" else m["join"]),
                                text)
    text = _WEEKDAY_RE.sub(lambda m: _WEEKDAYS[m["word"]] + ("." if _ends_sentence(text, m.end()) else ""), text)
    text = _LISTED_DAY_RE.sub(lambda m: m["prev"] + _DAY_NAMES[m["b"]], text)
    return _WEEKDAY_DATE_RE.sub(lambda m: _WEEKDAYS[m["word"]], text)


def expand_abbreviations(text: str) -> str:
    """Expand abbreviations with a dot: "Dr. Smith" -> "doctor Smith", "12 Oak Dr." -> "12 Oak drive.".

    A street-type abbreviation at the end of the text, or before a capital, keeps its dot
    as a full stop.
    """
    for regex, spoken in _LATIN:
        text = regex.sub(spoken, text)
    text = _NUMBER_SIGN_RE.sub("number ", text)
    text = _VERSION_RE.sub("version ", text)
    if ".js" in text:
        text = _DOT_JS_RE.sub(lambda m: m["name"] + " JS", text)
    if _DAY_HINT_RE.search(text):  # most text names no day: skip the five weekday patterns
        text = _expand_weekdays(text)
    if "#" in text:
        text = _HASHTAG_RE.sub(lambda m: "#" + re.sub(r"(?<=[a-z])(?=[A-Z])", " ", m["tag"]), text)
    text = _CONTEXT_RE.sub(lambda m: _context(m, text), text)
    if "vs " in text or "Vs " in text:
        text = _BARE_VS_RE.sub(lambda m: "versus" if _between_things(m.string, m.start(), m.end()) else m[0], text)
    return _ABBREVIATION_RE.sub(lambda m: _abbreviation(m, text), text)


def _acronym(match: re.Match[str], shouting: bool) -> str:
    caps, plural = match["caps"], match["plural"] or ""
    # A possessive stays one ("the FBI's" -> "the f b i's", "eff bee eye's"); a plural "s" is spelled.
    possessive = "'s" if plural == "'s" else ""
    if caps in _SPECIAL:
        return _SPECIAL[caps] + (possessive or ("s" if plural else ""))
    has_vowel = any(c in _VOWELS for c in caps)
    if caps in _ACRONYM_WORDS or (shouting and has_vowel) or (
            len(caps) >= 5 and sum(c in _VOWELS for c in caps) * 3 >= len(caps)):
        return caps.lower() + (possessive or plural)
    return _spell(caps + ("s" if plural and not possessive else "")) + possessive


def _degree(match: re.Match[str]) -> str:
    letters, _, word = _DEGREES[match["degree"]].partition(" ")
    spoken = " ".join(filter(None, (_spell(letters), word))) + ("s" if match["s"] else "")
    return spoken + ("." if match["dot"] and _ends_sentence(match.string, match.end()) else "")


def expand_acronyms(text: str) -> str:
    """Spell capital initialisms ("BBC" -> "b b c", "U.S." -> "u s"), read word-like ones ("NASA").

    In text written all in capitals ("PLEASE STAND CLEAR") only short words are spelled.
    """
    if _DEGREE_HINT_RE.search(text):
        text = _DEGREE_RE.sub(_degree, text)
    text = _DOTTED_CAPS_RE.sub(lambda m: _spell(m["letters"].replace(".", "")) + (m["s"] or "") + " ", text)
    text = _INITIAL_RE.sub(lambda m: spell(m["letter"]) + ("." if _ends_sentence(m.string, m.end()) else ""), text)
    for word, spoken in _SPECIAL.items():
        if not word.isupper():
            text = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", spoken, text)
    letters = [c for c in text if c.isalpha()]
    shouting = len(letters) >= 12 and sum(c.isupper() for c in letters) > 0.6 * len(letters)
    return _CAPS_RE.sub(lambda m: _acronym(m, shouting), text)


def _alphanumeric(match: re.Match[str]) -> str:
    token = match[0]
    words: list[str] = []
    parts = token.split("-")
    for part_index, part in enumerate(parts):
        runs = _RUN_RE.findall(part)
        for index, run in enumerate(runs):
            if run.isdigit():
                if part_index == 0 and len(parts) > 1 and part.isdigit() and parts[1].isalpha() and run[0] != "0":
                    words.append(cardinal(int(run)))  # "358-mile", "1500-word": an amount, not a name
                elif len(run) == 3 and index == 0 and run[0] != "0":  # house numbers: "221B" -> "two twenty-one b"
                    words.append(pairs(run))
                elif len(run) <= 2:
                    words.append(cardinal(int(run)))
                else:
                    words.append(digits(run))
            elif run.isupper() or len(run) == 1:
                words.append(run.lower() if run in _ACRONYM_WORDS or run.lower() == "covid" else _spell(run))
            elif run.lower() in ("st", "nd", "rd", "th") and index > 0:
                words.append(run.lower())  # an ordinal the number reader will see
            else:
                words.append(run.lower())
    return " ".join(words)


def expand_alphanumerics(text: str) -> str:
    """Read tokens mixing letters and digits: "221B" -> "two twenty-one b", "MP3" -> "m p three".

    Ordinals ("22nd") and units glued to numbers were read before this runs.
    """
    if "," in text:
        text = _ZIP_RE.sub(lambda m: f"{m['state']} {digits(m['zip'])}" + (f" {digits(m['plus4'])}" if m["plus4"]
                                                                           else ""), text)
    if "+" in text:
        text = _SCALED_PLUS_RE.sub(lambda m: f"{cardinal(int(m['n']))} {_SCALE_NAMES[m['scale']]} plus", text)
    if "Apt" in text:
        text = _APT_RE.sub("apartment", text)
    if "0p" in text or "0i" in text:
        text = _VIDEO_MODE_RE.sub(lambda m: f"{pairs(m['n'])} {_spell(m['scan'])}", text)
    if _PERIOD_HINT_RE.search(text):
        text = _PERIOD_YEAR_RE.sub(_period_year, text)
    if "light" in text:
        text = _FLIGHT_RE.sub(lambda m: f"{m['cue']} {_alphanumeric_word(m['code'])} {pairs(m['n'])}",
                              text)
    return _ALNUM_RE.sub(lambda m: m[0] if _ORDINAL_WORD_RE.fullmatch(m[0]) else _alphanumeric(m), text)


def _period_year(match: re.Match[str]) -> str:
    period, written = match["period"], match["year"].lstrip("'")
    spoken = _spell(period) if period == "FY" else f"{_spell(period[0])} {cardinal(int(period[1]))}"
    return f"{spoken} {year(int(written)) if len(written) == 4 else cardinal(int(written))}"


def _alphanumeric_word(token: str) -> str:
    """An airline's code: letters spelled, a digit said ("U2" -> "u two")."""
    return " ".join(cardinal(int(c)) if c.isdigit() else _spell(c) for c in token)


def expand_symbols(text: str) -> str:
    """Name the symbols left after the semiotic classes: "&" -> "and", "+" -> "plus", "@" -> "at"."""
    for regex, spoken in _SYMBOLS:
        text = regex.sub(spoken, text)
    return text
