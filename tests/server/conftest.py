"""Live servers for the server tests: uvicorn in a background thread, on a free port.

Each server is the real thing (``uvicorn_config`` as ``rtvoice serve`` builds it, with
its lifespan, middlewares and Wyoming listener); tests talk to it with real clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from server_support import MAX_STEPS, TOKEN, LiveServer, free_port, start_server, stop_server

from rtvoice.config import SynthesisConfig
from rtvoice.server import LimitsConfig, ServerConfig


@pytest.fixture(scope="session")
def voices_dir(tiny_voice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A voices folder with the tiny voice under two names, ``other`` and ``tiny``."""
    folder = tmp_path_factory.mktemp("served")
    for name in ("other", "tiny"):
        (folder / name).symlink_to(tiny_voice_dir, target_is_directory=True)
    (folder / "not-a-voice").mkdir()
    return folder


@pytest.fixture(scope="session")
def server_config(voices_dir: Path) -> ServerConfig:
    return ServerConfig(
        voice=voices_dir / "tiny", voices_dir=None, backend="onnxruntime", device="cpu",
        token=TOKEN, wyoming_port=free_port(), synthesis=SynthesisConfig(max_decoder_steps=MAX_STEPS),
        limits=LimitsConfig(max_streams_per_client=16, max_pending_chars=2000),
    )


@pytest.fixture(scope="session")
def server(server_config: ServerConfig, voices_dir: Path) -> Iterator[LiveServer]:
    """The main server: token, two voices (``other``, the default, and ``tiny``), Wyoming, generous limits."""
    live = start_server(replace(server_config, voices_dir=voices_dir, voice=None))
    yield live
    stop_server(live)


@pytest.fixture(scope="session")
def strict_server(server_config: ServerConfig) -> Iterator[LiveServer]:
    """A server with tight limits: 2 streams per client, small bodies and texts, 2 s send timeout."""
    limits = LimitsConfig(max_streams_per_client=2, max_body_bytes=2048, max_input_chars=600, send_timeout_s=2.0,
                          max_message_bytes=4096)
    live = start_server(replace(server_config, token=None, wyoming_port=free_port(), limits=limits))
    yield live
    stop_server(live)


@pytest.fixture(scope="session")
def fuzz_server(server_config: ServerConfig) -> Iterator[LiveServer]:
    """The main settings but 2 decoder steps a sentence: fuzzed requests that are valid end at once."""
    live = start_server(replace(server_config, wyoming_port=None, synthesis=SynthesisConfig(max_decoder_steps=2)))
    yield live
    stop_server(live)


DEADLINE_S = 1.0
"""Every read and idle timeout of ``deadline_server``."""


@pytest.fixture(scope="session")
def deadline_server(server_config: ServerConfig) -> Iterator[LiveServer]:
    """1 s read and idle timeouts, 1.5 s send timeout, Wyoming for 127.0.0.1 only, 8 KiB send buffers."""
    limits = LimitsConfig(header_timeout_s=DEADLINE_S, body_timeout_s=DEADLINE_S, keep_alive_timeout_s=DEADLINE_S,
                          idle_timeout_s=DEADLINE_S, send_timeout_s=1.5, max_pending_chars=1000)
    live = start_server(replace(server_config, wyoming_port=free_port(), limits=limits, wyoming_allow=("127.0.0.1",)),
                        send_buffer=8192)
    yield live
    stop_server(live)


@pytest.fixture(scope="session")
def crowded_server(server_config: ServerConfig) -> Iterator[LiveServer]:
    """Two streams per address and long idle timeouts: room for idle sockets to crowd an address."""
    limits = LimitsConfig(max_streams_per_client=2, idle_timeout_s=60, header_timeout_s=60, keep_alive_timeout_s=60)
    live = start_server(replace(server_config, wyoming_port=free_port(), limits=limits))
    yield live
    stop_server(live)


@pytest.fixture(scope="session")
def capped_server(server_config: ServerConfig) -> Iterator[LiveServer]:
    """Four open connections per address (HTTP port and Wyoming port each), long idle timeouts."""
    limits = LimitsConfig(max_connections_per_client=4, idle_timeout_s=60, header_timeout_s=60)
    live = start_server(replace(server_config, wyoming_port=free_port(), limits=limits))
    yield live
    stop_server(live)
