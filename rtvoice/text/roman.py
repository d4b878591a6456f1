"""Roman numerals where they are numbers: "Chapter IV" -> "chapter four", "Henry VIII" -> "henry the eighth".

Capitals are otherwise spelled as initialisms ("IV" -> "i v"), and "I" is a pronoun, so a
numeral is read only after a word that takes one: a counting word (chapter, part, world war,
...) makes it a cardinal, a monarch's or pope's name an ordinal with "the".

Names also take middle initials, and LJSpeech (like any news text) is full of them: every
"name + numeral letter" in its 13,000 sentences is an initial ("Paul M. Stombaugh", "John D.
Ready", "James C. Cadigan", "Richard M. Nixon"). So the evidence for a regnal numeral is:

- it is made of I, V and X only (no pope, and no monarch named below, has passed XXIII); "C", "D", "L" and "M"
  alone are letters after a counting word too ("Section C", "Type D");
- one letter ("I", "V", "X") followed by a capitalized word that does not start a sentence
  is a middle initial, dot or not ("Mary I. Smith", "Robert I Bouck"), but "Henry V. He
  ..." is the king at the end of a sentence;
- a lone "I" is a pronoun unless punctuation, "'s" or a word the pronoun hardly takes ("of",
  "and", "or", "who", "in") follows it ("Alexander I of Russia", "Elizabeth I and James I",
  "Charles I." but "Tell John I am late");
- a title before the name settles it: "King George I was ..." is the king.
"""

from __future__ import annotations

import re
from typing import Final

from rtvoice.text.numbers import cardinal, ordinal
from rtvoice.text.words import STARTERS

__all__ = ["expand_roman"]

_VALUES: Final = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_NUMERAL: Final = r"(?P<numeral>M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3}))"
_REGNAL_NUMERAL: Final = r"(?P<numeral>X{0,3}(?:IX|IV|V?I{0,3}))"
#: Single letters that are letters, not numerals, even after a counting word ("Appendix C").
_LETTERS: Final = frozenset("LCDM")
_COUNTERS: Final = ("Chapter|Part|Volume|Vol\\.|Book|Act|Scene|Phase|Section|World War|Class|Type|Level|Stage|Grade|"
                    "Appendix|Article|Title|Super Bowl|Apollo|Rocky|Star Wars Episode|Episode|Final Fantasy")
_NAMES: Final = ("Henry|Elizabeth|George|Edward|Charles|Louis|William|James|Richard|John|Paul|John Paul|Benedict|"
                 "Pius|Leo|Gregory|Napoleon|Alexander|Frederick|Philip|Ramesses|Constantine|Mary|Victoria|Anne|Felipe|"
                 "Juan Carlos|Carl Gustaf|Harald|Margrethe|Willem-Alexander|Olaf|Haakon|Gustav|Francis|Innocent|"
                 "Clement|Urban|Boniface|Nicholas|Peter|Ivan|Catherine")
_COUNTED_RE: Final = re.compile(r"\b(?P<cue>" + _COUNTERS + r")\s" + _NUMERAL + r"\b(?!')")
#: Titles that make the numeral after a name regnal whatever follows: "King George I was ...".
_TITLES: Final = "King|Queen|Pope|Emperor|Empress|Tsar|Czar|Kaiser|Pharaoh|Prince|Princess|Saint"
_REGNAL_RE: Final = re.compile(r"(?P<title>\b(?:" + _TITLES + r")\s)?\b(?P<cue>" + _NAMES + r")\s" + _REGNAL_NUMERAL
                               + r"\b(?P<s>'s\b)?(?!')")
#: Words that follow a regnal "I" but hardly the pronoun: "Alexander I of Russia", "Elizabeth I and James I".
_AFTER_REGNAL_I: Final = frozenset("of and or who in".split())
#: What follows a monarch rather than the pronoun: "George I was king", "Henry I reigned".
_REGNAL_PREDICATE_RE: Final = re.compile(
    r"\s+(?:(?:was|became)\s+(?:king|queen|emperor|empress|tsar|pope|crowned)|reigned|ruled|succeeded|abdicated)\b"
)
_NEXT_WORD_RE: Final = re.compile(r"(?P<dot>\.)?\s+(?P<word>[A-Z][a-z]*|[a-z]+)")


def _value(numeral: str) -> int:
    total = 0
    for i, char in enumerate(numeral):
        value = _VALUES[char]
        total += -value if i + 1 < len(numeral) and _VALUES[numeral[i + 1]] > value else value
    return total


def _is_regnal(match: re.Match[str]) -> bool:
    """Whether a name's numeral is regnal rather than an initial or the pronoun (module docstring)."""
    numeral = match["numeral"]
    if len(numeral) > 1 or match["s"] or match["title"]:
        return True
    following = _NEXT_WORD_RE.match(match.string, match.end())
    if following is None:
        return True  # punctuation or the end follows: "Charles I.", "Henry V, ..."
    word = following["word"]
    if word[0].isupper():
        return word in STARTERS and following["dot"] is not None  # "Henry V. He ..." vs "Paul I. Smith"
    if numeral != "I" or word in _AFTER_REGNAL_I:
        return True  # "Henry V was", "Alexander I of Russia"
    return _REGNAL_PREDICATE_RE.match(match.string, match.end()) is not None  # "George I was king"; not "John I am"


def expand_roman(text: str) -> str:
    """Read Roman numerals after counting words and regnal names (see the module docstring)."""
    def counted(match: re.Match[str]) -> str:
        numeral = match["numeral"]
        if not numeral or numeral in _LETTERS:
            return match[0]
        return f"{match['cue']} {cardinal(_value(numeral))}"

    def regnal(match: re.Match[str]) -> str:
        if not match["numeral"] or not _is_regnal(match):
            return match[0]
        return f"{match['title'] or ''}{match['cue']} the {ordinal(_value(match['numeral']))}{match['s'] or ''}"

    return _REGNAL_RE.sub(regnal, _COUNTED_RE.sub(counted, text))
