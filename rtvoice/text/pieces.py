"""Text -> normalized pieces that each fit the decoder's step limit.

A sentence's length on the decoder is the length of what is *said*: "1234567" is seven
characters written and 56 spoken, and a 300-character sentence of numbers can need three
times the frames the decoder may take. So the text is normalized first and split after:
into sentences, then at clauses, then between words, into pieces no longer than the
decoder's frame budget allows (``max_decoder_steps / frames_per_char``, see
:class:`rtvoice.config.TextConfig`). Every word of the text lands in exactly one piece.
"""

from __future__ import annotations

import math
import re
from typing import Final

from rtvoice.text.cleaners import normalize_fragment
from rtvoice.text.sentences import split_sentences

__all__ = ["normalize_keeping_arpabet", "piece_budget", "speakable_pieces"]

_ARPABET_RE: Final = re.compile(r"\{[^{}]*\}")


def normalize_keeping_arpabet(text: str, day_first: bool = False, letter_names: bool = False) -> str:
    """Normalize ``text`` but pass ARPAbet groups in {braces} through untouched."""
    parts: list[str] = []
    start = 0
    for match in _ARPABET_RE.finditer(text):
        parts += [normalize_fragment(text[start:match.start()], day_first, letter_names), match[0]]
        start = match.end()
    parts.append(normalize_fragment(text[start:], day_first, letter_names))
    return "".join(parts).strip()


def piece_budget(max_frames: int, frames_per_char: float, sentence_max_chars: int) -> int:
    """Most normalized characters per piece: what ``max_frames`` decoder frames can say, at most ``sentence_max_chars``.

    Args:
        max_frames: The decoder's step limit, in mel frames.
        frames_per_char: A generous estimate of the frames one character takes.
        sentence_max_chars: The voice's own cap (attention degrades on long inputs).

    Returns:
        At least 1.
    """
    return max(1, min(sentence_max_chars, math.floor(max_frames / frames_per_char)))


def speakable_pieces(text: str, max_chars: int, day_first: bool = False, letter_names: bool = False) -> list[str]:
    """Normalize ``text``, then split it into sentences and pieces of at most ``max_chars``.

    Args:
        text: Raw text; ARPAbet groups in {braces} are kept (and kept whole where possible).
        max_chars: Most characters per piece, of normalized text (see :func:`piece_budget`).
        day_first: Read ambiguous numeric dates as day/month (``text.date_order`` "dmy").
        letter_names: Speak spelled letters by their names (``text.letter_names``).

    Returns:
        Normalized pieces, in order; joined with spaces they are the whole normalized text.
    """
    return split_sentences(normalize_keeping_arpabet(text, day_first, letter_names), max_chars)
