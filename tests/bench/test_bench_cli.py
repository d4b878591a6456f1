"""``rtvoice bench`` on the CPU: the JSON schema and that its numbers hang together (issue #7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench(voice: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rtvoice", "bench", "--voice", str(voice), "--device", "cpu", *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def test_bench_json_schema_and_sanity(tiny_voice_dir: Path) -> None:
    run = _bench(tiny_voice_dir, "--steps", "40", "--runs", "3", "--warmup", "1", "--concurrency", "2", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    s = report["summary"]
    assert s["backend"] == "onnxruntime" and s["device"] == "cpu" and s["gpu"] == "none"
    assert s["runs"] == 3 * 2 and len(report["runs"]) == 6 and s["concurrency"] == 2
    assert s["decoder_steps"] == s["mel_frames"] == 40
    assert s["audio_s"] == pytest.approx(40 * 256 / 22050)
    for key in ("time_to_first_audio_s", "latency_s", "decoder_us_per_step", "waveglow_us_per_audio_s",
                "vocoder_batch_mean"):
        assert set(s[key]) == {"median", "p99", "min", "max"}
        assert 0 < s[key]["min"] <= s[key]["median"] <= s[key]["p99"] <= s[key]["max"]
    # Issue 24: a real-time factor is faster when higher, so its slow tail is p1 and the minimum.
    assert set(s["rtf"]) == {"median", "p1", "min", "max"}
    assert 0 < s["rtf"]["min"] <= s["rtf"]["p1"] <= s["rtf"]["median"] <= s["rtf"]["max"]
    assert s["rtf"]["min"] == pytest.approx(min(r["rtf"] for r in report["runs"]))
    for r in report["runs"]:
        assert 0 < r["time_to_first_audio_s"] <= r["latency_s"]
        assert r["rtf"] == pytest.approx(r["audio_s"] / r["latency_s"])
    assert s["gpu_memory_used_bytes"] is None
    assert s["vocoder_batch"] == 8 and 1.0 <= s["vocoder_batch_mean"]["max"] <= 8.0
    # Concurrent streams' engine calls interleave, so no stream's first audio is split into parts.
    assert "first_audio_parts" not in s and all(r["first_audio_parts"] is None for r in report["runs"])


def test_bench_splits_one_streams_first_audio_into_its_engine_calls(tiny_voice_dir: Path) -> None:
    """Issue 26: the first audio's parts, each within the run's own first audio."""
    run = _bench(tiny_voice_dir, "--steps", "40", "--runs", "2", "--warmup", "1", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    for r in report["runs"]:
        parts, ttfa = r["first_audio_parts"], r["time_to_first_audio_s"]
        # One sentence: one encoder call; the first chunk needs decoded frames and one vocoder call.
        assert parts["encoder_calls"] == 1 and parts["decoder_calls"] >= 1 and parts["vocoder_calls"] >= 1
        for part in ("encoder", "decoder", "vocoder", "outside"):
            assert 0 < parts[f"{part}_s"] <= ttfa
        # The decoder and vocoder threads may overlap, never the time outside every call and a call.
        assert parts["outside_s"] + max(parts[f"{k}_s"] for k in ("encoder", "decoder", "vocoder")) <= ttfa
    assert set(report["summary"]["first_audio_parts"]) == set(report["runs"][0]["first_audio_parts"])
    table = _bench(tiny_voice_dir, "--steps", "40", "--runs", "1", "--warmup", "0")
    assert table.returncode == 0, table.stderr
    assert "first audio, its parts" in table.stdout and "encoder" in table.stdout


def test_bench_vocoder_batch_switch(tiny_voice_dir: Path) -> None:
    """Issue #7: --vocoder-batch 1 turns vocoder batching off, for side-by-side figures."""
    off = _bench(tiny_voice_dir, "--steps", "40", "--runs", "1", "--warmup", "0", "--concurrency", "4",
                 "--vocoder-batch", "1", "--json")
    assert off.returncode == 0, off.stderr
    s = json.loads(off.stdout)["summary"]
    assert s["vocoder_batch"] == 1 and s["vocoder_batch_mean"]["max"] == 1.0
    table = _bench(tiny_voice_dir, "--steps", "40", "--runs", "1", "--warmup", "0", "--concurrency", "4")
    assert table.returncode == 0, table.stderr
    assert "vocoder chunks per call" in table.stdout and "(limit 8)" in table.stdout
    bad = _bench(tiny_voice_dir, "--vocoder-batch", "0")
    assert bad.returncode == 2 and "argument --vocoder-batch: must be from 1 to" in bad.stderr


def test_bench_compare_torch_gives_a_ratio(tiny_voice_dir: Path) -> None:
    pytest.importorskip("torch")
    run = _bench(tiny_voice_dir, "--steps", "30", "--runs", "2", "--warmup", "1", "--compare", "torch")
    assert run.returncode == 0, run.stderr
    assert "pytorch reference" in run.stdout and "speedup vs pytorch" in run.stdout


def test_bench_seams_sweep_table(tiny_voice_dir: Path) -> None:
    run = _bench(tiny_voice_dir, "--steps", "60", "--seams", "--json")
    assert run.returncode == 0, run.stderr
    points = json.loads(run.stdout)
    assert {(p["chunk_frames"], p["context_frames"]) for p in points} >= {(16, 0), (64, 32)}
    by = {(p["chunk_frames"], p["context_frames"]): p for p in points}
    # More context never makes the seams worse by much, and 16 frames of it is near-exact.
    assert by[(16, 16)]["snr_db"] >= by[(16, 0)]["snr_db"] - 1.0
    assert by[(16, 16)]["snr_db"] > 60.0


def test_bench_rejects_bad_arguments(tiny_voice_dir: Path) -> None:
    run = _bench(tiny_voice_dir, "--runs", "0")
    assert run.returncode == 2 and "Traceback" not in run.stderr


def test_bench_counts_steps_and_frames_of_a_two_frame_voice(tiny_r2_voice_dir: Path) -> None:
    run = _bench(tiny_r2_voice_dir, "--steps", "41", "--runs", "2", "--warmup", "0", "--json")
    assert run.returncode == 0, run.stderr
    s = json.loads(run.stdout)["summary"]
    assert (s["decoder_steps"], s["mel_frames"]) == (21, 41)  # the last step's second frame is not heard
    assert s["audio_s"] == pytest.approx(41 * 256 / 22050)


def test_bench_text_from_an_argument_or_a_file_and_the_table_labels(tiny_voice_dir: Path, tmp_path: Path) -> None:
    """Issue 24 part 6: --text takes text or @file; the table names the GPU and the RTF's slow tail."""
    words = _bench(tiny_voice_dir, "--text", "Short.", "--steps", "20", "--runs", "2", "--warmup", "0", "--json")
    assert words.returncode == 0, words.stderr
    assert json.loads(words.stdout)["summary"]["text_chars"] == len("Short.")
    book = tmp_path / "text.txt"
    book.write_text("A longer text, from a file.\n", encoding="utf-8")
    table = _bench(tiny_voice_dir, "--text", f"@{book}", "--steps", "20", "--runs", "2", "--warmup", "0")
    assert table.returncode == 0, table.stderr
    lines = dict(line.split(None, 1) for line in table.stdout.splitlines() if line.split())
    assert lines["gpu"].strip() == "none"
    assert "p1" in lines["rtf"] and "worst" in lines["rtf"] and "slow tail" in lines["rtf"]
    assert "chars" in table.stdout and f"{len('A longer text, from a file.')} chars" in table.stdout
    missing = _bench(tiny_voice_dir, "--text", f"@{tmp_path / 'nope.txt'}")
    assert missing.returncode == 2 and missing.stderr.startswith("error: Cannot read --text")


@pytest.mark.parametrize("command", ["bench", "serve"])
def test_help_shows_defaults(command: str) -> None:
    """Issue 24 part 6: --help of bench and serve says each option's default, but never a secret's value."""
    run = subprocess.run([sys.executable, "-m", "rtvoice", command, "--help"], capture_output=True, text=True,
                         timeout=60, cwd=REPO, env={**os.environ, "RTVOICE_TOKEN": "sekrit-from-env"})
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stdout.split())
    expected = {"bench": ["timed runs (after --warmup) (default: 6)", "(default: 1)"],
                "serve": ["(default: 8000)", "(default: 127.0.0.1)"]}[command]
    for needle in expected:
        assert needle in text, text
    assert "sekrit" not in text and "(default: None)" not in text
