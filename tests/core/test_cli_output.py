"""Issue 24 parts 4-6 through the real ``rtvoice`` CLI: formats by extension, voices, --version, progress.

Each file ``say`` writes is decoded back by PyAV (FFmpeg), and its length and rate checked
against the WAV of the same text and seed.
"""

from __future__ import annotations

import io
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest

from rtvoice.audio import read_wav

REPO = Path(__file__).resolve().parents[2]
STEPS = 40  # the random tiny voice never stops by itself: each sentence is this many frames
RATE = 22050
SECONDS = STEPS * 256 / RATE


def rtvoice(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rtvoice", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=env)


def say(voice: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return rtvoice("say", "Hello there.", "--out", str(out), "--voice", str(voice), "--backend", "onnxruntime",
                   "--device", "cpu", "--max-steps", str(STEPS), *extra)


def decode(path: Path) -> tuple[float, int, str]:
    """(seconds, rate, codec) of an audio file, as FFmpeg reads it."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples, rate = 0, 0
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
        return samples / rate, rate, stream.codec_context.name.removesuffix("float")


@pytest.mark.parametrize(("name", "codec", "rate", "slack_s"), [
    ("x.mp3", "mp3", RATE, 0.11),  # LAME's encoder delay and padding to 1152-sample frames
    ("x.ogg", "opus", 48000, 0.03),  # Ogg Opus always decodes at 48 kHz
    ("x.opus", "opus", 48000, 0.03),
    ("x.aac", "aac", RATE, 0.1),  # AAC priming and 1024-sample frames
    ("x.m4a", "aac", RATE, 0.1),
    ("x.flac", "flac", RATE, 0.0),
    ("x.wav", "pcm_s16le", RATE, 0.0),
])
def test_say_picks_the_format_from_the_extension(name: str, codec: str, rate: int, slack_s: float,
                                                 tiny_voice_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / name
    run = say(tiny_voice_dir, out)
    assert run.returncode == 0, run.stderr
    seconds, decoded_rate, decoded_codec = decode(out)
    assert (decoded_codec, decoded_rate) == (codec, rate)
    assert abs(seconds - SECONDS) <= slack_s + 1e-6, seconds
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left beside it


def test_wav_has_its_real_sizes_and_pcm_is_the_same_samples(tiny_voice_dir: Path, tmp_path: Path) -> None:
    wav, pcm = tmp_path / "x.wav", tmp_path / "x.raw"
    assert say(tiny_voice_dir, wav).returncode == 0
    assert say(tiny_voice_dir, pcm).returncode == 0
    samples, rate = read_wav(wav)  # the wave module checks the header's sizes
    assert rate == RATE and len(samples) == STEPS * 256
    assert wav.read_bytes()[44:] == pcm.read_bytes()  # same seed, same audio; raw has no header


def test_format_option_wins_over_the_extension_and_stdout_works(tiny_voice_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "speech.bin"
    assert say(tiny_voice_dir, out, "--format", "flac").returncode == 0
    assert decode(out)[2] == "flac"
    piped = subprocess.run([sys.executable, "-m", "rtvoice", "say", "Hello there.", "--out", "/dev/stdout",
                            "--format", "mp3", "--voice", str(tiny_voice_dir), "--device", "cpu",
                            "--max-steps", str(STEPS)], capture_output=True, timeout=120, cwd=REPO)
    assert piped.returncode == 0, piped.stderr
    with av.open(io.BytesIO(piped.stdout)) as container:  # stdout holds the audio and nothing else
        assert container.streams.audio[0].codec_context.name.startswith("mp3")
    assert b"wrote /dev/stdout" in piped.stderr


def test_dev_stdout_redirected_to_a_file_is_written_through_and_never_replaced(tiny_voice_dir: Path,
                                                                              tmp_path: Path) -> None:
    """/dev/stdout is a link; when stdout is a file, renaming a finished file over it would replace the link."""
    target = tmp_path / "redirected.wav"
    with target.open("wb") as stdout:
        run = subprocess.run([sys.executable, "-m", "rtvoice", "say", "Hello there.", "--out", "/dev/stdout",
                              "--voice", str(tiny_voice_dir), "--device", "cpu", "--max-steps", str(STEPS)],
                             stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert Path("/dev/stdout").is_symlink()
    seconds, rate, codec = decode(target)
    assert (codec, rate) == ("pcm_s16le", RATE) and seconds == pytest.approx(SECONDS)


def test_unknown_extension_is_a_one_line_error(tmp_path: Path) -> None:
    run = rtvoice("say", "Hi.", "--out", str(tmp_path / "x.wma"))
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "'.wma'" in run.stderr and ".mp3" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_voices_lists_every_place_and_names_work(tiny_voice_dir: Path, tmp_path: Path) -> None:
    env_dir, xdg, given = tmp_path / "env", tmp_path / "xdg", tmp_path / "given"
    shutil.copytree(tiny_voice_dir, env_dir / "from-env")
    shutil.copytree(tiny_voice_dir, xdg / "rtvoice" / "voices" / "from-xdg")
    shutil.copytree(tiny_voice_dir, given / "from-given")
    shutil.copytree(tiny_voice_dir, xdg / "rtvoice" / "voices" / "from-env")  # shadowed by $RTVOICE_VOICES
    env = {**os.environ, "RTVOICE_VOICES": str(env_dir), "XDG_DATA_HOME": str(xdg)}
    listing = rtvoice("voices", str(given), "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)["voices"]
    seen = [(r["name"], r["source"], r["shadowed"]) for r in rows]
    assert seen == [("from-given", "given", False), ("from-env", "$RTVOICE_VOICES", False),
                    ("from-env", "XDG data", True), ("from-xdg", "XDG data", False), ("default", "packaged", False)]
    missing = rtvoice("voices", str(tmp_path / "typo"), env=env)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    table = rtvoice("voices", env=env)
    assert table.returncode == 0 and "from-xdg" in table.stdout and "shadowed" in table.stdout
    out = tmp_path / "x.wav"
    run = rtvoice("say", "Hi.", "--out", str(out), "--voice", "from-xdg", "--device", "cpu", "--max-steps", "12",
                  env=env)
    assert run.returncode == 0, run.stderr


def test_version() -> None:
    from importlib.metadata import version

    run = rtvoice("--version")
    assert run.returncode == 0 and run.stdout.strip() == f"rtvoice {version('rtvoice')}"


def test_say_draws_progress_on_a_terminal_only(tiny_voice_dir: Path, tmp_path: Path) -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(10))  # over 200 characters
    args = [sys.executable, "-m", "rtvoice", "say", text, "--out", str(tmp_path / "x.wav"), "--voice",
            str(tiny_voice_dir), "--device", "cpu", "--max-steps", "8"]
    plain = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert plain.returncode == 0 and "x real time" not in plain.stderr  # not a terminal: no bar
    leader, follower = pty.openpty()
    try:
        tty = subprocess.run(args, stdout=subprocess.PIPE, stderr=follower, timeout=120, cwd=REPO)
        os.close(follower)
        drawn = b""
        while True:
            try:
                part = os.read(leader, 65536)
            except OSError:  # EIO: the child side is closed and drained
                break
            if not part:
                break
            drawn += part
    finally:
        os.close(leader)
    assert tty.returncode == 0
    frames = [f for f in drawn.decode().split("\r") if "x real time" in f]  # the terminal adds \r to each \n
    assert len(frames) > 3
    assert frames[-1].startswith("[##############################] sentence ")
