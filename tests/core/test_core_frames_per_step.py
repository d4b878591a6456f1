"""A voice of two mel frames per decoder step (r = 2) through the whole CPU runtime.

Limits and the gate count frames, so a sentence can end in the middle of a step: the
step's later frames are decoded but never heard. Streaming, the async pipeline and
continuous batching must treat an r = 2 voice as they treat any other.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rtvoice import SynthesisConfig, Voice, pipeline
from rtvoice.audio import concatenate
from rtvoice.models.randomness import PrenetMasks
from rtvoice.synthesizer import plan

HOP = 256


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    noise = np.sum((reference - other) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(reference**2) / noise))


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


@pytest.mark.parametrize("chunk_frames", [16, 7])
def test_streamed_audio_equals_whole_utterance(r2_voice: Voice, chunk_frames: int) -> None:
    """Chunks of an odd number of frames cut steps in two; the audio must not notice."""
    text = "Streaming must sound like the whole thing."
    whole = concatenate(r2_voice.synthesize(text, SynthesisConfig(seed=1, whole=True)))
    chunks = list(r2_voice.synthesize(text, SynthesisConfig(seed=1, chunk_frames=chunk_frames)))
    streamed = concatenate(chunks)
    assert len(streamed) == len(whole) == 150 * HOP
    assert len(chunks) >= 150 // chunk_frames
    assert snr_db(whole, streamed) > 60.0


def test_the_gate_ends_a_sentence_in_the_middle_of_a_step(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from rtvoice.export.voice_builder import build_voice, random_models

    # A gate that moves (the stock random voice pins it far below 0), then a threshold it
    # first crosses on the first frame of a step that is not the last of a gate-check batch.
    tacotron2, waveglow = random_models("tiny", seed=3, frames_per_step=2)
    with torch.no_grad():
        tacotron2.decoder.gate_layer.linear_layer.weight.normal_(0.0, 1.0).neg_()
        tacotron2.decoder.gate_layer.linear_layer.bias.fill_(-4.0)
    folder = tmp_path / "gated"
    build_voice(tacotron2, waveglow, folder, "gated")
    with Voice.load(folder, device="cpu") as voice:
        sentence = plan("Gate.", voice.config)[0]
        utterance = voice.engine.open_utterance(sentence.ids, 100)
        gates = utterance.decode(PrenetMasks(0, 0, voice.config.decoder.prenet_dim).take(50))
        utterance.close()
    probs = 1 / (1 + np.exp(-gates.astype(np.float64)))
    records = [k for k in range(2, 100, 2) if probs[k] > probs[:k].max() + 1e-4 and (k // 2 + 1) % 8]
    assert records, "the random gate never set a new maximum on a step's first frame; pick another seed"
    k = records[-1]
    config = json.loads((folder / "voice.json").read_text())
    config["decoder"]["gate_threshold"] = threshold = float((probs[:k].max() + probs[k]) / 2)
    (folder / "voice.json").write_text(json.dumps(config))
    with Voice.load(folder, device="cpu") as voice:
        audio = concatenate(voice.synthesize("Gate.", SynthesisConfig(seed=0)))
        forced = concatenate(voice.synthesize("Gate.", SynthesisConfig(seed=0, force_steps=100)))
    assert len(audio) == (k + 1) * HOP  # frame k is kept; frame k + 1, of the same step, is not
    assert len(forced) == 100 * HOP
    # PyTorch's reference inference stops at the same frame.
    ids = torch.tensor([sentence.ids])
    masks = torch.from_numpy(PrenetMasks(0, 0, tacotron2.params.prenet_dim).take(50))
    tacotron2 = tacotron2.eval()
    object.__setattr__(tacotron2.params, "gate_threshold", threshold)
    mel, _, _ = tacotron2.infer(ids, masks)
    assert mel.shape[2] == k + 1


async def test_async_streams_batched_together_sound_as_alone(r2_voice: Voice) -> None:
    texts = ["First stream, a short one.", "The second stream has rather more words in it.", "Third."]
    configs = [SynthesisConfig(seed=i, force_steps=40 + 13 * i, chunk_frames=16) for i in range(len(texts))]
    alone = [concatenate(r2_voice.synthesize(t, c)) for t, c in zip(texts, configs, strict=True)]
    workers = pipeline.Workers("r2")
    try:
        async def one(text: str, config: SynthesisConfig) -> np.ndarray:
            return concatenate([c async for c in pipeline.stream(r2_voice.engine, workers, text, config)])

        together = await asyncio.gather(*(one(t, c) for t, c in zip(texts, configs, strict=True)))
    finally:
        workers.close()
    assert workers.batcher.largest >= 2  # really batched
    for a, b, c in zip(alone, together, configs, strict=True):
        assert len(a) == len(b) == c.force_steps * HOP  # type: ignore[operator]
        assert snr_db(a, b) > 80.0


def test_info_names_the_frames_per_step(tiny_r2_voice_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rtvoice.cli import main

    assert main(["info", "--voice", str(tiny_r2_voice_dir), "--device", "cpu"]) == 0
    assert "2 frame(s) per step" in capsys.readouterr().out
