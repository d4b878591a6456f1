"""Later chunks double up to ``streaming.max_chunk_frames`` (issue 26): less context vocoded twice.

Each chunk is vocoded with ``context_frames`` of context on both sides, so chunks of 64
frames vocode 2x the audio they emit; doubling to 256 brings it to ~1.4x (docs/design.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rtvoice import SynthesisConfig, Voice
from rtvoice.audio import AudioChunk, concatenate
from rtvoice.config import StreamingConfig
from rtvoice.engine.gpu_vocoder import chunk_sizes
from rtvoice.seams import snr_db

DEFAULT = Path(__file__).parents[2] / "rtvoice" / "voices" / "default"


def _frames(chunks: list[AudioChunk], hop: int) -> list[int]:
    return [len(c.samples) // hop for c in chunks]


def test_later_chunks_double_up_to_the_cap(tiny_voice: Voice) -> None:
    s = tiny_voice.config.streaming
    assert (s.first_chunk_frames, s.chunk_frames, s.max_chunk_frames) == (16, 64, 256)
    chunks = list(tiny_voice.synthesize("A long one.", SynthesisConfig(seed=1, force_steps=900)))
    assert _frames(chunks, 256) == [16, 64, 128, 256, 256, 180]
    assert chunk_sizes(64, 256) == [64, 128, 256]  # the GPU vocoder's window buckets, from the same rule


def test_a_requested_chunk_size_does_not_grow(tiny_voice: Voice) -> None:
    chunks = list(tiny_voice.synthesize("A long one.", SynthesisConfig(seed=1, force_steps=300, chunk_frames=64)))
    assert _frames(chunks, 256) == [64, 64, 64, 64, 44]


def test_no_growth_when_the_cap_is_the_chunk(tiny_voice: Voice) -> None:
    config = dataclasses.replace(tiny_voice.config, streaming=StreamingConfig(max_chunk_frames=64))
    resolved = SynthesisConfig().resolve(config)
    assert resolved.max_chunk_frames == 64 and resolved.chunk_frames == 64


@pytest.mark.parametrize("steps", [300, 700])
def test_grown_chunks_agree_with_whole_as_fixed_ones(steps: int) -> None:
    """The default voice: doubling chunks keeps streamed audio within float rounding of whole."""
    with Voice.load(DEFAULT, backend="onnxruntime", device="cpu") as voice:
        text = "The quick brown fox jumps over the lazy dog."
        whole = concatenate(voice.synthesize(text, SynthesisConfig(seed=2, force_steps=steps, whole=True)))
        grown = list(voice.synthesize(text, SynthesisConfig(seed=2, force_steps=steps)))
        fixed = concatenate(voice.synthesize(text, SynthesisConfig(seed=2, force_steps=steps, chunk_frames=64,
                                                                   first_chunk_frames=16)))
    assert max(_frames(grown, 256)) > 64
    assert snr_db(whole, concatenate(grown)) > 100.0
    assert snr_db(whole, fixed) > 100.0


def test_the_seams_sweep_counts_the_repeated_work() -> None:
    """Windows of the default voice (first 16, context 40) over 600 frames, as streaming cuts them."""
    from rtvoice.config import VoiceConfig
    from rtvoice.seams import vocoded_per_heard

    voice = VoiceConfig.load(DEFAULT)
    assert voice.streaming.context_frames == 40
    doubling = SynthesisConfig().resolve(voice)
    fixed = SynthesisConfig(chunk_frames=64, first_chunk_frames=16).resolve(voice)
    # [0,56) [0,120) [40,248) [168,504) [424,600): 896 frames;
    # fixed: [0,56) [0,120), 7 x 144, [488,600) [552,600): 1344.
    assert vocoded_per_heard(voice, doubling, 600) == pytest.approx(896 / 600)
    assert vocoded_per_heard(voice, fixed, 600) == pytest.approx(1344 / 600)
    assert vocoded_per_heard(voice, SynthesisConfig(whole=True).resolve(voice), 600) == 1.0
