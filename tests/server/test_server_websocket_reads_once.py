"""A WebSocket sentence is read out (normalized) once: counted when it is queued, spoken from that reading.

Before, the receiver read each sentence out to count it against ``max_spoken_chars``, and the
synthesis read the raw sentence out again. The app runs in this process (Starlette's test
client, the tiny voice on ONNX Runtime), so every call of the normalizer can be seen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from rtvoice import synthesizer
from rtvoice.config import SynthesisConfig
from rtvoice.server import ServerConfig, create_app

MAX_STEPS = 24


def _turn(ws: Any) -> list[Any]:
    """Messages up to ``done``: dicts for JSON, bytes for audio."""
    out: list[Any] = []
    while not out or not isinstance(out[-1], dict) or out[-1]["type"] != "done":
        message = ws.receive()
        out.append(message["bytes"] if message.get("bytes") is not None else json.loads(message["text"]))
    return out


def test_each_websocket_sentence_is_read_out_once(tiny_voice_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []
    normalize = synthesizer.normalize_keeping_arpabet

    def counted(text: str, *args: Any, **kwargs: Any) -> str:
        read.append(text)
        return normalize(text, *args, **kwargs)

    monkeypatch.setattr(synthesizer, "normalize_keeping_arpabet", counted)
    config = ServerConfig(voice=tiny_voice_dir, voices_dir=None, backend="onnxruntime", device="cpu",
                          wyoming_port=None, synthesis=SynthesisConfig(max_decoder_steps=MAX_STEPS))
    sentences = ["It costs $5 on the 3rd.", "Then 10 more."]
    ssml = '<speak>Call 42 <break time="100ms"/> now.</speak>'
    with TestClient(create_app(config)) as client, client.websocket_connect("/v1/audio/stream") as ws:
        assert json.loads(ws.receive_text())["type"] == "ready"
        ws.send_text(json.dumps({"type": "text", "text": " ".join(sentences)}))
        ws.send_text(json.dumps({"type": "end"}))
        plain = _turn(ws)
        ws.send_text(json.dumps({"type": "text", "text": ssml}))  # an SSML document comes whole
        ws.send_text(json.dumps({"type": "end"}))
        marked = _turn(ws)

    started = [m["text"] for m in plain if isinstance(m, dict) and m["type"] == "started"]
    finished = [m for m in plain + marked if isinstance(m, dict) and m["type"] == "finished"]
    assert started == sentences and len(finished) == 3, plain + marked
    assert sum(len(m) for m in marked if isinstance(m, bytes)) > 0
    # Each sentence, and each text segment of the SSML, read out once: never twice, never its reading again.
    assert read == [*sentences, "Call 42", "now."], read
