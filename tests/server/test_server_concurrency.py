"""Many clients of every protocol at once get whole, uncorrupted audio."""

from __future__ import annotations

import asyncio
import json

import httpx
from server_support import MAX_STEPS, LiveServer
from websockets.asyncio.client import connect
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeVoice

TEXT = "First sentence here. And a second one."
PAUSE_BYTES = 2 * int(0.15 * 22050)
TEXT_BYTES = 2 * (2 * MAX_STEPS * 256) + PAUSE_BYTES


async def over_http(server: LiveServer) -> bytes:
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=60) as client:
        body = {"input": TEXT, "voice": "tiny", "response_format": "wav"}
        response = await client.post("/v1/audio/speech", json=body)
        assert response.status_code == 200
        return response.content[44:]


async def over_websocket(server: LiveServer) -> bytes:
    audio = b""
    async with connect(server.ws_url, additional_headers=server.headers) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "config", "voice": "tiny"}))
        await ws.send(json.dumps({"type": "text", "text": TEXT}))
        await ws.send(json.dumps({"type": "end"}))
        async with asyncio.timeout(60):
            while True:
                message = await ws.recv()
                if isinstance(message, bytes):
                    audio += message
                elif json.loads(message)["type"] == "done":
                    return audio


async def over_wyoming(server: LiveServer) -> bytes:
    assert server.wyoming_port is not None
    audio = b""
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port, read_timeout=60) as wyoming:
        await wyoming.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name="tiny")).event())
        while True:
            event = await wyoming.read_event()
            assert event is not None
            if event.type == "audio-chunk":
                audio += event.payload or b""
            elif event.type == "audio-stop":
                return audio


async def test_many_clients_at_once_get_identical_whole_audio(server: LiveServer) -> None:
    jobs = [over_http(server) for _ in range(6)] + [over_websocket(server) for _ in range(3)] + [
        over_wyoming(server) for _ in range(3)]
    results = await asyncio.gather(*jobs)
    assert all(len(audio) == TEXT_BYTES for audio in results), [len(a) for a in results]
    # Same text, voice and seed: every client hears the same samples, however the work interleaved.
    # (The WebSocket speaks each sentence as a synthesis of its own, which draws its noise as
    # a first sentence, so from the second sentence on it differs from a whole-text synthesis.)
    http, ws, wyoming = results[:6], results[6:9], results[9:]
    assert len(set(http + wyoming)) == 1
    assert len(set(ws)) == 1
    assert ws[0][:TEXT_BYTES // 3] == http[0][:TEXT_BYTES // 3]  # the first sentence is the same
    await asyncio.to_thread(server.wait_idle)
