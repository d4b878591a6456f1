"""``rtvoice say --play`` and ``rtvoice devices`` on the fake ALSA card (issue #4)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
from alsa_fake_card import MakeCard, Sink, child_env, cpu_voice, rtvoice_command, run_rtvoice

from rtvoice.audio import read_wav, to_int16

SHORT = ["--max-steps", "40"]  # about half a second of audio from the tiny voice


def test_say_play_plays_what_it_writes(make_card: MakeCard, tiny_voice_dir: Path, tmp_path: Path) -> None:
    card = make_card()
    wav = tmp_path / "out.wav"
    result = run_rtvoice(card, "say", "Hello there.", "--play", "--out", str(wav), *cpu_voice(tiny_voice_dir), *SHORT)
    assert result.returncode == 0, result.stderr
    samples, rate = read_wav(wav)
    written = to_int16(samples)
    played = to_int16(card.sound())
    # Both are the same chunks: the WAV gets them through play_chunks(passthrough=True).
    np.testing.assert_array_equal(played[played != 0], written[written != 0])


def test_say_play_without_out(make_card: MakeCard, tiny_voice_dir: Path) -> None:
    card = make_card(Sink(speed=2.0))
    result = run_rtvoice(card, "say", "Hi.", "--play", "--volume", "0.5", *cpu_voice(tiny_voice_dir), *SHORT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert len(card.sound()) > 5000  # (the gain itself is checked sample by sample in test_playback_stream.py)


def test_devices_lists_the_outputs(make_card: MakeCard) -> None:
    card = make_card(Sink(), Sink("rtvoice_s16", fmt="S16_LE"))
    result = run_rtvoice(card, "devices")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("*") and "default" in line and "ALSA" in line for line in lines), lines
    assert any(line.startswith(" ") and "rtvoice_s16" in line for line in lines), lines


def test_audio_device_by_name(make_card: MakeCard, tiny_voice_dir: Path) -> None:
    card = make_card(Sink(speed=2.0), Sink("rtvoice_s16", fmt="S16_LE", speed=2.0))
    result = run_rtvoice(card, "say", "Hi.", "--play", "--audio-device", "s16", *cpu_voice(tiny_voice_dir), *SHORT)
    assert result.returncode == 0, result.stderr
    assert np.count_nonzero(card.frames("rtvoice_s16")) > 5000
    assert len(card.sound()) == 0


def test_unknown_audio_device_is_exit_2(make_card: MakeCard, tiny_voice_dir: Path) -> None:
    card = make_card()
    result = run_rtvoice(card, "say", "Hi.", "--play", "--audio-device", "speakers", *cpu_voice(tiny_voice_dir))
    assert result.returncode == 2
    assert result.stderr.startswith("error: No output device matches 'speakers'. Note: the outputs are 0: default")


def test_no_output_device_is_exit_2(make_card: MakeCard, tiny_voice_dir: Path, tmp_path: Path) -> None:
    card = make_card(no_devices=True)
    wav = tmp_path / "out.wav"
    result = run_rtvoice(card, "say", "Hi.", "--play", "--out", str(wav), *cpu_voice(tiny_voice_dir))
    assert result.returncode == 2
    assert result.stderr.startswith("error: No audio output device found.")
    assert not wav.exists()  # the device is checked before anything is written
    listing = run_rtvoice(card, "devices")
    # Issue 24: no output device is a failure a script can test for.
    assert (listing.returncode, listing.stdout) == (2, "")
    assert listing.stderr.startswith("error: No audio output device found.")


def test_bad_volume_is_a_usage_error(make_card: MakeCard) -> None:
    result = run_rtvoice(make_card(), "say", "Hi.", "--play", "--volume", "3")
    assert result.returncode == 2
    assert "--volume: must be between 0.0 and 2" in result.stderr


def test_device_unplugged_mid_sentence_is_exit_2(make_card: MakeCard, tiny_voice_dir: Path) -> None:
    card = make_card()
    child = subprocess.Popen(rtvoice_command("say", "Hello there. How are you today?", "--play",
                                             *cpu_voice(tiny_voice_dir)),
                             env=child_env(card), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert card.wait_for_sound(3000, 30)
    card.unplug()
    unplugged = time.monotonic()
    _, err = child.communicate(timeout=30)
    assert child.returncode == 2
    assert "error: Audio device 0: default (ALSA) stopped in the middle of playback" in err
    assert "Traceback" not in err
    assert time.monotonic() - unplugged < 10
