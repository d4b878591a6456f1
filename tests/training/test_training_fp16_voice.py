"""training/fp16_voice.py on the shipped voice: half the bytes, float32 compute, the same speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.fp16_voice import convert_folder

ROOT = Path(__file__).resolve().parents[2]
VOICE = ROOT / "rtvoice" / "voices" / "default"


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def test_float16_storage_halves_the_voice_and_onnxruntime_computes_in_float32(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    pytest.importorskip("onnx")
    half = tmp_path / "voice"
    sizes = convert_folder(VOICE, half)
    assert set(sizes) == {"encoder.onnx", "decoder_step.onnx", "postnet.onnx", "waveglow.onnx"}
    assert folder_bytes(half) < 0.55 * folder_bytes(VOICE)
    # ONNX Runtime folds each Cast of a stored weight into a float32 constant: nothing float16 is left.
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(half / "decoder_step.onnx"), opts, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    assert not [i.name for i in optimized.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    stored = onnx.load(str(half / "decoder_step.onnx"))
    assert sum(i.data_type == onnx.TensorProto.FLOAT16 for i in stored.graph.initializer) >= 8


def test_a_float16_stored_voice_speaks_like_the_float32_one(tmp_path: Path) -> None:
    from rtvoice import Voice

    convert_folder(VOICE, tmp_path / "voice")
    text = "The train to Boston leaves at eight fifteen from platform four."
    audio = []
    for folder in (VOICE, tmp_path / "voice"):
        with Voice.load(folder, backend="onnxruntime", device="cpu") as voice:
            audio.append(np.concatenate([c.samples for c in voice.synthesize(text)]).astype(np.float64))
    full, half = audio
    assert full.size == half.size  # the same decoder steps: the gate stopped at the same frame
    snr = 10 * np.log10(np.sum(full**2) / np.sum((full - half) ** 2))
    assert snr > 40, snr  # measured 57 dB on 2026-12-07
