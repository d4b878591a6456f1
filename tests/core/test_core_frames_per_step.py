"""A voice of two mel frames per decoder step (r = 2) through the whole CPU runtime.

Limits and the gate count frames, so a sentence can end in the middle of a step: the
step's later frames are decoded but never heard. (Streaming, the gate and continuous batching
at r = 2: test_core_synthesis.py, beside r = 1.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rtvoice import SynthesisConfig, Voice
from rtvoice.audio import concatenate
from rtvoice.engine.randomness import PrenetMasks
from rtvoice.synthesizer import plan

HOP = 256


@pytest.fixture(scope="module")
def r2_voice(tiny_r2_voice_dir: Path) -> Iterator[Voice]:
    with Voice.load(tiny_r2_voice_dir, backend="onnxruntime", device="cpu") as voice:
        yield voice


def test_an_utterance_decodes_two_frames_and_two_gates_a_step(r2_voice: Voice) -> None:
    sentence = plan("Two by two.", r2_voice.config)[0]
    utterance = r2_voice.engine.open_utterance(sentence.ids, 21)  # room for 11 steps: 22 frames
    try:
        masks = PrenetMasks(0, 0, r2_voice.config.decoder.prenet_dim).take(11)
        gates = np.concatenate([utterance.decode(masks[:3]), utterance.decode(masks[3:])])
        assert gates.shape == (22,) and utterance.frames == 22
        mel = utterance.mel(0, 22)
        assert mel.shape == (80, 22) and np.all(np.abs(mel).sum(axis=0) > 0)  # every frame written
        with pytest.raises(Exception, match="decode past max steps"):
            utterance.decode(masks[:1])
    finally:
        utterance.close()


@pytest.mark.parametrize("frames", [41, 40, 1])
def test_limits_count_frames_whatever_the_step(r2_voice: Voice, frames: int) -> None:
    """The random voice's gate never fires: a limit of 41 frames ends mid-step, and is what you hear."""
    forced = concatenate(r2_voice.synthesize("Forced length.", SynthesisConfig(force_steps=frames)))
    capped = concatenate(r2_voice.synthesize("Forced length.", SynthesisConfig(max_decoder_steps=frames)))
    assert len(forced) == len(capped) == frames * HOP
    assert np.array_equal(forced, capped)


def test_info_names_the_frames_per_step(tiny_r2_voice_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rtvoice.cli import main

    assert main(["info", "--voice", str(tiny_r2_voice_dir), "--device", "cpu"]) == 0
    assert "2 frame(s) per step" in capsys.readouterr().out
