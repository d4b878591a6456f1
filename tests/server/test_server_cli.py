"""``rtvoice serve`` as a user runs it: a subprocess, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from server_support import free_port, read_until_closed, wait_serving


def test_serve_command_serves_http_and_stops_cleanly(tiny_voice_dir: Path) -> None:
    port = free_port()
    env = {**os.environ, "RTVOICE_TOKEN": "from-env"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rtvoice", "serve", "--voice", str(tiny_voice_dir), "--port", str(port),
         "--backend", "onnxruntime", "--device", "cpu", "--max-steps", "8", "--header-timeout", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_serving(process, port)
        headers = {"Authorization": "Bearer from-env"}
        response = httpx.post(f"http://127.0.0.1:{port}/v1/audio/speech", headers=headers, timeout=30,
                              json={"input": "Hello.", "voice": tiny_voice_dir.name, "response_format": "pcm"})
        assert response.status_code == 200 and len(response.content) > 0
        assert httpx.post(f"http://127.0.0.1:{port}/v1/audio/speech", json={"input": "Hi."}).status_code == 401
        with socket.create_connection(("127.0.0.1", port)) as silent:  # --header-timeout 1 reached the server
            _, elapsed = read_until_closed(silent, 5)
        assert elapsed < 3
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    # uvicorn re-raises the SIGTERM it handled once shut down, so the status says "terminated".
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output


def test_serve_command_reports_a_missing_voices_folder_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "rtvoice", "serve", "--voices-dir", str(tmp_path / "nope"),
                             "--port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: Voices folder") and "Traceback" not in result.stderr


def test_serve_options_set_every_timeout_and_the_wyoming_allow_list() -> None:
    from rtvoice.cli import build_parser
    from rtvoice.commands.serve import server_config
    from rtvoice.config import MAX_SPOKEN_CHARS
    from rtvoice.server.config import LimitsConfig

    args = build_parser().parse_args([
        "serve", "--header-timeout", "2", "--body-timeout", "3", "--keep-alive-timeout", "4", "--idle-timeout", "5",
        "--send-timeout", "6", "--wyoming-allow", "192.168.1.0/24", "--wyoming-allow", "10.0.0.5",
        "--max-connections-per-client", "7", "--max-connections", "8", "--max-queued-turns", "9",
        "--min-client-speed", "0.5", "--max-spoken-chars", "10"])
    config = server_config(args)
    limits = config.limits
    assert (limits.header_timeout_s, limits.body_timeout_s, limits.keep_alive_timeout_s, limits.idle_timeout_s,
            limits.send_timeout_s, limits.max_connections_per_client) == (2, 3, 4, 5, 6, 7)
    assert (limits.max_connections, limits.max_queued_turns, limits.min_client_speed) == (8, 9, 0.5)
    assert config.synthesis.max_spoken_chars == 10
    defaults = server_config(build_parser().parse_args(["serve"]))
    assert defaults.limits == LimitsConfig() and defaults.synthesis.max_spoken_chars == MAX_SPOKEN_CHARS
    assert config.wyoming_allow == ("192.168.1.0/24", "10.0.0.5")
    assert server_config(build_parser().parse_args(["serve"])).wyoming_allow is None


def test_serve_refuses_a_bad_timeout_or_network_in_one_line() -> None:
    for option, value in [("--idle-timeout", "0"), ("--body-timeout", "nan"), ("--wyoming-allow", "kitchen"),
                          ("--max-connections-per-client", "0"), ("--max-connections", "0"),
                          ("--max-queued-turns", "-3"), ("--min-client-speed", "0"), ("--min-client-speed", "inf"),
                          ("--max-spoken-chars", "0")]:
        result = subprocess.run([sys.executable, "-m", "rtvoice", "serve", option, value], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 3 and option in result.stderr, result.stderr


def test_serve_warns_that_wyoming_serves_this_machine_only_with_a_token(tiny_voice_dir: Path) -> None:
    """--token on another address leaves Wyoming to loopback unless --wyoming-allow says otherwise."""
    with socket.socket() as taken:  # a taken port: the server stops right after the warning
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "rtvoice", "serve", "--voice", str(tiny_voice_dir), "--host", "0.0.0.0",
             "--port", str(taken.getsockname()[1]), "--wyoming-port", str(free_port()), "--token", "t",
             "--backend", "onnxruntime", "--device", "cpu"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Wyoming serves this machine only" in result.stderr and "--wyoming-allow" in result.stderr
