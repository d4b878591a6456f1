"""Text front end: normalize -> sentences -> symbol ids, in pure Python.

Compatible with the symbol set and the ``english_cleaners`` of NVIDIA's Tacotron 2
checkpoints (DeepLearningExamples / NGC), so their voices pronounce our text as they
learned to.
"""

from rtvoice.text.cleaners import decode_utf8, normalize
from rtvoice.text.sentences import split_sentences
from rtvoice.text.symbols import SYMBOLS, text_to_ids

__all__ = ["SYMBOLS", "decode_utf8", "normalize", "split_sentences", "text_to_ids"]
