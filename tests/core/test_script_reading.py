"""``prepare(read(text))`` plans exactly what ``prepare(text)`` does, and counts what it limits."""

from __future__ import annotations

import pytest

from rtvoice.config import SynthesisConfig, VoiceConfig
from rtvoice.errors import TextError
from rtvoice.script import prepare, read
from rtvoice.synthesizer import read_out
from rtvoice.voice import DEFAULT_VOICE

TEXTS = [
    "It costs $5 on the 3rd. Dr. Smith arrived at 10:15, with {HH AH0 L OW1} 2 friends.",
    '<speak>Call 42 <break time="300ms"/> now. <prosody rate="150%">Quick</prosody> end.</speak>',
]


@pytest.mark.parametrize("text", TEXTS)
def test_a_reading_plans_as_its_text_does(text: str) -> None:
    voice = VoiceConfig.load(DEFAULT_VOICE)
    settings = SynthesisConfig(rate=1.2, volume=0.5).resolve(voice)
    reading = read(text, voice, settings.ssml)
    assert prepare(reading, voice, settings) == prepare(text, voice, settings)
    if reading.segments is None:
        assert reading.length == len(read_out(text, voice))


def test_a_reading_over_max_spoken_chars_is_refused_as_its_text_is() -> None:
    voice = VoiceConfig.load(DEFAULT_VOICE)
    text = "1234567 " * 4  # 32 characters sent, far more read out
    reading = read(text, voice)
    settings = SynthesisConfig(max_spoken_chars=reading.length - 1).resolve(voice)
    for given in (text, reading):
        with pytest.raises(TextError, match=f"{reading.length} when read out"):
            prepare(given, voice, settings)
