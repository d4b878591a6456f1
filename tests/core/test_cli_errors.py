"""Issue 23 part 4: the ``rtvoice`` CLI, run as a user runs it, refuses bad input in one line, exit 2.

Every case here was a traceback (exit 1 or 3) or silently accepted nonsense before:
``--out`` into a missing folder, onto a folder, ``""`` or ``/dev/full``; ``--seed -1``,
``--chunk-frames -5``/``0``, ``--max-steps 100000000``/``0``, ``--sigma nan``/``1e10``; a
voice.json with a bad ``sample_rate`` (which also left a 0-byte WAV) or a graph path out
of its folder; ``serve --voice /nonexistent``, ``--port 99999``, ``--max-active-streams 0``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def rtvoice(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``rtvoice ARGS`` in a child process, from the repository root."""
    return subprocess.run([sys.executable, "-m", "rtvoice", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=env)


def assert_one_line_error(run: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit status 2, one error line on stderr, no traceback, and the line says what is wrong.

    Logged warnings (``WARNING rtvoice...``: a random test voice hits its step limit) may come first.
    """
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    lines = [line for line in run.stderr.strip().splitlines() if not line.startswith("WARNING rtvoice")]
    assert len(lines) == 1, run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def cpu(voice: Path) -> list[str]:
    return ["--voice", str(voice), "--backend", "onnxruntime", "--device", "cpu"]


@pytest.mark.parametrize(("out", "needle"), [
    ("missing-folder/x.wav", "does not exist"),
    (".", "is a folder"),
    ("", "empty"),
])
def test_bad_out_paths_are_refused_before_anything_loads(out: str, needle: str, tmp_path: Path) -> None:
    target = out if not out or out == "." else str(tmp_path / out)
    if out == ".":
        target = str(tmp_path)
    run = rtvoice("say", "Hello.", "--out", target)
    assert_one_line_error(run, "--out", needle)
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_out_to_a_full_disk_is_one_line(fmt: str, tiny_voice_dir: Path) -> None:
    run = rtvoice("say", "Hello.", "--out", "/dev/full", "--format", fmt, *cpu(tiny_voice_dir), "--max-steps", "20")
    assert_one_line_error(run, "/dev/full", "No space left on device")


@pytest.mark.parametrize(("option", "value"), [
    ("--seed", "-1"), ("--seed", "4294967296"), ("--seed", "x"),
    ("--chunk-frames", "-5"), ("--chunk-frames", "0"),
    ("--max-steps", "100000000"), ("--max-steps", "0"),
    ("--sigma", "nan"), ("--sigma", "1e10"), ("--sigma", "inf"), ("--sigma", "-0.1"),
    ("--max-spoken-chars", "0"), ("--max-spoken-chars", "100000001"), ("--max-spoken-chars", "x"),
])
def test_numbers_out_of_range_are_refused_at_parse_time(option: str, value: str, tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    run = rtvoice("say", "Hello.", "--out", str(out), f"{option}={value}")
    assert_one_line_error(run, f"argument {option}")
    assert not out.exists()


def test_numbers_at_the_ends_of_their_ranges_are_accepted(tiny_voice_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    run = rtvoice("say", "Hello.", "--out", str(out), *cpu(tiny_voice_dir), "--seed", "4294967295",
                  "--chunk-frames", "1", "--sigma", "0", "--max-steps", "12")
    assert run.returncode == 0, run.stderr
    assert out.stat().st_size > 44


def _voice_copy(tiny_voice_dir: Path, tmp_path: Path, edit: dict[str, dict[str, object]]) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(tiny_voice_dir, folder)
    data = json.loads((folder / "voice.json").read_text())
    for section, values in edit.items():
        data[section].update(values)
    (folder / "voice.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize("rate", ["fast", -22050, 0, 22050.5, None, 10**40])
def test_a_bad_sample_rate_in_voice_json_is_one_line_and_leaves_no_file(rate: object, tiny_voice_dir: Path,
                                                                        tmp_path: Path) -> None:
    voice = _voice_copy(tiny_voice_dir, tmp_path, {"audio": {"sample_rate": rate}})
    out = tmp_path / "x.wav"
    run = rtvoice("say", "Hello.", "--out", str(out), *cpu(voice))
    assert_one_line_error(run, "voice.audio.sample_rate")
    assert not out.exists()  # it was a 0-byte WAV
    assert [p.name for p in tmp_path.iterdir()] == ["edited"]  # no temporary file either


def test_a_failed_run_keeps_the_earlier_file(tiny_voice_dir: Path, tmp_path: Path) -> None:
    voice = _voice_copy(tiny_voice_dir, tmp_path, {"audio": {"sample_rate": "fast"}})
    out = tmp_path / "x.wav"
    out.write_bytes(b"an earlier take")
    assert rtvoice("say", "Hello.", "--out", str(out), *cpu(voice)).returncode == 2
    assert out.read_bytes() == b"an earlier take"


@pytest.mark.parametrize(("section", "key", "value", "needle"), [
    ("decoder", "attention_rnn_dim", 7, "attention_hidden"),
    ("decoder", "frames_per_step", 2, "decoder_input"),
    ("decoder", "prenet_dim", 3, "prenet_masks"),
    ("vocoder", "n_group", 4, "noise"),
    ("audio", "n_mel_channels", 40, "mel"),
])
def test_voice_json_that_disagrees_with_its_graphs_is_refused_at_load(section: str, key: str, value: int, needle: str,
                                                                      tiny_voice_dir: Path, tmp_path: Path) -> None:
    """These were ONNX Runtime errors (a traceback) at the first sentence."""
    voice = _voice_copy(tiny_voice_dir, tmp_path, {section: {key: value}})
    out = tmp_path / "x.wav"
    run = rtvoice("say", "Hello.", "--out", str(out), *cpu(voice), "--max-steps", "8")
    assert_one_line_error(run, needle, "voice.json")
    assert not out.exists()


@pytest.mark.parametrize("graph", ["../../../../etc/passwd", "/etc/passwd", "sub/../../x.onnx", ""])
def test_graph_paths_outside_the_voice_folder_are_refused(graph: str, tiny_voice_dir: Path, tmp_path: Path) -> None:
    voice = _voice_copy(tiny_voice_dir, tmp_path, {"graphs": {"encoder": graph}})
    run = rtvoice("info", *cpu(voice))
    assert_one_line_error(run, "voice.graphs.encoder", "inside the voice folder")


@pytest.mark.parametrize("args", [
    ["serve", "--voice", "/nonexistent"],
    ["serve", "--port", "99999"],
    ["serve", "--port", "0"],
    ["serve", "--wyoming-port", "-1"],
    ["serve", "--max-active-streams", "0"],
    ["serve", "--max-streams-per-client", "-3"],
    ["serve", "--max-input-chars", "zero"],
    ["mqtt", "--voice", "/nonexistent"],
    ["mqtt", "--sigma", "nan"],
    ["mqtt", "--session-expiry", "-5"],
    ["mqtt", "--session-expiry", "4294967296"],
    ["mqtt", "--shutdown-grace", "nan"],
    ["serve", "--header-timeout", "nan"],
    ["serve", "--idle-timeout", "1e999"],
    ["bench", "--runs", "0"],
    ["bench", "--concurrency", "0"],
    ["bench", "--warmup", "-1"],
    ["bench", "--steps", "100000000"],
    ["bench", "--vocoder-batch", "0"],
    ["repl", "--max-steps", "0"],
    ["repl", "--max-spoken-chars", "0"],
    ["mqtt", "--max-spoken-chars", "-1"],
    ["mqtt", "--max-queued", "many"],
    ["serve", "--max-spoken-chars", "0"],
    ["serve", "--max-connections", "0"],
    ["serve", "--max-queued-turns", "0"],
    ["serve", "--min-client-speed", "0"],
    ["serve", "--min-client-speed", "nan"],
])
def test_server_daemon_and_bench_options_are_checked_at_parse_time(args: list[str]) -> None:
    run = rtvoice(*args, timeout=60)
    assert_one_line_error(run, "argument " + args[1])


def test_max_spoken_chars_reaches_synthesis(tiny_voice_dir: Path, tmp_path: Path) -> None:
    """``say --max-spoken-chars N``: text longer than N read out is refused in one line, nothing written."""
    out = tmp_path / "x.wav"
    refused = rtvoice("say", "One half is 1/2.", "--out", str(out), *cpu(tiny_voice_dir), "--max-steps", "12",
                      "--max-spoken-chars", "10")
    assert_one_line_error(refused, "10")
    assert not out.exists()
    taken = rtvoice("say", "Hi.", "--out", str(out), *cpu(tiny_voice_dir), "--max-steps", "12",
                    "--max-spoken-chars", "10")
    assert taken.returncode == 0, taken.stderr
    assert out.stat().st_size > 44


def test_a_voice_is_named_or_a_path(tiny_voice_dir: Path, tmp_path: Path) -> None:
    """Issue 24 part 5: --voice NAME finds a voice in $RTVOICE_VOICES; a path still works; a typo lists the names."""
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    shutil.copytree(tiny_voice_dir, shelf / "tiny-test")
    env = {**os.environ, "RTVOICE_VOICES": str(shelf), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    out = tmp_path / "x.wav"
    by_name = rtvoice("say", "Hello.", "--out", str(out), "--voice", "tiny-test", "--device", "cpu",
                      "--max-steps", "12", env=env)
    assert by_name.returncode == 0, by_name.stderr
    typo = rtvoice("say", "Hello.", "--out", str(out), "--voice", "tiny-tset", env=env)
    assert_one_line_error(typo, "tiny-tset", "tiny-test", "default")


def test_a_write_that_fails_midway_leaves_the_earlier_file_and_no_part(tiny_voice_dir: Path, tmp_path: Path) -> None:
    """The file system refuses bytes mid-synthesis (here a 20 kB file size limit, as a full disk would)."""
    import resource

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # Python ignores SIGXFSZ: writes get EFBIG

    out = tmp_path / "x.wav"
    out.write_bytes(b"an earlier take")
    run = subprocess.run([sys.executable, "-m", "rtvoice", "say", "One. Two. Three. Four.", "--out", str(out),
                          *cpu(tiny_voice_dir), "--max-steps", "60"], capture_output=True, text=True, timeout=120,
                         cwd=REPO, preexec_fn=small_files)
    assert_one_line_error(run, str(out), "File too large")
    assert out.read_bytes() == b"an earlier take"
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_out_through_a_symlink_replaces_the_file_and_keeps_the_link(tiny_voice_dir: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.wav"
    real.write_bytes(b"old")
    link = tmp_path / "link.wav"
    link.symlink_to(real)
    run = rtvoice("say", "Hello.", "--out", str(link), *cpu(tiny_voice_dir), "--max-steps", "12")
    assert run.returncode == 0, run.stderr
    assert link.is_symlink() and real.read_bytes()[:4] == b"RIFF"


def test_mqtt_add_voice_takes_names_and_refuses_unknown_ones_in_one_line(tmp_path: Path) -> None:
    run = rtvoice("mqtt", "--no-play", "--broker", "mqtt://127.0.0.1:1", "--add-voice", "kitchen=nope", timeout=60)
    assert_one_line_error(run, "--add-voice 'kitchen=nope'", "no installed voice", "default")
