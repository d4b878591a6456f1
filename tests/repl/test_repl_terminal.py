"""``rtvoice repl`` at a real terminal (tmux), playing on the fake ALSA card (issue #4).

The card plays in real time here, so that speech is still going when a key is pressed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alsa_fake_card import REPO, FakeCard, MakeCard, child_env, cpu_voice
from tmux_terminal import TmuxTerminal

CHUNK = 64 * 256
"""Samples in one streamed chunk of the voice (chunk_frames x hop length): the barge-in bound."""
LONG = "Hello there. How are you today? I am fine, thank you."


def repl(card: FakeCard, voice: Path, *options: str) -> TmuxTerminal:
    command = [sys.executable, "-m", "rtvoice", "repl", *cpu_voice(voice), *options]
    return TmuxTerminal(card.root, command, child_env(card), REPO)


@pytest.fixture
def session(make_card: MakeCard, tiny_voice_dir: Path) -> Iterator[tuple[FakeCard, TmuxTerminal]]:
    card = make_card()
    with repl(card, tiny_voice_dir) as term:
        term.wait_for("idle")
        yield card, term


def speak(term: TmuxTerminal, line: str) -> None:
    term.type(line)
    term.keys("Enter")


def barge_in(card: FakeCard, term: TmuxTerminal, *keys: str) -> int:
    """Press ``keys`` once speech is audible; returns the samples heard after the press."""
    assert card.wait_for_sound(4000, 30), term.screen()
    pressed = time.monotonic()
    term.keys(*keys)
    time.sleep(1.0)
    return int(np.count_nonzero(card.frames_since(pressed)[:, 0]))


def test_ctrl_c_stops_the_speech_at_once_and_the_prompt_goes_on(session: tuple[FakeCard, TmuxTerminal]) -> None:
    card, term = session
    speak(term, LONG)
    term.wait_for("speaking: Hello there.")
    assert barge_in(card, term, "C-c") < CHUNK
    term.wait_for("idle")
    heard = len(card.sound())
    speak(term, "Hi.")
    assert card.wait_for_sound(heard + 10000, 30), term.screen()
    term.keys("C-d")
    assert term.exit_status() == 0


def test_an_empty_line_stops_and_forgets_queued_lines(session: tuple[FakeCard, TmuxTerminal]) -> None:
    card, term = session
    speak(term, LONG)
    speak(term, "Hi.")  # typed while the first line speaks: queued
    term.wait_for("1 queued")
    assert barge_in(card, term, "Enter") < CHUNK
    screen = term.wait_for("idle")
    assert "queued" not in screen.splitlines()[-1]
    heard = len(card.sound())
    time.sleep(1.0)
    assert len(card.sound()) == heard  # the queued line was dropped too
    term.keys("C-d")
    assert term.exit_status() == 0


def test_lines_typed_while_speaking_play_in_order(make_card: MakeCard, tiny_voice_dir: Path) -> None:
    card = make_card()
    with repl(card, tiny_voice_dir, "--max-steps", "40") as term:
        term.wait_for("idle")
        speak(term, "Hello there.")
        speak(term, "Hi.")
        speak(term, "Bye.")
        assert card.wait_for_sound(3 * 10000, 30), term.screen()
        screen = term.wait_for("idle")
        assert "first audio" in screen
        term.keys("C-d")
        assert term.exit_status() == 0
    history = (card.root / "state" / "rtvoice" / "history").read_text()
    assert [line for line in history.splitlines() if line.startswith("+")] == ["+Hello there.", "+Hi.", "+Bye."]


def test_history_is_recalled_in_the_next_session(make_card: MakeCard, tiny_voice_dir: Path) -> None:
    card = make_card()
    history = card.root / "state" / "rtvoice" / "history"
    history.parent.mkdir(parents=True)
    history.write_text("\n# 2026-01-01 00:00:00.000000\n+Remembered line.\n")
    with repl(card, tiny_voice_dir) as term:
        term.wait_for("idle")
        term.keys("Up")
        term.wait_for("rtvoice> Remembered line.")
        term.keys("C-u", "C-d")
        assert term.exit_status() == 0


def test_a_device_unplugged_mid_sentence_keeps_the_prompt(session: tuple[FakeCard, TmuxTerminal]) -> None:
    card, term = session
    speak(term, LONG)
    assert card.wait_for_sound(4000, 30)
    card.unplug()
    term.wait_for("error: Audio device 0: default (ALSA) stopped in the middle of playback")
    speak(term, "Anyone there?")  # still unplugged: an error, and the prompt stays
    term.wait_for("stopped as soon as it started")
    card.plug()
    heard = len(card.sound())
    speak(term, "Hi.")  # plugged back in: it plays again
    assert card.wait_for_sound(heard + 10000, 30), term.screen()
    term.keys("C-d")
    assert term.exit_status() == 0
