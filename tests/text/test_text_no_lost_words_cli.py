"""No lost words through ``rtvoice say`` (issue 23 §1): the issue's examples (its nines halved), spoken in full.

The shipped default voice runs on the CPU: its gate ends each piece where the speech ends,
so the audio's length tells whether the whole text was said. The previous (espeak-ng-taught)
default voice took 4.6-5.8 mel frames per normalized character here; the current one took
4.05-5.52 per raw character on 12 held-out sentences (2026-12-07). Fewer than 3.5 means words
are missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtvoice.audio import read_wav
from rtvoice.text import normalize

TOTALS = ("The totals were 1234567, 2345678, 3456789, 4567890, 5678901, 6789012, 7890123, 8901234, 9012345 "
          "and 1357913, and that is all.")
NINES = "9" * 150
"""Half the issue's 300 nines: 32.0 s of speech (300: 64.0 s; 2026-12-07, the natural default voice), past the
2300-frame step limit that cut the issue's text at 25.54 s, so still more than one piece, at half the synthesis."""
MIN_FRAMES_PER_CHAR = 3.5
HOP, RATE = 256, 22050


def min_seconds(text: str) -> float:
    """The least audio the default voice can need for ``text``, spoken in full."""
    return len(normalize(text)) * MIN_FRAMES_PER_CHAR * HOP / RATE


def say(text: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rtvoice", "say", text, "--device", "cpu", "--backend", "onnxruntime",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("text", [TOTALS, NINES], ids=["totals", "nines"])
def test_number_heavy_text_is_spoken_in_full(text: str, tmp_path: Path) -> None:
    # Before the fix: 25.54 s (the decoder's 2200-frame limit) for both, "and that is all" lost.
    wav = tmp_path / "x.wav"
    result = say(text, wav)
    assert result.returncode == 0, result.stderr
    samples, rate = read_wav(wav)
    assert len(samples) / rate > max(min_seconds(text), 26.0), len(samples) / rate
    assert "step limit" not in result.stderr


def test_a_sentence_cut_short_by_the_step_limit_is_reported_on_one_line(tmp_path: Path) -> None:
    wav = tmp_path / "x.wav"
    result = say("This sentence needs far more than forty frames to say.", wav, "--max-steps", "40")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "step limit" in line]
    assert len(warnings) == 1, result.stderr
    assert "40 frames" in warnings[0] and "WARNING" in warnings[0]
