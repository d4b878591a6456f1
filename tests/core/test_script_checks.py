"""Plain text and SSML pass the same first checks (``check_text``), each named in its messages."""

from __future__ import annotations

import pytest

from rtvoice.config import SynthesisConfig, VoiceConfig
from rtvoice.errors import TextError
from rtvoice.script import prepare, read
from rtvoice.voice import DEFAULT_VOICE


@pytest.fixture(scope="module")
def voice() -> VoiceConfig:
    return VoiceConfig.load(DEFAULT_VOICE)


@pytest.mark.parametrize(("ssml", "word"), [(False, "Text"), (True, "SSML")])
def test_too_long_as_sent_is_refused_naming_what_was_sent(voice: VoiceConfig, ssml: bool, word: str) -> None:
    limit = voice.text.max_chars
    text = "<speak>" + "a" * limit + "</speak>"
    with pytest.raises(TextError, match=f"^{word} has {len(text)} characters; the limit is {limit}\\.$") as caught:
        read(text, voice, ssml)
    assert (caught.value.length, caught.value.limit) == (len(text), limit)


@pytest.mark.parametrize("ssml", [False, True])
def test_not_a_string_is_refused_the_same_way(voice: VoiceConfig, ssml: bool) -> None:
    with pytest.raises(TextError, match="^text must be str, not bytes$"):
        read(b"<speak>Hi.</speak>", voice, ssml)  # type: ignore[arg-type]


def test_blank_text_is_empty_but_blank_ssml_has_nothing_speakable(voice: VoiceConfig) -> None:
    with pytest.raises(TextError, match="^Text is empty: there is nothing to say\\.$"):
        read("  \n", voice, False)
    reading = read("<speak> </speak>", voice, True)  # blank markup passes read(); prepare() refuses it
    with pytest.raises(TextError, match="^SSML has nothing speakable\\.$"):
        prepare(reading, voice, SynthesisConfig().resolve(voice))
