"""Cut text that arrives in pieces (an LLM's tokens) into sentences as soon as they end.

:class:`SentenceBuffer` re-splits only its unfinished tail with
:func:`rtvoice.text.split_sentences`, so it cuts exactly where whole-text synthesis
would. A sentence counts as finished once whitespace follows its full stop, as the
splitter itself requires: "Dr." may go on with " Smith", and "3." with "5", so the
unfinished tail is held back until more text (or a flush) arrives.
"""

from __future__ import annotations

from typing import Final

from ..text import split_sentences

_SENTINEL: Final = "x"


class SentenceBuffer:
    """Text received but not yet handed on; pure, no I/O."""

    def __init__(self, max_sentence_chars: int) -> None:
        """Make an empty buffer.

        Args:
            max_sentence_chars: Longer sentences are cut at clauses or words (the voice's
                ``text.sentence_max_chars``), so a text without full stops still flows.
        """
        self._max = max_sentence_chars
        self._text = ""

    def __len__(self) -> int:
        return len(self._text)

    def add(self, text: str) -> list[str]:
        """Append ``text``; return the sentences it completed (possibly none)."""
        self._text += text
        # A word appended to the tail lets the splitter show which pieces are finished:
        # the one holding the sentinel is not, every piece before it is.
        pieces = split_sentences(self._text + _SENTINEL, self._max)
        if len(pieces) < 2:
            return []
        done, position = [], 0
        for piece in pieces[:-1]:
            found = self._text.find(piece, position)
            if found < 0:  # pieces are spans of the text; this cannot happen, but never lose text
                return self.flush()
            done.append(piece)
            position = found + len(piece)
        self._text = self._text[position:]
        return done

    def flush(self) -> list[str]:
        """Return every sentence still buffered, finished or not, and empty the buffer."""
        text, self._text = self._text, ""
        return split_sentences(text, self._max)

    def clear(self) -> None:
        """Drop the buffered text (barge-in)."""
        self._text = ""
