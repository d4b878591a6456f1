"""No lost words through MQTT (issue 23 §1): the announcer with the shipped default voice, real Mosquitto.

A number-heavy announcement is spoken in full (its published WAV is as long as its text
needs), and one the decoder's step limit cuts short says so in its ``finished`` event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from rtvoice import SynthesisConfig, Voice
from rtvoice.announce import Announcer, AnnouncerConfig
from rtvoice.audio import read_wav
from rtvoice.text import normalize

if TYPE_CHECKING:
    from .conftest import Recorder

TOTALS = ("The totals were 1234567, 2345678, 3456789, 4567890, 5678901, 6789012, 7890123, 8901234, 9012345 "
          "and 1357913, and that is all.")
MIN_FRAMES_PER_CHAR = 3.5  # the previous (espeak-ng) default voice took 4.6-5.8; the current 4.05-5.52 a raw char
HOP, RATE = 256, 22050


@pytest.fixture(scope="module")
def default_voice() -> Iterator[Voice]:
    with Voice.load(backend="onnxruntime", device="cpu") as voice:
        yield voice


async def _announce(voice: Voice, config: AnnouncerConfig, rec_factory: Callable[..., Recorder], text: str,
                    ) -> tuple[dict[str, object], float]:
    p = config.prefix
    async with rec_factory(f"{p}#") as rec, Announcer(voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        await rec.publish(f"{p}say", json.dumps({"text": text, "id": "a1"}))
        await rec.wait_events(p, "finished", {"a1"}, timeout=120)
        await rec.wait_for(lambda: len(rec.on(f"{p}audio/a1")) == 1)
    (finished,) = rec.events(p, "finished")
    samples, rate = read_wav(rec.on(f"{p}audio/a1")[0].payload)
    return finished, len(samples) / rate


async def test_a_number_heavy_announcement_is_spoken_in_full(
        default_voice: Voice, announcer_config: Callable[..., AnnouncerConfig],
        recorder: Callable[..., Recorder]) -> None:
    # Before the fix: 25.54 s, the decoder's 2200-frame limit, "and that is all" unspoken, no warning.
    finished, seconds = await _announce(default_voice, announcer_config(synthesis=SynthesisConfig()), recorder,
                                        TOTALS)
    assert seconds > max(len(normalize(TOTALS)) * MIN_FRAMES_PER_CHAR * HOP / RATE, 26.0), seconds
    assert "warning" not in finished


async def test_an_announcement_cut_short_says_so_in_its_finished_event(
        default_voice: Voice, announcer_config: Callable[..., AnnouncerConfig],
        recorder: Callable[..., Recorder]) -> None:
    config = announcer_config(synthesis=SynthesisConfig(max_decoder_steps=40))
    finished, _ = await _announce(default_voice, config, recorder,
                                  "This sentence needs far more than forty frames to say.")
    assert "step limit" in str(finished["warning"])
