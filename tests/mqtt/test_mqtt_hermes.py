"""Rhasspy Hermes compatibility, checked with plain mosquitto_pub / mosquitto_sub as the outside client."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from rtvoice.announce import Announcer, AnnouncerConfig
from rtvoice.audio import read_wav

if TYPE_CHECKING:
    from rtvoice import Voice

    from .conftest import Mosquitto

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("mosquitto_sub", "mosquitto_pub", "stdbuf")),
    reason="needs mosquitto-clients (and coreutils' stdbuf)")


class MosquittoSub:
    """``mosquitto_sub`` printing ``<topic> <hex payload>`` per message."""

    def __init__(self, broker: Mosquitto, *topics: str) -> None:
        self.args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-V", "mqttv5",
                     "-F", "%t %x\\n"]
        for topic in topics:
            self.args += ["-t", topic]
        self.lines: list[tuple[str, bytes]] = []
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> MosquittoSub:
        # "-d" prints the SUBACK, so that we know the subscription is in place before publishing;
        # stdbuf makes mosquitto_sub write each line as it happens rather than at exit.
        self.process = await asyncio.create_subprocess_exec(
            "stdbuf", "-oL", *self.args, "-d", stdout=asyncio.subprocess.PIPE)
        try:
            await self._read_until(lambda line: "SUBACK" in line)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        await self.process.wait()

    async def _read_until(self, done: Callable[[str], bool]) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), 30)
            assert raw, "mosquitto_sub exited"
            line = raw.decode().rstrip("\n")
            topic, _, payload = line.partition(" ")
            if "/" in topic and not line.startswith("Client "):
                self.lines.append((topic, bytes.fromhex(payload)))
            if done(line):
                return

    async def wait_for(self, topic: str) -> bytes:
        """The payload of the next message on ``topic``."""
        seen = len(self.lines)
        await self._read_until(lambda line: any(t == topic for t, _ in self.lines[seen:]))
        return next(p for t, p in self.lines[seen:] if t == topic)


async def mosquitto_pub(broker: Mosquitto, topic: str, message: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", topic, "-m", message)
    assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_hermes_say_publishes_play_bytes_then_say_finished(
        tiny_voice: Voice, broker: Mosquitto, announcer_config: Callable[..., AnnouncerConfig]) -> None:
    # A long playFinished timeout: sayFinished arriving promptly shows the wait ended on playFinished.
    config = announcer_config(hermes=True, site_ids=("kitchen",), hermes_play_finished_extra_s=60.0)
    async with MosquittoSub(broker, "hermes/tts/sayFinished", "hermes/audioServer/+/playBytes/#",
                            "hermes/error/tts") as sub, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        await mosquitto_pub(broker, "hermes/tts/say", json.dumps(
            {"text": "Dinner is ready.", "siteId": "bedroom", "id": "not-ours"}))
        await mosquitto_pub(broker, "hermes/tts/say", json.dumps(
            {"text": "Dinner is ready.", "siteId": "kitchen", "id": "req-1", "sessionId": "s-1", "lang": "en_US"}))
        wav = await sub.wait_for("hermes/audioServer/kitchen/playBytes/req-1")
        # Play it "elsewhere" and say so, as a Hermes audio server does.
        await mosquitto_pub(broker, "hermes/audioServer/kitchen/playFinished",
                            json.dumps({"id": "req-1", "siteId": "kitchen", "sessionId": "s-1"}))
        start = time.monotonic()
        finished = await sub.wait_for("hermes/tts/sayFinished")
        assert time.monotonic() - start < 20

    assert json.loads(finished) == {"id": "req-1", "siteId": "kitchen", "sessionId": "s-1"}
    samples, rate = read_wav(wav)
    assert rate == tiny_voice.sample_rate and len(samples) > rate // 4
    topics = [t for t, _ in sub.lines]
    assert topics == ["hermes/audioServer/kitchen/playBytes/req-1", "hermes/tts/sayFinished"]  # bedroom ignored


async def test_hermes_bad_request_gets_an_error_and_say_finished(
        tiny_voice: Voice, broker: Mosquitto, announcer_config: Callable[..., AnnouncerConfig]) -> None:
    config = announcer_config(hermes=True)
    async with MosquittoSub(broker, "hermes/tts/sayFinished", "hermes/error/tts",
                            f"{config.prefix}failed") as sub, Announcer(tiny_voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 10)
        await mosquitto_pub(broker, "hermes/tts/say", '{"siteId": "default", "id": "r2", "sessionId": "s-2"}')
        error = await sub.wait_for("hermes/error/tts")
        finished = await sub.wait_for("hermes/tts/sayFinished")
        await mosquitto_pub(broker, "hermes/tts/say", "{not json")
        unreadable = await sub.wait_for("hermes/error/tts")

    assert json.loads(error) == {"error": json.loads(error)["error"], "siteId": "default", "context": "r2",
                                 "sessionId": "s-2"}
    assert json.loads(finished) == {"id": "r2", "siteId": "default", "sessionId": "s-2"}
    assert json.loads(unreadable)["context"] is None
    failed = [json.loads(p) for t, p in sub.lines if t == f"{config.prefix}failed"]
    assert [(f["id"], f["reason"], f["source"]) for f in failed] == [
        ("r2", "invalid_field", "hermes"), (None, "invalid_json", "hermes")]
