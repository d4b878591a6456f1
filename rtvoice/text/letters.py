"""Letters read one by one ("BBC", "p m", "221B"): marked while normalizing, named at the end.

Each spelled letter is emitted as a private marker plus the letter, so the last step can
write it either way: as the bare letter ("b b c", the usual normalizer output) or as its
name ("bee bee see"). A character-based voice says a lone letter badly: Whisper heard the
default voice's "the b b c and the f b i met at nine a m" as "and the five minutes at an
item", and "the bee bee see and the eff bee eye met at nine ay em" as "the VBC and the FBA
met at an IDA"; "p d f" / "pee dee eff" as "look left" / "PDF". Synthesis uses the names.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MARK", "finish", "spell"]

#: Control character that marks a spelled letter; user text cannot hold it (controls are removed first).
MARK: Final = "\x01"

NAMES: Final = {
    "a": "ay", "b": "bee", "c": "see", "d": "dee", "e": "ee", "f": "eff", "g": "jee", "h": "aitch", "i": "eye",
    "j": "jay", "k": "kay", "l": "el", "m": "em", "n": "en", "o": "oh", "p": "pee", "q": "cue", "r": "ar", "s": "ess",
    "t": "tee", "u": "you", "v": "vee", "w": "double you", "x": "ex", "y": "why", "z": "zee",
}
_MARKED_RE: Final = re.compile(MARK + "([a-z]?)")


def spell(letters: str) -> str:
    """Mark each letter of ``letters`` as spelled: "BBC" -> three marked letters, space-separated."""
    return " ".join(MARK + char.lower() for char in letters if char.isalpha())


def finish(text: str, names: bool) -> str:
    """Write the marked letters of lowercase ``text`` as letters ("b") or names ("bee")."""
    if names:
        return _MARKED_RE.sub(lambda m: NAMES.get(m[1], m[1]), text)
    return text.replace(MARK, "")
