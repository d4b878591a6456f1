"""``SynthesisConfig.max_spoken_chars``: the library's own bound on text as read out.

The servers and the MQTT daemon reach it through ``Voice.stream`` and ``Voice.synthesize``
(tests/server/test_server_spoken_cap.py, tests/mqtt/test_mqtt_spoken_cap.py); here the
library itself, with plain text and SSML, on the tiny voice.
"""

from __future__ import annotations

import pytest

from rtvoice import Voice
from rtvoice.config import MAX_SPOKEN_CHARS, SynthesisConfig
from rtvoice.errors import TextError


def test_text_long_read_out_is_refused_before_the_first_chunk(tiny_voice: Voice) -> None:
    with pytest.raises(TextError) as caught:
        tiny_voice.synthesize("\ufdfa" * 4000)  # eager: raises before it returns the generator
    assert (caught.value.length, caught.value.limit) == (4000, MAX_SPOKEN_CHARS)
    assert f"Text has 4000 characters, 112000 when read out; the limit is {MAX_SPOKEN_CHARS} read out." in str(
        caught.value)


def test_ssml_counts_its_text_as_read_out(tiny_voice: Voice) -> None:
    ssml = "<speak>" + "\ufdfa" * 1000 + '<break time="1s"/>' + "\ufdfa" * 1000 + "</speak>"
    with pytest.raises(TextError, match=f"SSML has {len(ssml)} characters, 56000 when read out"):
        tiny_voice.validate(ssml)
    tiny_voice.validate("<speak>" + "\ufdfa" * 1000 + "</speak>")  # 28,000: under the limit


def test_the_limit_is_a_setting_and_ordinary_text_is_far_under_it(tiny_voice: Voice) -> None:
    config = SynthesisConfig(max_spoken_chars=100, max_decoder_steps=4)
    with pytest.raises(TextError, match="20 characters, 179 when read out; the limit is 100 read out"):
        tiny_voice.validate("\u00bd" * 20, config)  # "one half" each
    at_limit = "Hello there. " * 7 + "Good bye."  # 100 characters, read out as written
    tiny_voice.validate(at_limit, config)
    with pytest.raises(TextError, match="101 characters, 101 when read out; the limit is 100"):
        tiny_voice.validate(at_limit + "!", config)
    assert list(tiny_voice.synthesize("Hello there.", config))
    tiny_voice.validate("9" * tiny_voice.config.text.max_chars)  # digits at the voice's limit: 5 times, under it
    with pytest.raises(ValueError, match="max_spoken_chars"):
        SynthesisConfig(max_spoken_chars=0)
