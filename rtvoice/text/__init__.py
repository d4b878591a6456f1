"""Text front end: normalize -> pieces that fit the decoder -> symbol ids, in pure Python.

Normalization reads times, dates, money, measures, phone numbers, URLs, abbreviations and
acronyms the way announcements need (one module per class; see :mod:`rtvoice.text.cleaners`),
then ends like the ``english_cleaners`` of NVIDIA's Tacotron 2 checkpoints, whose symbol set
we share, so their voices pronounce our text as they learned to.
"""

from rtvoice.text.cleaners import decode_utf8, normalize
from rtvoice.text.pieces import speakable_pieces
from rtvoice.text.sentences import split_sentences
from rtvoice.text.symbols import SYMBOLS, text_to_ids

__all__ = ["SYMBOLS", "decode_utf8", "normalize", "speakable_pieces", "split_sentences", "text_to_ids"]
