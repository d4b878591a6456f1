"""Split after normalization: every piece fits the decoder's frame budget, no word is lost (issue 23 §1)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtvoice.config import VoiceConfig
from rtvoice.errors import TextError, VoiceError
from rtvoice.synthesizer import plan
from rtvoice.text import normalize
from rtvoice.text.pieces import normalize_keeping_arpabet, piece_budget, speakable_pieces
from rtvoice.voice import DEFAULT_VOICE

TOTALS = ("The totals were 1234567, 2345678, 3456789, 4567890, 5678901, 6789012, 7890123, 8901234, 9012345 "
          "and 1357913, and that is all.")
VOICE = VoiceConfig.load(DEFAULT_VOICE)


def _budget(voice: VoiceConfig = VOICE) -> int:
    return piece_budget(voice.decoder.max_decoder_steps, voice.text.frames_per_char, voice.text.sentence_max_chars)


def _letters(text: str) -> str:
    return "".join(text.split())


def test_the_budget_is_the_frames_the_decoder_may_take_over_a_generous_frames_per_char() -> None:
    assert piece_budget(2200, 8.0, 300) == 275
    assert piece_budget(2200, 8.0, 100) == 100
    assert piece_budget(2000, 8.0, 300) == 250
    assert piece_budget(3, 8.0, 300) == 1


def test_a_short_sentence_full_of_numbers_is_split_after_normalization() -> None:
    # 127 characters written, ~720 spoken: the old split (before normalization) kept it whole
    # and the decoder's 2200 frames ran out before "and that is all".
    sentences = plan(TOTALS, VOICE)
    assert len(sentences) >= 3
    assert all(len(s.text) <= _budget() for s in sentences)
    assert " ".join(s.text for s in sentences) == normalize(TOTALS)
    assert sentences[-1].text.endswith("and that is all.")


def test_three_hundred_nines_are_all_planned() -> None:
    sentences = plan("9" * 300, VOICE)
    assert all(len(s.text) <= _budget() for s in sentences)
    assert " ".join(s.text for s in sentences).split() == ["nine"] * 300


def test_the_budget_follows_the_voice_step_limit() -> None:
    small = dataclasses.replace(VOICE, decoder=dataclasses.replace(VOICE.decoder, max_decoder_steps=400))
    sentences = plan(TOTALS, small)
    assert all(len(s.text) <= 50 for s in sentences)
    assert " ".join(s.text for s in sentences) == normalize(TOTALS)


def test_arpabet_groups_pass_through_normalization_whole() -> None:
    text = "Go 5 km to {HH AW1 S T AH0 N} at 8:15."
    assert normalize_keeping_arpabet(text) == "go five kilometers to {HH AW1 S T AH0 N} at eight fifteen."


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["1234567", "9", "and", "Dr.", "12:30", "$3.50", "555-0123", ",", ".", "word",
                                 "x" * 40, "2026-12-06", "km", "5 km", "\n\n", "BBC", "a@b.com"]), max_size=120),
       st.integers(min_value=1, max_value=300))
def test_every_piece_fits_and_every_letter_is_kept(words: list[str], budget: int) -> None:
    text = " ".join(words)
    pieces = speakable_pieces(text, budget)
    assert all(0 < len(piece) <= budget for piece in pieces)
    assert _letters("".join(pieces)) == _letters(normalize_keeping_arpabet(text))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"0123456789 .,:;-/$£€%°@#&+'()AaBbDdMmPpSsTtKkx\n!?", "Dr.", "St.", "km", "PM",
                                 "Dec", "th", ".com", "http://", "www.", "USD", "½", "é", "{HH AH0}"]), max_size=60)
       .map("".join))
def test_any_text_plans_into_speakable_pieces(text: str) -> None:
    symbols = set(VOICE.text.symbols)
    try:
        sentences = plan(text, VOICE)
    except TextError:
        return  # nothing speakable: refused with a clear error
    for sentence in sentences:
        assert set(sentence.text.replace("{HH AH0}", "")) <= symbols
        assert sentence.ids


@pytest.mark.parametrize("unit", ["1", "1 ", "1.", "1,", "1/", "$1", "A1", "a@", "+1 ", "12:30 ", "x.com/", "St. A "])
def test_pathological_long_texts_plan_quickly(unit: str) -> None:
    # Normalization runs per request: 5000 characters of anything must not backtrack for seconds.
    text = (unit * (5000 // len(unit)))[:5000]
    start = time.perf_counter()
    plan(text, VOICE)
    assert time.perf_counter() - start < 2.0  # ~0.1-0.2 s measured on 2 CPU cores


def test_the_voice_date_order_reads_ambiguous_numeric_dates() -> None:
    british = dataclasses.replace(VOICE, text=dataclasses.replace(VOICE.text, date_order="dmy"))
    assert plan("Due 04/05/2026.", VOICE)[0].text == "due april fifth, twenty twenty-six."
    assert plan("Due 04/05/2026.", british)[0].text == "due may fourth, twenty twenty-six."
    assert plan("Due 25/12/2026.", VOICE)[0].text == "due december twenty-fifth, twenty twenty-six."


def test_a_bad_date_order_is_a_voice_error(tmp_path: Path) -> None:
    data = json.loads((DEFAULT_VOICE / "voice.json").read_text())
    data["text"]["date_order"] = "ymd"
    (tmp_path / "voice.json").write_text(json.dumps(data))
    with pytest.raises(VoiceError, match="date_order"):
        VoiceConfig.load(tmp_path)


def test_synthesis_speaks_spelled_letters_by_their_names() -> None:
    # The default voice says a lone "b" badly; Whisper understood the names (rtvoice.text.letters).
    assert normalize("The BBC and the FBI met at 9am.", letter_names=True) == (
        "the bee bee see and the eff bee eye met at nine ay em.")
    assert normalize("The BBC and the FBI met at 9am.") == "the b b c and the f b i met at nine a m."
    assert plan("At 10:30 PM, see 221B.", VOICE)[0].text == "at ten thirty pee em, see two twenty-one bee."
    letters = dataclasses.replace(VOICE, text=dataclasses.replace(VOICE.text, letter_names=False))
    assert plan("At 10:30 PM, see 221B.", letters)[0].text == "at ten thirty p m, see two twenty-one b."


def test_spelled_letters_cannot_be_forged_by_the_input() -> None:
    # The marker is a control character, which normalization removes from user text first.
    assert normalize("\x01b and \x01", letter_names=True) == "b and"
