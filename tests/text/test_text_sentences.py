"""Tests of split_sentences."""

from __future__ import annotations

import pytest

from rtvoice.text import normalize, split_sentences

LONG = (
    "The tried and the untried, young and old, were herded together; the prisoners, who were "
    "many, slept where they could: on benches, on the floor - anywhere at all, and the keepers, "
    "who were few, did nothing about it, because nobody had ever told them that they should"
)


def _words(pieces: list[str]) -> list[str]:
    return " ".join(pieces).split()


def test_splits_at_sentence_ends() -> None:
    text = "Hello there. How are you? I am fine! \u201cGood.\u201d Bye"
    assert split_sentences(text) == [
        "Hello there.",
        "How are you?",
        "I am fine!",
        "\u201cGood.\u201d",
        "Bye",
    ]


def test_abbreviations_initials_and_decimals_do_not_split() -> None:
    text = "Dr. Smith paid $3.50 for 3.5 kg. J. R. R. Tolkien, e.g. a writer, met Mrs. Jones. Done."
    assert split_sentences(text) == [
        "Dr. Smith paid $3.50 for 3.5 kg.",
        "J. R. R. Tolkien, e.g. a writer, met Mrs. Jones.",
        "Done.",
    ]


def test_number_before_a_stop_ends_the_sentence() -> None:
    assert split_sentences("It cost $3.50. Then it rose.") == ["It cost $3.50.", "Then it rose."]


def test_normalized_text_splits_too() -> None:
    text = normalize("Dr. Smith arrived. He paid $3.50! Then 1984 came.")
    assert split_sentences(text) == [
        "doctor smith arrived.",
        "he paid three dollars, fifty cents!",
        "then nineteen eighty-four came.",
    ]


def test_blank_line_ends_a_sentence() -> None:
    assert split_sentences("Title\n\nBody text\nwraps here") == ["Title", "Body text\nwraps here"]


def test_ellipsis_ends_a_sentence() -> None:
    assert split_sentences("Wait... What?") == ["Wait...", "What?"]


@pytest.mark.parametrize("max_chars", [20, 45, 80, 300])
def test_long_sentence_splits_at_clauses_within_limit(max_chars: int) -> None:
    pieces = split_sentences(LONG, max_chars=max_chars)
    assert all(0 < len(piece) <= max_chars for piece in pieces)
    assert _words(pieces) == LONG.split()


def test_clause_boundaries_are_preferred_over_spaces() -> None:
    pieces = split_sentences(LONG, max_chars=80)
    assert all(piece.endswith((",", ";", ":", "-")) for piece in pieces[:-1])


def test_whitespace_is_the_fallback() -> None:
    text = "one two three four five six seven eight nine ten"
    pieces = split_sentences(text, max_chars=12)
    assert pieces == ["one two", "three four", "five six", "seven eight", "nine ten"]


def test_word_longer_than_limit_is_cut_without_loss() -> None:
    pieces = split_sentences("x" * 25 + " yy", max_chars=10)
    assert pieces == ["x" * 10, "x" * 10, "x" * 5, "yy"]


def test_arpabet_group_is_kept_whole() -> None:
    pieces = split_sentences("say it {HH AH0 L OW1} now please", max_chars=16)
    assert pieces == ["say it", "{HH AH0 L OW1}", "now please"]


def test_lj_speech_style_paragraph_keeps_every_word_in_order() -> None:
    text = " ".join(
        [LONG + "."] * 10 + ["Mr. Rowley, Chief of the Secret Service, testified on the 5th."]
    )
    pieces = split_sentences(text, max_chars=100)
    assert all(0 < len(piece) <= 100 for piece in pieces)
    assert _words(pieces) == text.split()


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n"])
def test_blank_text_gives_no_pieces(text: str) -> None:
    assert split_sentences(text) == []


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        split_sentences("text", max_chars=0)
