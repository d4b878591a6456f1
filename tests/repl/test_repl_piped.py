"""``rtvoice repl`` reading lines from a pipe, playing on the fake ALSA card (issue #4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from alsa_fake_card import MakeCard, Sink, cpu_voice, run_rtvoice

from rtvoice import SynthesisConfig, Voice

SHORT = ["--max-steps", "40"]


def expected(voice: Voice, *lines: str) -> np.ndarray:
    config = SynthesisConfig(max_decoder_steps=40)
    audio = np.clip(np.concatenate([c.samples for line in lines for c in voice.synthesize(line, config)]), -1, 1)
    kept: np.ndarray = audio[audio != 0]
    return kept


def test_every_line_plays_in_full_then_it_exits(make_card: MakeCard, tiny_voice: Voice, tiny_voice_dir: Path) -> None:
    card = make_card(Sink(speed=2.0))
    result = run_rtvoice(card, "repl", *cpu_voice(tiny_voice_dir), *SHORT, input="Hello there.\n\n  \nHi.\n")
    assert result.returncode == 0, result.stderr
    # Blank lines are skipped, not taken as "stop": both lines played to the end before the exit.
    np.testing.assert_allclose(card.sound(), expected(tiny_voice, "Hello there.", "Hi."), atol=1e-5)
    spoke = [line for line in result.stderr.splitlines() if line.startswith("spoke")]
    assert [s.split(":")[0] for s in spoke] == ["spoke 'Hello there.'", "spoke 'Hi.'"]
    assert all("first audio" in s for s in spoke)


def test_a_bad_line_is_reported_the_rest_plays_and_the_status_is_2(
        make_card: MakeCard, tiny_voice: Voice, tiny_voice_dir: Path) -> None:
    card = make_card(Sink(speed=2.0))
    result = run_rtvoice(card, "repl", *cpu_voice(tiny_voice_dir), *SHORT, input="...\nHi.\n")
    assert result.returncode == 2
    assert "error: Text has nothing speakable after cleaning." in result.stderr
    np.testing.assert_allclose(card.sound(), expected(tiny_voice, "Hi."), atol=1e-5)


def test_no_output_device_is_exit_2_before_loading_the_voice(make_card: MakeCard, tmp_path: Path) -> None:
    card = make_card(no_devices=True)
    unloadable = tmp_path / "unloadable-voice"  # passes --voice's parse-time check, fails if ever loaded
    unloadable.mkdir()
    (unloadable / "voice.json").write_text("{}")
    result = run_rtvoice(card, "repl", "--voice", str(unloadable), input="Hi.\n")
    assert result.returncode == 2
    assert result.stderr.startswith("error: No audio output device found.")
