"""The symbol set of NVIDIA's Tacotron 2 checkpoints, and text to symbol ids.

A checkpoint's embedding table has one row per symbol (148 rows for the NGC ones), so the
order below is part of the model: change it and every id means another sound.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Final

from rtvoice.errors import TextError
from rtvoice.text.cleaners import normalize_fragment

__all__ = ["ARPABET", "PAD", "SYMBOLS", "text_to_ids"]

_logger = logging.getLogger("rtvoice.text")

#: Padding symbol, id 0. Never produced from text.
PAD: Final = "_"

#: CMUdict's valid ARPAbet symbols, in CMUdict's order (vowels with stress 0/1/2).
ARPABET: Final[tuple[str, ...]] = (
    "AA", "AA0", "AA1", "AA2", "AE", "AE0", "AE1", "AE2", "AH", "AH0", "AH1", "AH2",
    "AO", "AO0", "AO1", "AO2", "AW", "AW0", "AW1", "AW2", "AY", "AY0", "AY1", "AY2",
    "B", "CH", "D", "DH", "EH", "EH0", "EH1", "EH2", "ER", "ER0", "ER1", "ER2", "EY",
    "EY0", "EY1", "EY2", "F", "G", "HH", "IH", "IH0", "IH1", "IH2", "IY", "IY0", "IY1",
    "IY2", "JH", "K", "L", "M", "N", "NG", "OW", "OW0", "OW1", "OW2", "OY", "OY0",
    "OY1", "OY2", "P", "R", "S", "SH", "T", "TH", "UH", "UH0", "UH1", "UH2", "UW",
    "UW0", "UW1", "UW2", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip

#: NVIDIA's 148 symbols: pad, "-", punctuation and space, A-Z, a-z, then ARPAbet with an
#: "@" prefix (which keeps "@B" apart from the letter "B").
SYMBOLS: Final[tuple[str, ...]] = (
    PAD,
    "-",
    *"!'(),.:;? ",
    *"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    *(f"@{phoneme}" for phoneme in ARPABET),
)

_ARPABET_RE: Final = re.compile(r"\{([^{}]*)\}")


def _tokens(text: str, normalized: bool) -> list[str]:
    """Split ``text`` into symbol strings: cleaned characters, and "@XX" for {braced} ARPAbet."""
    clean = (lambda fragment: fragment) if normalized else normalize_fragment
    tokens: list[str] = []
    start = 0
    for match in _ARPABET_RE.finditer(text):
        tokens += clean(text[start : match.start()])
        tokens += (f"@{phoneme.upper()}" for phoneme in match[1].split())
        start = match.end()
    tokens += clean(text[start:])
    return tokens


def _squeeze_spaces(tokens: list[str]) -> list[str]:
    """Collapse runs of spaces and trim them at the ends.

    Runs appear where separately cleaned fragments meet and where dropped characters were.
    """
    kept: list[str] = []
    for token in tokens:
        if token != " " or (kept and kept[-1] != " "):
            kept.append(token)
    if kept and kept[-1] == " ":
        kept.pop()
    return kept


def _as_written(token: str) -> str:
    """Show a token as the user wrote it: a phoneme back in braces, a character as is."""
    return f"{{{token[1:]}}}" if len(token) > 1 and token.startswith("@") else token


def _speakable(symbol: str) -> bool:
    """Whether ``symbol`` is a sound (a letter or a phoneme) rather than punctuation."""
    return symbol.lstrip("@").isalnum()


def text_to_ids(text: str, symbols: Sequence[str] = SYMBOLS, *, normalized: bool = False) -> list[int]:
    """Clean ``text`` with :func:`normalize` and map it to the model's symbol ids.

    ARPAbet in curly braces is passed through as phonemes, as in NVIDIA's code:
    "Turn left on {HH AW1 S T AH0 N} Street." Characters (and phonemes) that have no
    symbol are dropped, with one warning on the "rtvoice.text" logger listing them, so
    an odd character in a long text never costs the whole utterance.

    Args:
        text: Raw or already normalized text; normalizing twice changes nothing.
        symbols: The model's symbol table, index = id. The pad symbol "_" is never emitted.
        normalized: ``text`` is already normalized (:mod:`rtvoice.text.pieces`): map it as is.

    Returns:
        The symbol ids, in text order.

    Raises:
        TextError: Nothing speakable (no letter or phoneme) is left after cleaning.
    """
    ids_of = {symbol: index for index, symbol in enumerate(symbols) if symbol != PAD}
    tokens = _tokens(text, normalized)
    # A dict keeps each dropped token once, in order of first appearance.
    dropped = {_as_written(token): None for token in tokens if token not in ids_of}
    ids = [ids_of[token] for token in _squeeze_spaces([t for t in tokens if t in ids_of])]
    if dropped:
        _logger.warning(
            "Dropped characters the voice has no symbol for: %s. Note: %d symbols kept.",
            " ".join(repr(token) for token in dropped),
            len(ids),
        )
    if not any(_speakable(symbols[index]) for index in ids):
        preview = text if len(text) <= 60 else text[:57] + "..."
        raise TextError(
            f"Text has nothing to speak after cleaning: {preview!r}. "
            f"Note: {len(text)} characters in, {len(ids)} symbols out, none a letter or phoneme. "
            "Hint: pass words, or ARPAbet phonemes in {braces}.",
            length=len(text),
        )
    return ids
