"""Issue 23 "Done when" 2, the CLI's share: generated hostile argument vectors and voice.json files.

Every generated command line ends with exit status 0 or 2, at most one error line on
stderr (logged warnings aside) and never a traceback. The bulk runs in-process through
``rtvoice.cli.main`` (an exception escaping it is what a traceback would be), bounded by
hypothesis's example counts; a smaller sample runs as real subprocesses. ``serve``,
``mqtt``, ``repl`` and ``bench`` are only parsed (a valid command line would start a
server, a daemon, a prompt or a benchmark); in the subprocess sample an invalid option is
appended so that they, too, stop at parsing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtvoice.cli import build_parser, main
from rtvoice.config import VoiceConfig
from rtvoice.errors import VoiceError

REPO = Path(__file__).resolve().parents[2]

NASTY_NUMBERS = ["-1", "0", "1", "7", "-5", "nan", "inf", "-inf", "1e10", "1e308", "0x10", "1_000", "", " ", "3.5",
                 "100000000", "4294967296", "9" * 50, "१२", "½", "--", "-0", "+3", "0.0", "1e-400"]
NASTY_TEXT = st.one_of(
    st.sampled_from(["", " ", "Hello.", "...", "\x00", "\ud7ff", "1234567 " * 30, "<speak>hi</speak>", "%s%n",
                     "\u202e\u0007", "a" * 6000, "-", "--out", "\udcff bytes that were not UTF-8"]),
    st.text(max_size=80),
)
OPTIONS = {
    "say": ["--seed", "--chunk-frames", "--sigma", "--max-steps", "--volume", "--out", "--format", "--voice",
            "--backend", "--device", "--audio-device"],
    "info": ["--voice", "--backend", "--device"],
    "voices": ["--json"],
    "serve": ["--port", "--wyoming-port", "--max-input-chars", "--max-streams-per-client", "--max-active-streams",
              "--voice", "--voice-alias", "--seed", "--sigma", "--max-steps", "--chunk-frames", "--host"],
    "mqtt": ["--session-expiry", "--shutdown-grace", "--voice", "--sigma", "--seed", "--max-steps", "--broker"],
    "repl": ["--seed", "--sigma", "--max-steps", "--chunk-frames", "--volume", "--voice"],
    "bench": ["--runs", "--warmup", "--concurrency", "--steps", "--chunk-frames", "--max-batch", "--vocoder-batch",
              "--text", "--voice"],
}
VALID = {
    "--seed": ["0", "7", "1_000", "4294967295"], "--chunk-frames": ["1", "16", "1024"], "--sigma": ["0", "0.3", "1"],
    "--max-steps": ["1", "8"], "--volume": ["0", "1", "2"], "--format": ["mp3", "wav", "opus", "flac", "pcm"],
    "--backend": ["onnxruntime"], "--device": ["cpu"],
}
"""Values that are fine, so that a good share of the generated lines get past parsing and run."""
SPEAKABLE = st.sampled_from(["Hello.", "It is 10:30 on 12/06/2026, $5.20 each.", "One. Two! Three?", "Dr. Smith & co."])
RUNS_FOR_REAL = ("say", "info", "voices")  # the others would start a server, a daemon, a prompt or a benchmark


@st.composite
def command_lines(draw: st.DrawFn, voice: Path, out_dir: Path) -> list[str]:
    command = draw(st.sampled_from(["say", "say", "say", *sorted(OPTIONS)]))  # say does the most with its input
    argv = [command]
    if command == "say":
        text = draw(st.one_of(SPEAKABLE, NASTY_TEXT))
        argv += [text if text not in ("-",) else "dash", "--out", str(out_dir / "ok.wav")]  # a later --out wins
    for _ in range(draw(st.integers(0, 5))):
        option = draw(st.sampled_from([*OPTIONS[command], "--bogus", "-x"]))
        valid = VALID.get(option, []) + ([str(out_dir / "v.mp3"), str(out_dir / "v.flac")] if option == "--out" else [])
        value = draw(st.one_of(
            *([st.sampled_from(valid)] * 3 if valid else []),
            st.sampled_from(NASTY_NUMBERS),
            st.sampled_from([str(voice), "default", "nope", "/nonexistent", "../..", "", str(out_dir / "a.wav"),
                             str(out_dir / "b.mp3"), str(out_dir / "c.xyz"), str(out_dir), "/dev/full",
                             str(out_dir / "missing" / "d.wav"), "cpu", "cuda:99", "tensorrt", "x=y", "=", "@/nope"]),
            st.text(max_size=12)))
        argv += [option, value] if option not in ("--json",) else [option]
    if command == "say":
        # Bound the work of the lines that are valid: the tiny voice, on the CPU, a few frames.
        argv += ["--voice", str(voice), "--backend", "onnxruntime", "--device", "cpu", "--max-steps", "8"]
    return argv


def _check(code: int | None, err: str, argv: list[str]) -> None:
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("WARNING rtvoice")]
    lines = [line for line in lines if "x real time" not in line]  # a progress bar, if stderr were a TTY
    assert len(lines) <= 1, (argv, err)
    if code == 2:
        assert len(lines) == 1 and "error" in lines[0], (argv, err)


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str]:
    if argv[0] not in RUNS_FOR_REAL:
        try:
            build_parser(argv[0]).parse_args(argv)
            code: int | None = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    else:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: usage errors (2), --help (0)
            code = exc.code if isinstance(exc.code, int) else 2
    return code, capsys.readouterr().err


def test_generated_command_lines_in_process(tiny_voice_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    @settings(max_examples=400, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(command_lines(tiny_voice_dir, tmp_path))
    def check(argv: list[str]) -> None:
        code, err = run_in_process(argv, capsys)
        _check(code, err, argv)
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
        assert not leftovers, (argv, leftovers)  # a failed write leaves no temporary file

    check()


def test_generated_command_lines_as_subprocesses(tiny_voice_dir: Path, tmp_path: Path) -> None:
    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(command_lines(tiny_voice_dir, tmp_path))
    def check(argv: list[str]) -> None:
        if argv[0] not in RUNS_FOR_REAL:
            argv = [*argv, "--port", "99999"] if argv[0] == "serve" else [*argv, "--seed", "-1"]  # stop at parsing
        run = subprocess.run([sys.executable, "-m", "rtvoice", *argv], capture_output=True, text=True, timeout=60,
                             cwd=REPO, stdin=subprocess.DEVNULL)
        _check(run.returncode, run.stderr, argv)

    check()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def _paths(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in data.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += _paths(value, (*prefix, key))
    return out


def test_generated_voice_json_is_loaded_or_refused_with_a_voice_error(tiny_voice_dir: Path, tmp_path: Path) -> None:
    base = json.loads((tiny_voice_dir / "voice.json").read_text())
    paths = [p for p in _paths(base) if p[0] != "source"]
    folder = tmp_path / "hostile"
    shutil.copytree(tiny_voice_dir, folder)

    @settings(max_examples=600, deadline=None, derandomize=True)
    @given(st.lists(st.tuples(st.sampled_from(paths), JSON_VALUES), min_size=1, max_size=3))
    def check(edits: list[tuple[tuple[str, ...], Any]]) -> None:
        data = json.loads(json.dumps(base))
        for path, value in edits:
            node = data
            for key in path[:-1]:
                if not isinstance(node.get(key), dict):  # an earlier edit replaced this section
                    node[key] = {}
                node = node[key]
            node[path[-1]] = value
        (folder / "voice.json").write_text(json.dumps(data))
        try:
            VoiceConfig.load(folder)
        except VoiceError as exc:
            assert len(str(exc).splitlines()) == 1 and len(str(exc)) < 2000, str(exc)

    check()


@pytest.mark.parametrize(("section", "key", "value"), [
    ("audio", "sample_rate", "x"), ("text", "symbols", 5), ("graphs", "waveglow", "/etc/passwd"),
    ("decoder", "attention_dim", 5), ("streaming", "chunk_frames", 0), ("batching", "buckets", ["a"]),
])
def test_hostile_voice_json_through_the_cli(section: str, key: str, value: Any, tiny_voice_dir: Path,
                                            tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    shutil.copytree(tiny_voice_dir, folder)
    data = json.loads((folder / "voice.json").read_text())
    data[section][key] = value
    (folder / "voice.json").write_text(json.dumps(data))
    argv = ["say", "Hi.", "--out", str(tmp_path / "x.wav"), "--voice", str(folder), "--device", "cpu"]
    run = subprocess.run([sys.executable, "-m", "rtvoice", *argv], capture_output=True, text=True, timeout=60,
                         cwd=REPO)
    _check(run.returncode, run.stderr, argv)
    assert run.returncode == 2 and not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize("key", ["\r", "a\nb", "", "\x1b[2J"])
def test_a_hostile_key_in_voice_json_keeps_the_error_on_one_line(key: str, tiny_voice_dir: Path,
                                                                   tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    shutil.copytree(tiny_voice_dir, folder)
    data = json.loads((folder / "voice.json").read_text())
    data["graphs"][key] = None
    (folder / "voice.json").write_text(json.dumps(data))
    with pytest.raises(VoiceError) as caught:
        VoiceConfig.load(folder)
    assert len(str(caught.value).splitlines()) == 1, str(caught.value)
    assert json.dumps(key) in str(caught.value)
