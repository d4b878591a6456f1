"""The Player on a real PortAudio stream, through the fake ALSA card (issue #4).

Each test plays audio made by the tiny voice in a child process and checks what reached the
"sound card": the same samples (float32 passes through untouched), the same samples converted
(a 16-bit device), or the same samples resampled by soxr (a device at 48 kHz).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soxr
from alsa_fake_card import FakeCard, MakeCard, Sink, child_env, run_python, without_zeros

from rtvoice import SynthesisConfig, Voice
from rtvoice.audio import to_int16

PLAY = """
    import dataclasses, json, sys
    import numpy as np
    from rtvoice.playback import Player
    data = np.load(sys.argv[1])
    chunks = [data[f"arr_{i}"] for i in range(len(data.files))]
    volume, device, rate = float(sys.argv[2]), sys.argv[3] or None, int(sys.argv[4]) if sys.argv[4] else None
    with Player(22050, volume=volume, device=device, device_rate=rate) as player:
        for i, chunk in enumerate(chunks):
            player.write(chunk, last=i == len(chunks) - 1)
        player.drain()
        print(json.dumps(dataclasses.asdict(player.stats)))
"""


@pytest.fixture(scope="module")
def speech(tiny_voice: Voice) -> list[np.ndarray]:
    """Two sentences of the tiny voice, as chunks (about 3.6 s)."""
    return [c.samples for c in tiny_voice.synthesize("Hello there. How are you?", SynthesisConfig(seed=1))]


def save(chunks: list[np.ndarray], folder: Path) -> str:
    path = folder / "speech.npz"
    np.savez(path, *chunks)  # stored as arr_0, arr_1...
    return str(path)


def play(make_card: MakeCard, sink: Sink, chunks: list[np.ndarray], folder: Path, volume: float = 1.0,
         device: str = "", rate: str = "") -> tuple[dict[str, float], FakeCard]:
    card = make_card(sink)
    result = run_python(card, PLAY, save(chunks, folder), str(volume), device, rate)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), card


def first_sound(x: np.ndarray) -> int:
    """Where the audio starts: PortAudio primes the device with silence first."""
    return int(np.flatnonzero(x)[0])


def test_float32_arrives_bit_exact(make_card: MakeCard, speech: list[np.ndarray], tmp_path: Path) -> None:
    stats, card = play(make_card, Sink(speed=4.0), speech, tmp_path, volume=0.5)
    expected = np.clip(np.concatenate(speech) * np.float32(0.5), -1, 1).astype(np.float32)
    frames = card.frames()
    np.testing.assert_array_equal(frames[:, 0], frames[:, 1])  # mono on both channels
    np.testing.assert_array_equal(card.sound(), without_zeros(expected))
    assert stats["underruns"] == 0  # all made before playing: the ring never ran dry
    assert stats["played_s"] == pytest.approx(len(expected) / 22050)
    assert stats["rate"] == 22050


def test_a_16_bit_device_gets_the_audio_converted(make_card: MakeCard, speech: list[np.ndarray],
                                                  tmp_path: Path) -> None:
    """PortAudio converts float32 for a device that takes only integers; ALSA narrows it to 16 bits."""
    _, card = play(make_card, Sink("rtvoice_s16", fmt="S16_LE", speed=4.0), speech, tmp_path, device="rtvoice_s16")
    expected = to_int16(np.concatenate(speech)).astype(np.int32)
    left = card.frames("rtvoice_s16")[:, 0].astype(np.int32)
    start = first_sound(left)
    # Rounding and PortAudio's dither move a sample by a step or two, which can also move the first
    # non-zero sample by one: take the best of the offsets around it.
    errors = [np.abs(left[s : s + len(expected)] - expected).max() for s in range(start - 2, start + 3)
              if s >= 0 and len(left) - s >= len(expected)]
    assert min(errors) <= 2


def test_resampled_by_soxr_when_the_device_plays_at_48_khz(make_card: MakeCard, speech: list[np.ndarray],
                                                           tmp_path: Path) -> None:
    stats, card = play(make_card, Sink(rate=48000, speed=4.0), speech, tmp_path, volume=0.4, rate="48000")
    assert stats["rate"] == 48000
    expected = np.clip(soxr.resample(np.concatenate(speech), 22050, 48000, quality="HQ") * 0.4, -1, 1)
    left = card.frames()[:, 0]
    got = left[first_sound(left):]
    got = got[: len(expected)]
    assert abs(len(got) - len(expected)) <= 2
    n = min(len(got), len(expected))
    np.testing.assert_allclose(got[:n], expected[:n], atol=2e-4)


FLUSH = """
    import asyncio, json, sys, time
    import numpy as np
    from rtvoice.playback import Player
    data = np.load(sys.argv[1])
    audio = np.concatenate([data[f"arr_{i}"] for i in range(len(data.files))] * 2)

    async def main():
        async with Player(22050, volume=0.5) as player:
            async def feed():
                for start in range(0, len(audio), 4096):
                    await player.awrite(audio[start:start + 4096])
            feeder = asyncio.create_task(feed())
            while player.stats.played_s < 0.5:
                await asyncio.sleep(0.01)
            feeder.cancel()
            t = time.monotonic()
            dropped = player.flush()
            await asyncio.sleep(0.5)
            print(json.dumps({"flushed_at": t, "dropped_s": dropped, "played_s": player.stats.played_s,
                              "underruns": player.stats.underruns}))

    asyncio.run(main())
"""


def test_flush_silences_within_one_block(make_card: MakeCard, speech: list[np.ndarray], tmp_path: Path) -> None:
    """Barge-in at the Player level: after flush() only what the device already held plays."""
    card = make_card(Sink(speed=1.0))
    result = run_python(card, FLUSH, save(speech, tmp_path))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["dropped_s"] > 1.0  # the ring was full of audio when it was dropped
    assert out["underruns"] == 0  # a flush is not an underrun
    after = card.frames_since(out["flushed_at"])[:, 0]
    # The device's own buffer and the 4 KiB pipe: well under one 4096-sample write, let alone a chunk.
    assert np.count_nonzero(after) < 4096


LIFECYCLE = """
    import numpy as np
    from rtvoice.playback import Player
    player = Player(22050)
    before = dict(vars(player))
    player.open()
    assert player.is_open and player.device.name == "default", player.device
    player.close()
    player.close()  # idempotent
    assert vars(player) == before, (vars(player), before)
    try:
        player.write(np.zeros(10, np.float32))
    except RuntimeError as exc:
        assert "not open" in str(exc)
    else:
        raise AssertionError("write on a closed player")
    with player:  # and it opens again
        player.write(np.full(2205, 0.25, np.float32), last=True)
    assert not player.is_open
    print("ok")
"""


def test_close_is_idempotent_and_a_closed_player_reopens(make_card: MakeCard) -> None:
    card = make_card(Sink(speed=4.0))
    result = run_python(card, LIFECYCLE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert np.count_nonzero(card.sound() == np.float32(0.25)) == 2205


UNPLUG = """
    import time
    import numpy as np
    from rtvoice.errors import AudioDeviceError
    from rtvoice.playback import Player
    try:
        with Player(22050) as player:
            for _ in range(100):
                player.write(np.full(4410, 0.1, np.float32))
    except AudioDeviceError as exc:
        print("AudioDeviceError:", exc)
"""


def test_a_device_unplugged_mid_write_raises_a_device_error(make_card: MakeCard) -> None:
    card = make_card(Sink(speed=1.0))
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(UNPLUG)], env=child_env(card),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert card.wait_for_sound(4410, 30)
    unplugged = time.monotonic()
    card.unplug()
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert "AudioDeviceError: Audio device 0: default (ALSA) stopped in the middle of playback" in out
    assert time.monotonic() - unplugged < 10


def test_no_output_device(make_card: MakeCard) -> None:
    card = make_card(no_devices=True)
    result = run_python(card, """
        from rtvoice.errors import AudioDeviceError
        from rtvoice.playback import Player, list_output_devices
        assert list_output_devices() == []
        try:
            Player(22050).open()
        except AudioDeviceError as exc:
            print(exc)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("No audio output device found.")
