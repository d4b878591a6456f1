"""Tests of the NVIDIA symbol table and text_to_ids."""

from __future__ import annotations

import logging

import pytest

from rtvoice.errors import TextError
from rtvoice.text import SYMBOLS, text_to_ids
from rtvoice.text.symbols import ARPABET


def test_symbol_table_matches_nvidia_checkpoints() -> None:
    # The NGC Tacotron 2 embedding table has 148 rows; the order is the model's.
    assert len(SYMBOLS) == 148
    assert len(set(SYMBOLS)) == 148
    assert SYMBOLS[:12] == ("_", "-", "!", "'", "(", ")", ",", ".", ":", ";", "?", " ")
    assert SYMBOLS.index("A") == 12
    assert SYMBOLS.index("Z") == 37
    assert SYMBOLS.index("a") == 38
    assert SYMBOLS.index("z") == 63
    assert SYMBOLS.index("@AA") == 64
    assert SYMBOLS.index("@AH0") == 73
    assert SYMBOLS[-1] == "@ZH"


def test_arpabet_is_cmudicts_84_symbols() -> None:
    assert len(ARPABET) == 84
    assert ARPABET[:5] == ("AA", "AA0", "AA1", "AA2", "AE")
    assert ARPABET[-5:] == ("V", "W", "Y", "Z", "ZH")


def test_text_is_normalized_then_mapped() -> None:
    assert text_to_ids("Hi, Bob!") == [45, 46, 6, 11, 39, 52, 39, 2]


def test_arpabet_in_braces_maps_to_at_symbols() -> None:
    ids = text_to_ids("Turn {HH AW1 S T AH0 N} Street.")
    phonemes = [SYMBOLS[i] for i in ids[5:11]]
    assert phonemes == ["@HH", "@AW1", "@S", "@T", "@AH0", "@N"]
    assert "".join(SYMBOLS[i] for i in ids[:5]) == "turn "
    assert "".join(SYMBOLS[i] for i in ids[11:]) == " street."


def test_lowercase_phonemes_are_accepted() -> None:
    assert text_to_ids("{hh ah0}") == [SYMBOLS.index("@HH"), SYMBOLS.index("@AH0")]


def test_unknown_symbols_are_dropped_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    # The normalizer names symbols ("#" -> "number"); what a voice still lacks (here a
    # phoneme, and "," in a table without it) is dropped with one warning naming it.
    symbols = tuple(s for s in SYMBOLS if s != ",")
    with caplog.at_level(logging.WARNING, logger="rtvoice.text"):
        ids = text_to_ids("a, b, c {XX} d", symbols)
    assert "".join(symbols[i] for i in ids) == "a b c d"
    records = [r for r in caplog.records if r.name == "rtvoice.text"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "','" in message and "'{XX}'" in message
    assert message.count("','") == 1


def test_known_text_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="rtvoice.text"):
        text_to_ids("Plain words.")
    assert caplog.records == []


def test_pad_is_never_emitted() -> None:
    ids = text_to_ids("snake_case _")
    assert 0 not in ids
    assert "".join(SYMBOLS[i] for i in ids) == "snake underscore case"


def test_spaces_are_squeezed_and_trimmed() -> None:
    assert text_to_ids("  a {} b  ") == [38, 11, 39]


@pytest.mark.parametrize("text", ["", "   ", "...", "()", "\x00\x01", "?!", "^`"])
def test_nothing_speakable_raises_text_error(text: str) -> None:
    with pytest.raises(TextError, match="nothing to speak") as info:
        text_to_ids(text)
    assert info.value.length == len(text)


def test_custom_symbol_table() -> None:
    assert text_to_ids("ab ba", symbols=("_", "a", "b", " ")) == [1, 2, 3, 2, 1]
