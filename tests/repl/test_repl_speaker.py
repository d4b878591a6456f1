"""The Speaker behind ``rtvoice repl``, in process, on a fake PortAudio thread (issue #4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

import numpy as np
import pytest
from fake_portaudio import FakePortAudio

from rtvoice import AudioChunk, SynthesisConfig, Voice
from rtvoice import repl as repl_module
from rtvoice.errors import AudioDeviceError, EngineError
from rtvoice.repl import Speaker, Status, history_path

SHORT = SynthesisConfig(max_decoder_steps=40)


@pytest.fixture
def portaudio(monkeypatch: pytest.MonkeyPatch) -> FakePortAudio:
    return FakePortAudio(monkeypatch)


def expected(voice: Voice, *lines: str) -> np.ndarray:
    audio = np.concatenate([np.concatenate([c.samples for c in voice.synthesize(line, SHORT)]) for line in lines])
    audio = np.clip(audio, -1, 1)
    kept: np.ndarray = audio[audio != 0]
    return kept


def played(portaudio: FakePortAudio) -> np.ndarray:
    audio = np.concatenate([s.audio() for s in portaudio.streams])
    kept: np.ndarray = audio[audio != 0]
    return kept


async def test_lines_are_spoken_in_order(tiny_voice: Voice, portaudio: FakePortAudio) -> None:
    messages: list[str] = []
    async with Speaker(tiny_voice, config=SHORT, notify=messages.append, summaries=True) as speaker:
        speaker.say("Hello there.")
        speaker.say("Hi.")
        assert speaker.status.queued >= 1
        await speaker.wait_idle()
        assert speaker.status.speaking is None
    np.testing.assert_allclose(played(portaudio), expected(tiny_voice, "Hello there.", "Hi."), atol=1e-5)
    assert [m.split(":")[0] for m in messages if m.startswith("spoke")] == ["spoke 'Hello there.'", "spoke 'Hi.'"]
    assert len(portaudio.streams) == 1  # one stream for the whole session


async def test_stop_cancels_the_line_and_forgets_the_queue(tiny_voice: Voice, portaudio: FakePortAudio) -> None:
    config = SynthesisConfig(max_decoder_steps=100)
    async with Speaker(tiny_voice, config=config, notify=lambda m: None) as speaker:
        speaker.say("Hello there. How are you today?")
        speaker.say("Hi.")
        while speaker.status.first_audio_s is None:
            await asyncio.sleep(0.01)
        assert speaker.status.speaking == "Hello there. How are you today?"
        assert speaker.stop()
        await speaker.wait_idle()
        assert speaker.status == Status(None, 0, speaker.status.first_audio_s, 0)
        assert not speaker.stop()  # nothing left to stop
        heard = len(played(portaudio))
        speaker.say("Hi.")  # and it carries on
        await speaker.wait_idle()
    whole_line = [c.samples for c in tiny_voice.synthesize("Hello there. How are you today?", config)]
    assert heard < sum(len(c) for c in whole_line) / 2
    assert len(played(portaudio)) > heard


async def test_a_device_error_is_reported_and_the_next_line_reopens(
        tiny_voice: Voice, portaudio: FakePortAudio, monkeypatch: pytest.MonkeyPatch) -> None:
    rescans: list[int] = []
    monkeypatch.setattr(repl_module, "rescan_devices", lambda: rescans.append(1))
    messages: list[str] = []
    async with Speaker(tiny_voice, config=SHORT, notify=messages.append) as speaker:
        portaudio.fail_open = AudioDeviceError("No audio output device found.")
        speaker.say("Hi.")
        await speaker.wait_idle()
        assert messages == ["error: No audio output device found."]
        assert speaker.errors == 1
        portaudio.fail_open = None
        speaker.say("Hi.")
        await speaker.wait_idle()
        assert rescans == [1]  # PortAudio's device list is refreshed before reopening
        portaudio.stream.fail()  # unplugged while idle
        speaker.say("Hello there.")
        await speaker.wait_idle()
        assert messages[-1].startswith("error: Audio device 0: fake (test) stopped")
        speaker.say("Hi.")
        await speaker.wait_idle()
    assert len(portaudio.streams) == 2


async def test_a_text_error_does_not_end_the_session(tiny_voice: Voice, portaudio: FakePortAudio) -> None:
    messages: list[str] = []
    async with Speaker(tiny_voice, config=SHORT, notify=messages.append) as speaker:
        speaker.say("...")
        speaker.say("Hi.")
        await speaker.wait_idle()
    assert messages[0].startswith("error: Text has nothing speakable")
    np.testing.assert_allclose(played(portaudio), expected(tiny_voice, "Hi."), atol=1e-5)


async def test_stopping_while_the_device_opens_keeps_it_for_the_next_line(
        tiny_voice: Voice, portaudio: FakePortAudio) -> None:
    portaudio.open_delay = 0.3
    async with Speaker(tiny_voice, config=SHORT, notify=lambda m: None) as speaker:
        speaker.say("Hi.")
        await asyncio.sleep(0.1)  # the device is being opened, in a thread
        assert speaker.stop()
        await speaker.wait_idle()
        speaker.say("Hi.")
        await speaker.wait_idle()
    assert len(portaudio.streams) == 1  # opened once, reused, and closed at the end
    assert portaudio.stream._stop.is_set()
    np.testing.assert_allclose(played(portaudio), expected(tiny_voice, "Hi."), atol=1e-5)


async def test_a_line_failing_half_way_is_not_counted_as_underruns(
        tiny_voice: Voice, portaudio: FakePortAudio, monkeypatch: pytest.MonkeyPatch) -> None:
    first = next(iter(tiny_voice.synthesize("Hi.", SHORT)))
    assert not first.is_last

    async def broken(text: str, config: SynthesisConfig | None = None) -> AsyncGenerator[AudioChunk, None]:
        yield first
        raise EngineError("the engine broke")

    monkeypatch.setattr(tiny_voice, "stream", broken)
    messages: list[str] = []
    async with Speaker(tiny_voice, notify=messages.append) as speaker:
        speaker.say("Hi.")
        while not messages:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the player runs dry, idle (not through wait_idle, which ends utterances)
        assert speaker.status.underruns == 0
        assert speaker._player is not None and speaker._player.stats.underruns == 0
    assert messages == ["error: the engine broke"]


def test_toolbar() -> None:
    assert Status(None, 0, None, 0).toolbar().startswith("idle    [Enter: speak")
    bar = Status("Hello there. " * 10, 2, 0.1234, 3).toolbar()
    assert bar.startswith("speaking: Hello there. Hello there. Hello [...] · 2 queued · first audio 123 ms · "
                          "3 underrun(s)    [")


def test_history_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert history_path() == tmp_path / "rtvoice" / "history"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert history_path() == tmp_path / ".local" / "state" / "rtvoice" / "history"
