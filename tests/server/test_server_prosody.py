"""SSML and the rate-keeping ``speed`` through the live server's HTTP and WebSocket APIs.

The tiny voice never fires its gate: each sentence is exactly MAX_STEPS frames at rate 1,
so audio lengths say how the request was read.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from server_support import MAX_STEPS, LiveServer, start_server, stop_server
from test_server_openai import parse_streaming_wav
from test_server_websocket import audio_bytes, events_until
from websockets.asyncio.client import connect

from rtvoice.config import SynthesisConfig
from rtvoice.server import ServerConfig

HOP = 256
SENTENCE = MAX_STEPS * HOP


def speech(server: LiveServer, **body: object) -> tuple[int, dict[str, object] | bytes]:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"voice": "tiny", **body})
    return response.status_code, response.json() if response.status_code != 200 else response.content


def test_a_leading_speak_is_read_as_ssml(server: LiveServer) -> None:
    status, body = speech(server, input='<speak>Hello <break time="400ms"/> <prosody rate="2">there</prosody>.'
                                        '</speak>')
    assert status == 200 and isinstance(body, bytes)
    _, pcm = parse_streaming_wav(body)
    assert len(pcm) == 2 * (SENTENCE + int(0.4 * 22050) + SENTENCE // 2)


@pytest.mark.parametrize("speed", [0.5, 2.0])
def test_speed_multiplies_ssml_rates(server: LiveServer, speed: float) -> None:
    status, body = speech(server, input='<speak><prosody rate="x-slow">Hello.</prosody></speak>', speed=speed)
    assert status == 200 and isinstance(body, bytes)
    _, pcm = parse_streaming_wav(body)
    assert len(pcm) == 2 * round(MAX_STEPS / max(0.5, 0.5 * speed)) * HOP  # kept within 0.5-2


@pytest.mark.parametrize(("text", "message"), [
    ("<speak>Hello\n<prosody rate='fast'>there</speak>", "Malformed SSML at line 2, column 29: mismatched tag"),
    ('<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
     "<speak>&b;</speak>", "refused: it declares a DTD"),
    ('<speak><break time="30s"/>Hi.</speak>', "longer than 10 s"),
])
def test_bad_ssml_is_a_400_naming_the_place(server: LiveServer, text: str, message: str) -> None:
    status, body = speech(server, input=text)
    assert status == 400 and isinstance(body, dict)
    error = body["error"]
    assert isinstance(error, dict) and error["param"] == "input" and message in str(error["message"])


@pytest.mark.parametrize("speed", [0.25, 4.0])
def test_speed_outside_the_rate_range_is_refused(server: LiveServer, speed: float) -> None:
    status, body = speech(server, input="Hi.", speed=speed)
    assert status == 400 and isinstance(body, dict)
    assert "'speed' must be from 0.5 to 2.0" in str(body["error"])


async def test_websocket_speaks_a_whole_ssml_message(server: LiveServer) -> None:
    async with connect(server.ws_url, additional_headers=server.headers) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "config", "voice": "tiny", "speed": 2.0}))
        await ws.recv()
        await ws.send(json.dumps({"type": "text", "text": '<speak>One. <break time="1s"/> Two.</speak>'}))
        await ws.send(json.dumps({"type": "flush"}))
        spoken = await events_until(ws, "finished")
        await ws.send(json.dumps({"type": "text", "text": "<speak>Bad <x></speak>"}))
        await ws.send(json.dumps({"type": "flush"}))
        error = (await events_until(ws, "error"))[-1]
    assert spoken[0]["type"] == "started"
    assert audio_bytes(spoken) == 2 * (2 * SENTENCE // 2 + 22050)
    assert error["code"] == "invalid_text" and "Malformed SSML at line 1, column" in error["message"]


def test_ssml_volume_is_a_gain_on_the_samples(server: LiveServer) -> None:
    import numpy as np

    loud = speech(server, input="Hello.", response_format="pcm")[1]
    soft = speech(server, input='<speak><prosody volume="x-soft">Hello.</prosody></speak>', response_format="pcm")[1]
    assert isinstance(loud, bytes) and isinstance(soft, bytes) and len(loud) == len(soft)
    a, b = (np.frombuffer(x, "<i2").astype(np.float64) for x in (loud, soft))
    unclipped = np.abs(a) < 30000  # the random voice is loud: 16-bit output clips its peaks at full volume
    assert unclipped.mean() > 0.5
    assert np.abs(b - 0.3 * a)[unclipped].max() <= 40  # 0.3 of each sample, up to the 24 kHz resampler's rounding


async def test_serve_rate_is_the_default_speed(server_config: ServerConfig) -> None:
    live = start_server(replace(server_config, wyoming_port=None,
                                synthesis=SynthesisConfig(max_decoder_steps=MAX_STEPS, rate=2.0)))
    try:
        lengths = {}
        for speed in (None, 1.0):
            body = {"input": "Hello.", "voice": "tiny"} | ({} if speed is None else {"speed": speed})
            with live.client() as client:
                response = client.post("/v1/audio/speech", json=body)
            assert response.status_code == 200
            lengths[speed] = len(parse_streaming_wav(response.content)[1])
        async with connect(live.ws_url, additional_headers=live.headers) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "config", "voice": "tiny"}))
            config = json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "text", "text": "One. Two."}))
            await ws.send(json.dumps({"type": "end"}))
            turn = await events_until(ws, "done")
    finally:
        stop_server(live)
    assert lengths == {None: SENTENCE, 1.0: 2 * SENTENCE}  # 16-bit: bytes = 2 x samples
    assert config["speed"] is None  # not set: the server's rate
    assert audio_bytes(turn) == 2 * (SENTENCE // 2) * 2 + 2 * int(0.15 / 2 * 22050)  # two sentences at rate 2
