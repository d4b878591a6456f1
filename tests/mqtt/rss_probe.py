"""Measure the daemon's memory around one long announcement published over a real Mosquitto.

Run: ``python -m tests.mqtt.rss_probe [--voice DIR] [--chars 4999] [--audio-format wav|parts]``.
It starts Mosquitto (as the tests do), runs an :class:`~rtvoice.announce.Announcer` without
local playback in this process, publishes one announcement of ``--chars`` characters, waits
for its ``finished`` event and all its audio, and prints the resident set size (VmRSS)
before, at its peak (VmHWM) and after, with the largest MQTT message the daemon sent.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rtvoice import SynthesisConfig, Voice
from rtvoice.announce import Announcer, AnnouncerConfig, BrokerSettings

from .conftest import Mosquitto, Recorder

SENTENCE = "The train to Cambridge is delayed by ten minutes because of a signal failure near the station. "


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` value in KiB (VmRSS: resident now; VmHWM: the peak so far)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> None:
    """Make VmHWM start again from the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def long_text(chars: int) -> str:
    return (SENTENCE * (chars // len(SENTENCE) + 1))[:chars].rstrip() + "."


async def probe(voice: Voice, port: int, chars: int, audio_format: str, repeat: int = 1) -> dict[str, Any]:
    prefix = f"p{uuid.uuid4().hex[:6]}/"
    settings = BrokerSettings.from_url(f"mqtt://127.0.0.1:{port}", client_id=f"probe-{uuid.uuid4().hex[:6]}")
    config = AnnouncerConfig(settings, prefix=prefix, synthesis=SynthesisConfig(seed=0),
                             **({"audio_format": audio_format} if audio_format != "wav" else {}))
    # The audio is counted by mosquitto_sub in its own process, so that this one holds none of it.
    sub = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", f"{prefix}audio/#", "-F", "%t %l",
        stdout=asyncio.subprocess.PIPE)
    async with Recorder(port, [f"{prefix}finished", f"{prefix}failed", f"{prefix}audio/+/end"]) as rec, \
            Announcer(voice, config) as announcer:
        await asyncio.wait_for(announcer.wait_connected(), 30)
        # Warm up with a short one, so that "before" includes the runtime's steady state.
        await rec.publish(f"{prefix}say", json.dumps({"text": SENTENCE, "id": "warm"}))
        await rec.wait_events(prefix, "finished", {"warm"}, timeout=120)
        await asyncio.sleep(0.5)
        gc.collect()
        before = status_kib("VmRSS")
        reset_peak()
        afters = []
        for n in range(repeat):
            start = time.monotonic()
            await rec.publish(f"{prefix}say", json.dumps({"text": long_text(chars), "id": f"long{n}"}))
            await rec.wait_events(prefix, "finished", {f"long{n}"}, timeout=600)
            wall = time.monotonic() - start
            # The end marker is published after the last part: then the outbox has drained.
            await rec.wait_for(lambda n=n: bool(rec.on(f"{prefix}audio/long{n}/end")), timeout=600)
            await asyncio.sleep(0.5)
            gc.collect()
            afters.append(round(status_kib("VmRSS") / 1024, 1))
        finished = next(e for e in rec.events(prefix, "finished") if e["id"] == "long0")
        peak, after = status_kib("VmHWM"), status_kib("VmRSS")
    sub.terminate()
    out, _ = await sub.communicate()
    audio = [(t, int(n)) for t, n in (line.split() for line in out.decode().splitlines())
             if t.startswith(f"{prefix}audio/long0")]
    return {
        "chars": chars, "audio_format": audio_format, "wall_s": round(wall, 1),
        "audio_s": finished["timings"]["audio_s"], "messages": len(audio),
        "largest_message_bytes": max((n for _, n in audio), default=0),
        "audio_bytes": sum(n for _, n in audio),
        "rss_before_mib": round(before / 1024, 1), "rss_peak_mib": round(peak / 1024, 1),
        "rss_after_mib": round(after / 1024, 1), "rss_after_each_mib": afters,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", default=str(Path(__file__).parents[2] / "rtvoice" / "voices" / "default"))
    parser.add_argument("--chars", type=int, default=4999)
    parser.add_argument("--audio-format", default="wav")
    parser.add_argument("--repeat", type=int, default=1, help="announcements in a row (RSS after each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Voice.load(args.voice) as voice:
        broker = Mosquitto(Path(folder))
        broker.start()
        try:
            result = asyncio.run(probe(voice, broker.port, args.chars, args.audio_format, args.repeat))
        finally:
            broker.stop()
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
