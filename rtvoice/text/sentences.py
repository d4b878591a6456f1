"""Split text into sentences short enough for one Tacotron 2 pass each.

Synthesizing sentence by sentence lets the first audio start early, and the decoder's
attention degrades on very long inputs, so an over-long sentence is cut again at clause
boundaries, then between words, and only as a last resort inside a word. Pieces are
spans of the input, so nothing is dropped or reordered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

__all__ = ["split_sentences"]

#: Words whose trailing dot does not end a sentence ("Dr. Smith"): titles and the like.
#: Not "no." or "min.", which end sentences as often as they abbreviate.
_NO_STOP_WORDS: Final = frozenset(
    "mrs mr dr st co jr maj gen drs rev lt hon sgt capt esq ltd col ft ms sr prof vs mt inc corp dept approx ave "
    "rd blvd jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
#: How far back from a dot to look for the word it ends; keeps splitting linear in length.
_WORD_WINDOW: Final = 32

_PARAGRAPH_RE: Final = re.compile(r"\n\s*\n")
# Sentence-final punctuation with any closing quotes or brackets, then whitespace or the end.
_STOP_RE: Final = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s|$)")
_LAST_WORD_RE: Final = re.compile(r"[\w.]+$")
# After , ; : or a spaced dash ("a - b", "a -- b"), and after an em or en dash.
_CLAUSE_RE: Final = re.compile(r"(?:[,;:]|\s--?)(?=\s)|[\u2013\u2014]")
# A word, keeping an ARPAbet group in {braces} whole.
_WORD_RE: Final = re.compile(r"\{[^{}]*\}|\S+")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the single dot at ``text[dot]`` ends an abbreviation or initial, not a sentence."""
    match = _LAST_WORD_RE.search(text, max(0, dot - _WORD_WINDOW), dot)
    if match is None:
        return False
    word = match[0]
    initial = len(word) == 1 and word.isupper()  # "J. Smith"
    # Dotted abbreviations of short letter groups: "e.g.", "U.S.", "Ph.D." (not "3.50.").
    dotted = "." in word and all(part.isalpha() and len(part) <= 2 for part in word.split("."))
    return initial or dotted or word.lower() in _NO_STOP_WORDS


def _sentences(text: str) -> list[str]:
    """Cut ``text`` after each sentence-final punctuation mark that is not an abbreviation."""
    pieces: list[str] = []
    for paragraph in _PARAGRAPH_RE.split(text):
        start = 0
        for stop in _STOP_RE.finditer(paragraph):
            single_dot = stop[0].rstrip("\"'\u201d\u2019)]") == "."
            if single_dot and _is_abbreviation(paragraph, stop.start()):
                continue
            pieces.append(paragraph[start : stop.end()])
            start = stop.end()
        pieces.append(paragraph[start:])
    return pieces


def _clause_cuts(text: str, max_chars: int) -> list[int]:
    return [match.end() for match in _CLAUSE_RE.finditer(text)]


def _word_cuts(text: str, max_chars: int) -> list[int]:
    return [match.end() for match in _WORD_RE.finditer(text)]


def _hard_cuts(text: str, max_chars: int) -> list[int]:
    return list(range(max_chars, len(text), max_chars))


#: Ways to cut an over-long piece, gentlest first. The last always succeeds.
_CUTTERS: Final[tuple[Callable[[str, int], list[int]], ...]] = (
    _clause_cuts,
    _word_cuts,
    _hard_cuts,
)


def _pack(text: str, cuts: list[int], max_chars: int) -> list[str]:
    """Join the spans between ``cuts`` greedily into pieces of at most ``max_chars``.

    A single span longer than ``max_chars`` comes back as one over-long piece.
    """
    pieces: list[str] = []
    start = previous = 0
    for cut in [*cuts, len(text)]:
        if len(text[start:cut].strip()) > max_chars and previous > start:
            pieces.append(text[start:previous])
            start = previous
        previous = cut
    pieces.append(text[start:])
    return pieces


def _fit(text: str, max_chars: int, level: int = 0) -> list[str]:
    """Cut ``text`` with ``_CUTTERS[level]`` and finer ones until each piece fits."""
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    cuts = _CUTTERS[level](text, max_chars)
    parts = _pack(text, cuts, max_chars)
    return [piece for part in parts for piece in _fit(part, max_chars, level + 1)]


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Split text into sentences, none longer than ``max_chars`` characters.

    Sentences end at ".", "!" or "?" (with any closing quotes) before whitespace, and at
    blank lines. A dot after an abbreviation or initial ("Dr. Smith", "J. R. R.
    Tolkien", "e.g.") or inside a number ("3.5") does not end one. A longer sentence is
    cut at clause boundaries (",", ";", ":", dashes), then between words, and only a
    word longer than ``max_chars`` is cut inside. Works on raw and on normalized text.

    Args:
        text: The text; ARPAbet groups in {braces} are kept whole where possible.
        max_chars: Most characters per piece. Must be at least 1. Synthesis calls this on
            normalized text (:mod:`rtvoice.text.pieces`), where the count matches what is
            said; on raw text, numbers and abbreviations grow when normalized.

    Returns:
        The pieces in order, stripped, none empty; joined with spaces they hold every
        word of ``text``. Empty or blank text gives an empty list.

    Raises:
        ValueError: ``max_chars`` is less than 1.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    return [piece for sentence in _sentences(text) for piece in _fit(sentence, max_chars)]
