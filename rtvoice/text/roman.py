"""Roman numerals where they are numbers: "Chapter IV" -> "chapter four", "Henry VIII" -> "henry the eighth".

Capitals are otherwise spelled as initialisms ("IV" -> "i v"), and "I" is a pronoun, so a
numeral is read only after a word that takes one: a counting word (chapter, part, world war,
...) makes it a cardinal, a monarch's or pope's name an ordinal with "the".
"""

from __future__ import annotations

import re
from typing import Final

from rtvoice.text.numbers import cardinal, ordinal

__all__ = ["expand_roman"]

_VALUES: Final = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_NUMERAL: Final = r"(?P<numeral>M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3}))"
_COUNTERS: Final = ("Chapter|Part|Volume|Vol\\.|Book|Act|Scene|Phase|Section|World War|Class|Type|Level|Stage|Grade|"
                    "Appendix|Article|Title|Super Bowl|Apollo|Rocky|Star Wars Episode|Episode|Final Fantasy")
_NAMES: Final = ("Henry|Elizabeth|George|Edward|Charles|Louis|William|James|Richard|John|Paul|John Paul|Benedict|"
                 "Pius|Leo|Gregory|Napoleon|Alexander|Frederick|Philip|Ramesses|Constantine|Mary|Victoria|Anne|Felipe|"
                 "Juan Carlos|Carl Gustaf|Harald|Margrethe|Willem-Alexander|Olaf|Haakon|Gustav|Francis|Innocent|"
                 "Clement|Urban|Boniface|Nicholas|Peter|Ivan|Catherine")
_COUNTED_RE: Final = re.compile(r"\b(?P<cue>" + _COUNTERS + r")\s" + _NUMERAL + r"\b(?!')")
_REGNAL_RE: Final = re.compile(r"\b(?P<cue>" + _NAMES + r")\s" + _NUMERAL + r"\b(?!')")


def _value(numeral: str) -> int:
    total = 0
    for i, char in enumerate(numeral):
        value = _VALUES[char]
        total += -value if i + 1 < len(numeral) and _VALUES[numeral[i + 1]] > value else value
    return total


def expand_roman(text: str) -> str:
    """Read Roman numerals after counting words and regnal names (see the module docstring)."""
    def counted(match: re.Match[str]) -> str:
        if not match["numeral"]:
            return match[0]
        return f"{match['cue']} {cardinal(_value(match['numeral']))}"

    def regnal(match: re.Match[str]) -> str:
        if not match["numeral"]:
            return match[0]
        return f"{match['cue']} the {ordinal(_value(match['numeral']))}"

    return _REGNAL_RE.sub(regnal, _COUNTED_RE.sub(counted, text))
