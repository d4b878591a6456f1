"""``rtvoice say --rate/--volume/--ssml`` as a real subprocess with the shipped default voice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtvoice.audio import read_wav

REPO = Path(__file__).resolve().parents[2]
SR = 22050


def say(tmp_path: Path, text: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rtvoice", "say", text, "--out", str(tmp_path / "out.wav"),
                           "--device", "cpu", *options], capture_output=True, text=True, timeout=120, cwd=REPO)


def spoken(tmp_path: Path, text: str, *options: str) -> np.ndarray:
    run = say(tmp_path, text, *options)
    assert run.returncode == 0, run.stderr
    samples, rate = read_wav(tmp_path / "out.wav")
    assert rate == SR
    return samples


def test_rate_and_volume_reach_the_file(tmp_path: Path) -> None:
    text = "Platform three for Leeds."
    base = spoken(tmp_path, text)
    assert len(spoken(tmp_path, text, "--rate", "2")) / len(base) == pytest.approx(0.5, rel=0.03)
    assert len(spoken(tmp_path, text, "--rate", "0.5")) / len(base) == pytest.approx(2.0, rel=0.03)
    quiet = spoken(tmp_path, text, "--volume", "0.5")
    assert np.abs(quiet - 0.5 * base).max() <= 1.5 / 32767  # a gain in the samples, not only in playback


def test_ssml_is_spoken_with_its_break(tmp_path: Path) -> None:
    plain = spoken(tmp_path, "Yes. No.")
    ssml = spoken(tmp_path, '<speak>Yes. <break time="1s"/> No.</speak>')  # auto-detected
    assert len(ssml) - len(plain) == int(1.0 * SR) - int(0.15 * SR)  # the break replaces the sentence pause
    assert np.array_equal(spoken(tmp_path, ' <speak>Yes. <break time="1s"/> No.</speak>', "--ssml"), ssml)


@pytest.mark.parametrize(("text", "options", "message"), [
    ("<speak>Yes <b>no</speak>", (), "error: Malformed SSML at line 1, column 19: mismatched tag."),
    ("Yes.", ("--ssml",), "error: Malformed SSML at line 1, column 1: syntax error."),
    ("Yes.", ("--rate", "3"), "argument --rate: must be from 0.5 to 2, got '3'"),
])
def test_bad_ssml_and_rates_are_one_line(tmp_path: Path, text: str, options: tuple[str, ...], message: str) -> None:
    run = say(tmp_path, text, *options)
    assert run.returncode == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not (tmp_path / "out.wav").exists()


def test_bench_measures_the_seams_at_a_rate() -> None:
    run = subprocess.run([sys.executable, "-m", "rtvoice", "bench", "--seams", "--rate", "2", "--steps", "128",
                          "--json", "--device", "cpu"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr
    points = {(p["chunk_frames"], p["context_frames"]): p for p in json.loads(run.stdout)}
    assert points[16, 32]["chunks"] == 4  # 128 decoder frames at rate 2: 64 frames, four chunks of 16
    assert points[16, 32]["snr_db"] > 90.0 and points[16, 0]["snr_db"] < 30.0  # context matters, as at rate 1
