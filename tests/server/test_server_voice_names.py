"""Issue 24 parts 5 and 6: OpenAI's voice names are served, ``--voice-alias``, and what ``rtvoice serve`` prints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from server_support import LiveServer, free_port, wait_serving

from rtvoice.errors import VoiceError
from rtvoice.server.voices import OPENAI_VOICES, aliases_for


@pytest.mark.parametrize("name", ["alloy", "shimmer", "marin", "cedar"])
def test_openai_voice_names_get_the_default_voice(server: LiveServer, name: str) -> None:
    """Drop-in OpenAI clients hard-code these names; they used to get 400."""
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"input": "Hi.", "voice": name, "response_format": "pcm"})
    assert response.status_code == 200, response.text
    assert response.headers["x-voice"] == "other"  # the served default, by its own name
    assert len(response.content) > 0


def test_the_voice_list_names_the_aliases(server: LiveServer) -> None:
    with server.client() as client:
        listing = client.get("/v1/audio/voices").json()
    assert listing["voices"] == ["other", "tiny"]
    assert listing["aliases"] == {name: "other" for name in OPENAI_VOICES}


def test_aliases_map_openai_names_and_given_ones_and_never_hide_a_real_voice() -> None:
    aliases = aliases_for(["main", "alt", "nova"], "main", (("echo", "alt"), ("butler", "alt")))
    assert aliases["alloy"] == "main" and aliases["echo"] == "alt" and aliases["butler"] == "alt"
    assert "nova" not in aliases  # a voice really called nova is served as itself
    assert set(OPENAI_VOICES) - {"nova"} <= set(aliases)
    with pytest.raises(VoiceError, match="no voice 'nope' is served"):
        aliases_for(["main"], "main", (("echo", "nope"),))


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "rtvoice", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def test_serve_prints_what_it_listens_on_and_takes_aliases(tiny_voice_dir: Path) -> None:
    port, wyoming = free_port(), free_port()
    process = _serve("--voice", str(tiny_voice_dir), "--port", str(port), "--wyoming-port", str(wyoming),
                     "--backend", "onnxruntime", "--device", "cpu", "--max-steps", "8",
                     "--voice-alias", "butler=" + tiny_voice_dir.name)
    try:
        wait_serving(process, port)
        response = httpx.post(f"http://127.0.0.1:{port}/v1/audio/speech", timeout=30,
                              json={"input": "Hi.", "voice": "butler", "response_format": "pcm"})
        assert response.status_code == 200 and response.headers["x-voice"] == tiny_voice_dir.name
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/v1/audio/speech" in stderr
    assert f"ws://127.0.0.1:{port}/v1/audio/stream" in stderr
    assert f"tcp://127.0.0.1:{wyoming}" in stderr
    assert f"voices    {tiny_voice_dir.name} (default {tiny_voice_dir.name}" in stderr
    assert "backend onnxruntime on cpu" in stderr
    assert "Traceback" not in stderr


def test_an_alias_to_no_voice_is_one_line(tiny_voice_dir: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "rtvoice", "serve", "--voice", str(tiny_voice_dir), "--port",
                          str(free_port()), "--voice-alias", "echo=nope"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == (f"error: --voice-alias echo=nope: no voice 'nope' is served. "
                                  f"Note: the voices are {tiny_voice_dir.name}.")
