"""The OpenAI-compatible HTTP API against a live server, with httpx and the openai client."""

from __future__ import annotations

import struct
import time

import httpx
import openai
import pytest
from server_support import MAX_STEPS, TOKEN, LiveServer

HOP = 256  # the tiny voice's hop length
SENTENCE_SAMPLES = MAX_STEPS * HOP


def parse_streaming_wav(data: bytes) -> tuple[int, bytes]:
    """Check a streamed WAV header (sizes unknown) and return (sample rate, PCM)."""
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    fmt_size, audio_format, channels, rate, byte_rate, align, bits = struct.unpack("<IHHIIHH", data[16:36])
    assert (fmt_size, audio_format, channels, bits, align, byte_rate) == (16, 1, 1, 16, 2, 2 * rate)
    assert data[36:40] == b"data"
    assert struct.unpack("<I", data[40:44])[0] == 0xFFFFFFFF - 36  # the streaming convention
    return rate, data[44:]


def test_speech_streams_a_wav_with_a_streaming_header(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hello there.", "voice": "tiny",
                                                          "response_format": "wav"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["transfer-encoding"] == "chunked"
    rate, pcm = parse_streaming_wav(response.content)
    assert rate == 22050 == int(response.headers["x-sample-rate"])
    assert len(pcm) == 2 * SENTENCE_SAMPLES


def test_two_sentences_get_the_voice_pause_between_them(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hello there. Bye now.",
                                                          "voice": "tiny"})
    _, pcm = parse_streaming_wav(response.content)
    pause = int(0.15 * 22050)
    assert len(pcm) == 2 * (2 * SENTENCE_SAMPLES + pause)


def test_format_defaults_to_wav_and_voice_to_the_default_voice(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"input": "Hi."})
    assert response.status_code == 200
    assert response.headers["x-voice"] == "other"
    parse_streaming_wav(response.content)


@pytest.mark.parametrize("speed", [1.0, 2.0, 0.5])
def test_pcm_is_24_khz_like_openai_and_speed_scales_the_length(server: LiveServer, speed: float) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hello.", "voice": "tiny",
                                                          "response_format": "pcm", "speed": speed})
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/pcm"
    assert response.headers["x-sample-rate"] == "24000"
    expected = SENTENCE_SAMPLES / 22050 * 24000 / speed
    assert abs(len(response.content) / 2 - expected) <= 2


def test_audio_arrives_before_the_synthesis_ends(server: LiveServer) -> None:
    text = " ".join(f"Sentence number {i}." for i in range(8))
    with server.client() as client:
        start = time.perf_counter()
        with client.stream("POST", "/v1/audio/speech", json={"input": text, "voice": "tiny"}) as response:
            chunks = response.iter_raw()
            next(chunks)
            first = time.perf_counter() - start
            for _ in chunks:
                pass
        total = time.perf_counter() - start
    assert first < total / 3, f"first bytes after {first:.2f} s of {total:.2f} s"


def test_voices_health_and_metrics(server: LiveServer) -> None:
    with server.client() as client:
        voices = client.get("/v1/audio/voices").json()
        health = httpx.get(f"{server.base_url}/health")  # no token needed
        metrics = client.get("/metrics")
    assert [v["id"] for v in voices["data"]] == ["other", "tiny"] == voices["voices"]
    assert voices["data"][0]["default"] is True and voices["data"][0]["sample_rate"] == 22050
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    for name in ("rtvoice_time_to_first_audio_seconds", "rtvoice_realtime_factor", "rtvoice_active_streams",
                 "rtvoice_queued_streams", "rtvoice_http_requests_total"):
        assert name in metrics.text
    assert "rtvoice_gpu_memory_used_bytes{" not in metrics.text  # CPU voices: no GPU series


@pytest.mark.parametrize(("body", "status", "param", "code"), [
    ({"input": "Hi.", "voice": "alloy2"}, 400, "voice", "voice_not_found"),  # "alloy" is an alias (issue 24)
    ({"input": "Hi.", "voice": "../tiny"}, 400, "voice", "voice_not_found"),
    ({"input": "Hi.", "voice": "/etc/passwd"}, 400, "voice", "voice_not_found"),
    ({"input": "Hi.", "response_format": "wma"}, 400, "response_format", "unsupported_response_format"),
    ({"input": "Hi.", "response_format": "ogg"}, 400, "response_format", "unsupported_response_format"),
    ({"input": "Hi.", "stream_format": "sse"}, 400, "stream_format", "unsupported_value"),
    ({"input": "x" * 4097}, 400, "input", "string_above_max_length"),
    ({"input": "   "}, 400, "input", "empty_input"),
    ({"input": "\x00\x01\x7f\u200b"}, 400, "input", "invalid_input"),
    ({"voice": "tiny"}, 400, "input", "missing_required_parameter"),
    ({"input": 5}, 400, "input", "invalid_type"),
    ({"input": "Hi.", "speed": 5}, 400, "speed", "invalid_value"),
    ({"input": "Hi.", "speed": "fast"}, 400, "speed", "invalid_type"),
    ({"input": "Hi.", "speed": True}, 400, "speed", "invalid_type"),
    ({"input": "Hi.", "voice": ["tiny"]}, 400, "voice", "invalid_type"),
])
def test_bad_requests_get_openai_style_errors(server: LiveServer, body: dict[str, object], status: int,
                                              param: str, code: str) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")


def test_a_token_is_required_on_every_route_but_health(server: LiveServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}):
        for method, path in (("POST", "/v1/audio/speech"), ("GET", "/v1/audio/voices"), ("GET", "/metrics")):
            response = httpx.request(method, server.base_url + path, headers=headers, json={"input": "Hi."})
            assert response.status_code == 401, (headers, path)
            assert response.json()["error"]["code"] == "invalid_api_key"
            assert response.headers["www-authenticate"] == "Bearer"


def test_openai_client_streams_speech(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=TOKEN, max_retries=0)
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="tiny", input="Hello from the OpenAI client.", response_format="wav") as response:
        assert response.headers["content-type"] == "audio/wav"
        data = b"".join(response.iter_bytes())
    rate, pcm = parse_streaming_wav(data)
    assert rate == 22050 and len(pcm) == 2 * SENTENCE_SAMPLES


def test_openai_client_sees_errors_as_its_own_exceptions(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=TOKEN, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="nosuchvoice", input="Hello.")
    assert caught.value.code == "voice_not_found"
    assert caught.value.param == "voice"
    wrong = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.audio.speech.create(model="tts-1", voice="tiny", input="Hello.")
