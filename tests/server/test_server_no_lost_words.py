"""No lost words through the HTTP server (issue 23 §1), with the shipped default voice on the CPU.

A number-heavy sentence is spoken in full (its audio is as long as its text needs), and a
sentence the decoder's step limit does cut short is counted in
``rtvoice_truncated_sentences_total`` and logged, not passed over in silence.
"""

from __future__ import annotations

import io
import logging
import wave
from collections.abc import Iterator

import pytest
from server_support import LiveServer, ServerLog, start_server, stop_server

from rtvoice.config import SynthesisConfig
from rtvoice.server import ServerConfig
from rtvoice.text import normalize
from rtvoice.voice import DEFAULT_VOICE

TOTALS = ("The totals were 1234567, 2345678, 3456789, 4567890, 5678901, 6789012, 7890123, 8901234, 9012345 "
          "and 1357913, and that is all.")
MIN_FRAMES_PER_CHAR = 3.5  # the previous (espeak-ng) default voice took 4.6-5.8; the current 4.05-5.52 a raw char
HOP, RATE = 256, 22050


def _speak(live: LiveServer, text: str) -> float:
    with live.client() as client:
        response = client.post("/v1/audio/speech", json={"model": "tts-1", "input": text, "voice": "default",
                                                         "response_format": "wav"}, timeout=120)
    assert response.status_code == 200, response.text
    with wave.open(io.BytesIO(response.content)) as wav:
        rate, width = wav.getframerate(), wav.getsampwidth()
    # A streamed WAV's header cannot know its length: count the bytes after the "data" tag.
    data = response.content.index(b"data") + 8
    return (len(response.content) - data) / width / rate


@pytest.fixture(scope="module")
def default_server() -> Iterator[LiveServer]:
    live = start_server(ServerConfig(voice=DEFAULT_VOICE, backend="onnxruntime", device="cpu", wyoming_port=None))
    yield live
    stop_server(live)


@pytest.fixture(scope="module")
def short_limit_server() -> Iterator[LiveServer]:
    live = start_server(ServerConfig(voice=DEFAULT_VOICE, backend="onnxruntime", device="cpu", wyoming_port=None,
                                     synthesis=SynthesisConfig(max_decoder_steps=40)))
    yield live
    stop_server(live)


def test_a_number_heavy_sentence_is_spoken_in_full(default_server: LiveServer) -> None:
    # Before the fix: 25.54 s, the decoder's 2200-frame limit, and "and that is all" unspoken.
    seconds = _speak(default_server, TOTALS)
    assert seconds > max(len(normalize(TOTALS)) * MIN_FRAMES_PER_CHAR * HOP / RATE, 26.0), seconds
    assert default_server.metric("rtvoice_truncated_sentences_total", protocol="http") == 0


def test_a_sentence_cut_short_is_counted_and_logged(short_limit_server: LiveServer) -> None:
    before = short_limit_server.metric("rtvoice_truncated_sentences_total", protocol="http")
    with ServerLog() as log:
        _speak(short_limit_server, "This sentence needs far more than forty frames to say.")
    assert short_limit_server.metric("rtvoice_truncated_sentences_total", protocol="http") == before + 1
    warnings = [r for r in log.records if r.levelno == logging.WARNING and "step limit" in r.getMessage()]
    assert len(warnings) == 1
