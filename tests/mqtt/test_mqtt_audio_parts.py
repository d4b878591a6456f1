"""Long announcements' audio over MQTT: WAV parts, the cap on one WAV message, and memory.

A 4999-character announcement used to go out as one 11-15 MB WAV message, held several
times over in the daemon, whose RSS stayed high afterwards.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from rtvoice import SynthesisConfig
from rtvoice.announce import Announcer, AnnouncerConfig
from rtvoice.audio import read_wav

if TYPE_CHECKING:
    from rtvoice import Voice

    from .conftest import PacedSink, Recorder

MOSQUITTO = shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()
LONG = " ".join(f"Sentence number {n} of a long announcement." for n in range(1, 9))
ROOT = Path(__file__).parents[2]


async def speak(voice: Voice, config: AnnouncerConfig, rec_factory: Callable[..., Recorder],
                ident: str = "a") -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """Say LONG once; returns its ``finished`` event and the audio messages, in order."""
    p = config.prefix
    async with rec_factory(f"{p}#") as rec, Announcer(voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        await rec.publish(f"{p}say", json.dumps({"text": LONG, "id": ident}))
        await rec.wait_events(p, "finished", {ident})
        await asyncio.sleep(0.2)
    finished = next(e for e in rec.events(p, "finished") if e["id"] == ident)
    return finished, [(m.topic, m.payload) for m in rec.messages if m.topic.startswith(f"{p}audio/")]


def joined(parts: list[tuple[str, bytes]], rate: int) -> np.ndarray:
    samples = []
    for _, wav in parts:
        data, part_rate = read_wav(wav)
        assert part_rate == rate
        samples.append(data)
    return np.concatenate(samples)


async def test_parts_are_numbered_wavs_that_join_into_the_whole(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig],
        recorder: Callable[..., Recorder]) -> None:
    synthesis = SynthesisConfig(max_decoder_steps=24, seed=3)
    whole_config = announcer_config(synthesis=synthesis)
    whole, whole_audio = await speak(tiny_voice, whole_config, recorder)
    parts_config = announcer_config(synthesis=synthesis, audio_format="parts", audio_part_bytes=4096)
    finished, audio = await speak(tiny_voice, parts_config, recorder)

    p = parts_config.prefix
    assert [t for t, _ in whole_audio] == [f"{whole_config.prefix}audio/a"]
    assert whole["audio"] == {"format": "wav", "bytes": len(whole_audio[0][1])}
    *parts, (end_topic, end_payload) = audio
    assert [t for t, _ in parts] == [f"{p}audio/a/{n}" for n in range(len(parts))] and len(parts) > 3
    assert end_topic == f"{p}audio/a/end"
    assert all(len(wav) == 4096 + 44 for _, wav in parts[:-1])
    end = json.loads(end_payload)
    rate = tiny_voice.sample_rate
    samples = joined(parts, rate)
    assert end == {"id": "a", "parts": len(parts), "samples": len(samples), "sample_rate": rate,
                   "duration_s": round(len(samples) / rate, 4), "complete": True}
    assert finished["audio"] == {"format": "parts", "parts": len(parts), "bytes": sum(len(w) for _, w in parts)}
    reference, _ = read_wav(whole_audio[0][1])
    np.testing.assert_array_equal(samples, reference)  # the same audio, only cut into parts


async def test_a_wav_over_the_cap_goes_out_in_parts(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig],
        recorder: Callable[..., Recorder]) -> None:
    config = announcer_config(max_wav_bytes=8192, audio_part_bytes=4096)
    finished, audio = await speak(tiny_voice, config, recorder)
    assert finished["audio"]["format"] == "parts"
    assert max(len(payload) for _, payload in audio) <= 8192
    assert audio[-1][0] == f"{config.prefix}audio/a/end" and json.loads(audio[-1][1])["complete"] is True


async def test_a_stopped_announcement_ends_its_parts_incomplete(
        tiny_voice: Voice, announcer_config: Callable[..., AnnouncerConfig], recorder: Callable[..., Recorder],
        paced_sink: Callable[..., PacedSink]) -> None:
    config = announcer_config(audio_format="parts", audio_part_bytes=1024, publish_audio=True)
    p = config.prefix
    async with recorder(f"{p}#") as rec, Announcer(tiny_voice, config, sink=paced_sink(speed=2.0)) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        await rec.publish(f"{p}say", json.dumps({"text": LONG, "id": "a"}))
        await rec.wait_for(lambda: bool(rec.on(f"{p}audio/a/0")))
        await rec.publish(f"{p}cancel", "a")
        await rec.wait_for(lambda: bool(rec.on(f"{p}audio/a/end")))
    end = json.loads(rec.on(f"{p}audio/a/end")[0].payload)
    assert end["complete"] is False and end["parts"] >= 1
    assert [e["reason"] for e in rec.events(p, "failed")] == ["cancelled"]


@pytest.mark.skipif(not (ROOT / "rtvoice" / "voices" / "default" / "voice.json").exists(), reason="no default voice")
@pytest.mark.skipif(not (MOSQUITTO and shutil.which("mosquitto_sub")), reason="needs mosquitto and mosquitto_sub")
def test_a_4999_character_announcement_keeps_messages_small_and_memory_flat() -> None:
    # The real voice, in its own process (tests/mqtt/rss_probe.py), so that RSS is the daemon's alone.
    # Before: one 11.2 MB WAV message, RSS +99 MiB at the peak and +17 MiB after.
    result = subprocess.run([sys.executable, "-m", "tests.mqtt.rss_probe", "--chars", "4999"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=True)
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    assert numbers["audio_s"] > 200 and numbers["audio_bytes"] > 8_000_000  # all of it was published
    assert numbers["largest_message_bytes"] <= AnnouncerConfig.max_wav_bytes
    assert numbers["rss_peak_mib"] - numbers["rss_before_mib"] < 80, numbers
    assert numbers["rss_after_mib"] - numbers["rss_before_mib"] < 12, numbers


def test_cli_options_for_sites_and_audio() -> None:
    from rtvoice.announce import ConfigError
    from rtvoice.cli import build_parser
    from rtvoice.commands.mqtt import announcer_config

    def config(*argv: str) -> AnnouncerConfig:
        return announcer_config(build_parser().parse_args(["mqtt", *argv]))

    every = config("--hermes")
    assert every.site_ids == () and every.default_site == "default" and every.audio_format == "wav"
    some = config("--hermes", "--site-id", "kitchen", "--site-id", "bedroom", "--site-id", "kitchen")
    assert some.site_ids == ("kitchen", "bedroom") and some.default_site == "kitchen"
    parts = config("--audio-format", "parts", "--max-wav-mb", "2")
    assert parts.audio_format == "parts" and parts.max_wav_bytes == 2 * 1024 * 1024
    for bad in (["--max-wav-mb", "0"], ["--max-wav-mb", "nan"], ["--max-wav-mb", "1000"], ["--site-id", "a/b"]):
        with pytest.raises(ConfigError):
            config(*bad)
