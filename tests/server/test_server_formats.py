"""Issue 24 part 4: ``response_format`` serves all six of OpenAI's formats, decoded back here by PyAV."""

from __future__ import annotations

import io

import av
import pytest
from server_support import MAX_STEPS, LiveServer

HOP = 256  # the tiny voice's hop length
RATE = 22050
SECONDS = MAX_STEPS * HOP / RATE  # one sentence: the random tiny voice always runs to its step limit


def decode(data: bytes) -> tuple[float, int, str]:
    """(seconds, sample rate, codec) of an encoded file."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = 0
        rate = 0
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
        return samples / rate, rate, stream.codec_context.name.removesuffix("float")  # FFmpeg's "mp3float"


@pytest.mark.parametrize(("fmt", "media_type", "codec", "rate", "slack_s"), [
    ("mp3", "audio/mpeg", "mp3", RATE, 0.08),  # LAME pads to whole 1152-sample frames and adds its delay
    ("opus", "audio/ogg", "opus", 48000, 0.03),  # Ogg Opus always decodes at 48 kHz
    ("aac", "audio/aac", "aac", RATE, 0.12),  # AAC's 1024-sample frames and priming
    ("flac", "audio/flac", "flac", RATE, 0.0),
    ("wav", "audio/wav", "pcm_s16le", RATE, 0.0),
])
def test_each_format_decodes_to_the_same_length(server: LiveServer, fmt: str, media_type: str, codec: str, rate: int,
                                                slack_s: float) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hello there.", "voice": "tiny",
                                                          "response_format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    assert response.headers["transfer-encoding"] == "chunked"  # streamed, not buffered whole
    seconds, decoded_rate, decoded_codec = decode(response.content)
    assert decoded_codec == codec
    assert decoded_rate == rate
    assert abs(seconds - SECONDS) <= slack_s + 1e-6, (seconds, SECONDS)


def test_pcm_is_raw_24_khz(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"input": "Hello there.", "voice": "tiny",
                                                          "response_format": "pcm"})
    assert response.status_code == 200 and response.headers["x-sample-rate"] == "24000"
    assert abs(len(response.content) / 2 / 24000 - SECONDS) < 2 / 24000


def test_the_openai_client_gets_mp3_by_its_own_defaults(server: LiveServer) -> None:
    """A drop-in OpenAI client: a hard-coded voice name and mp3."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.config.token or "none")
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input="Hello.",
                                                            response_format="mp3") as response:
        data = response.read()
    seconds, rate, codec = decode(data)
    assert (codec, rate) == ("mp3", RATE) and abs(seconds - SECONDS) <= 0.08


def test_a_client_leaving_an_mp3_stream_leaves_the_server_serving(server: LiveServer) -> None:
    """The encoder runs in a worker thread; closing it under a departed client must harm no one."""
    text = " ".join(f"Sentence number {i}." for i in range(30))
    for _ in range(3):
        with server.client() as client, client.stream("POST", "/v1/audio/speech", json={
                "input": text, "voice": "tiny", "response_format": "mp3"}) as response:
            assert response.status_code == 200
            next(response.iter_bytes())  # some audio, then hang up
    with server.client() as client:
        after = client.post("/v1/audio/speech", json={"input": "Hello there.", "voice": "tiny",
                                                      "response_format": "mp3"})
    assert after.status_code == 200
    seconds, rate, codec = decode(after.content)
    assert (codec, rate) == ("mp3", RATE) and abs(seconds - SECONDS) <= 0.11
