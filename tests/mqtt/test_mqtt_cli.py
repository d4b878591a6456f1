"""``rtvoice mqtt`` as a real subprocess: graceful SIGTERM, and the Last Will on SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .conftest import Mosquitto, Recorder

REPO = Path(__file__).resolve().parents[2]
LONG = " ".join(f"This is sentence number {n} of a very long announcement." for n in range(1, 17))


@asynccontextmanager
async def daemon(broker: Mosquitto, voice_dir: Path, prefix: str, *extra: str,
                 ) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtvoice", "mqtt", "--broker", broker.url, "--prefix", prefix,
        "--voice", str(voice_dir), "--backend", "onnxruntime", "--device", "cpu", "--no-play",
        "--max-steps", "24", *extra, env=env, stderr=asyncio.subprocess.PIPE)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_sigterm_finishes_the_current_fails_the_queued_and_the_session_resumes(
        broker: Mosquitto, tiny_voice_dir: Path, recorder: Callable[..., Recorder]) -> None:
    prefix = f"cli{uuid.uuid4().hex[:6]}/"
    async with recorder(f"{prefix}#") as rec, daemon(broker, tiny_voice_dir, prefix, "--shutdown-grace", "60",
                                                     "--client-id", "cli-graceful") as process:
        await rec.wait_for(lambda: any(m.payload == b"online" for m in rec.on(f"{prefix}status")), timeout=60)
        for ident, text in (("current", LONG), ("queued-1", "Queued one."), ("queued-2", "Queued two.")):
            await rec.publish(f"{prefix}say", json.dumps({"text": text, "id": ident}))
        await rec.wait_events(prefix, "started", {"current"})
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        await rec.wait_for(lambda: rec.on(f"{prefix}status")[-1].payload == b"offline")
        assert process.stderr is not None
        stderr = (await process.stderr.read()).decode()

        # A fixed --client-id keeps the session: what is published while the daemon is
        # stopped is spoken when it is back.
        await rec.publish(f"{prefix}say", json.dumps({"text": "While you were away.", "id": "while-stopped"}))
        async with daemon(broker, tiny_voice_dir, prefix, "--client-id", "cli-graceful") as again:
            await rec.wait_events(prefix, "finished", {"while-stopped"}, timeout=60)
            again.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(again.wait(), 60) == 0

    assert "SIGTERM" in stderr, stderr
    assert [e["id"] for e in rec.events(prefix, "finished")] == ["current", "while-stopped"]
    assert [(e["id"], e["reason"]) for e in rec.events(prefix, "failed")] == [
        ("queued-1", "shutdown"), ("queued-2", "shutdown")]
    assert len(rec.on(f"{prefix}audio/current")) == 1


async def test_sigkill_leaves_the_last_will(broker: Mosquitto, tiny_voice_dir: Path,
                                            recorder: Callable[..., Recorder]) -> None:
    prefix = f"cli{uuid.uuid4().hex[:6]}/"
    async with daemon(broker, tiny_voice_dir, prefix, "--protocol", "3.1.1") as process:
        async with recorder(f"{prefix}status") as rec:
            await rec.wait_for(lambda: any(m.payload == b"online" for m in rec.messages), timeout=60)
            process.kill()
            await rec.wait_for(lambda: rec.messages[-1].payload == b"offline")
    async with recorder(f"{prefix}status") as late:  # retained for whoever asks later
        await late.wait_for(lambda: bool(late.messages))
    assert [(m.payload, m.retain) for m in late.messages] == [(b"offline", True)]


def test_max_queued_and_max_spoken_chars_options_reach_the_config() -> None:
    from rtvoice.announce import AnnouncerConfig
    from rtvoice.cli import build_parser
    from rtvoice.commands.mqtt import announcer_config

    config = announcer_config(build_parser().parse_args(["mqtt", "--max-queued", "3", "--max-spoken-chars", "40"]))
    assert config.max_queued == 3 and config.synthesis.max_spoken_chars == 40
    default = announcer_config(build_parser().parse_args(["mqtt"]))
    assert default.max_queued == AnnouncerConfig(default.broker).max_queued


def test_a_bad_max_queued_is_one_line_and_exit_2() -> None:
    """Refused by AnnouncerConfig's own check, before any broker or voice is touched."""
    import subprocess

    result = subprocess.run([sys.executable, "-m", "rtvoice", "mqtt", "--max-queued", "0", "--broker",
                             "mqtt://127.0.0.1:1"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == ["error: max_queued (--max-queued) must be at least 1, got 0."]


async def test_max_queued_refuses_announcements_beyond_it(broker: Mosquitto, tiny_voice_dir: Path,
                                                         recorder: Callable[..., Recorder]) -> None:
    prefix = f"cli{uuid.uuid4().hex[:6]}/"
    async with recorder(f"{prefix}#") as rec, daemon(broker, tiny_voice_dir, prefix, "--max-queued", "1") as process:
        await rec.wait_for(lambda: any(m.payload == b"online" for m in rec.on(f"{prefix}status")), timeout=60)
        await rec.publish(f"{prefix}say", json.dumps({"text": LONG, "id": "current"}))
        await rec.wait_events(prefix, "started", {"current"})
        for ident in ("waits", "refused"):
            await rec.publish(f"{prefix}say", json.dumps({"text": "Queued.", "id": ident}))
        await rec.wait_events(prefix, "failed", {"refused"}, timeout=60)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    failed = {e["id"]: e["reason"] for e in rec.events(prefix, "failed")}
    assert failed["refused"] == "queue_full" and failed.get("waits") != "queue_full", failed
