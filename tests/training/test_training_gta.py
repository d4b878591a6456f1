"""training.gta: Tacotron 2's teacher-forced mels as a dataset WaveGlow trains on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.training.test_training_data import tiny_corpus  # noqa: E402


@pytest.mark.timeout(300)
def test_training_gta_dataset(tmp_path: Path) -> None:
    from training import checkpoint, gta, train_tacotron2, train_waveglow
    from training.data import Dataset

    words = ["hello there.", "good morning, sir.", "a cat sat.", "we go home now.", "yes.", "no way.", "off we go."]
    data = tiny_corpus(tmp_path, words, heldout={1, 5}, shard_size=3)
    ckpt = tmp_path / "ckpt"
    assert train_tacotron2.main(["--data", str(data), "--out", str(ckpt), "--preset", "tiny", "--minutes", "0.01",
                                 "--reserve-seconds", "0", "--batch-size", "4"]) == 0

    out = tmp_path / "gta"
    gta.make(data, out, ckpt, seed=0, batch_size=2, device="cpu")
    teacher, student = Dataset.load(data), Dataset.load(out)
    np.testing.assert_array_equal(student.index, teacher.index)
    np.testing.assert_array_equal(student.heldout, teacher.heldout)
    np.testing.assert_array_equal(student.audio, teacher.audio)
    np.testing.assert_array_equal(student.ids, teacher.ids)
    np.testing.assert_array_equal(student.mel_off, teacher.mel_off)  # the teacher's length, frame for frame
    assert student.mel.dtype == np.float16 and np.isfinite(student.mel).all()
    assert np.abs(student.mel.astype(np.float32) - teacher.mel.astype(np.float32)).mean() > 1e-3
    iteration = checkpoint.load(ckpt / "tacotron2.pt")["iteration"]
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    assert settings["gta"] == {"tacotron2_iteration": iteration, "seed": 0}

    # Each item is its own teacher-forced pass, whatever it was batched with (padding is invisible),
    # and the seed fixes the prenet masks: the same seed writes the same bytes.
    again = tmp_path / "again"
    gta.make(data, again, ckpt, seed=0, batch_size=7, device="cpu")
    assert np.abs(Dataset.load(again).mel.astype(np.float32) - student.mel.astype(np.float32)).max() < 1e-2
    repeat = tmp_path / "repeat"
    gta.make(data, repeat, ckpt, seed=0, batch_size=2, device="cpu")
    np.testing.assert_array_equal(Dataset.load(repeat).mel, student.mel)
    other = tmp_path / "other"
    gta.make(data, other, ckpt, seed=1, batch_size=2, device="cpu")
    assert not np.array_equal(Dataset.load(other).mel, student.mel)

    # Resumable: finished shards stay; a folder of another seed is refused.
    shards = sorted(out.glob("shard-*.npz"))
    stamps = {p: p.stat().st_mtime_ns for p in shards}
    shards[0].unlink()
    gta.make(data, out, ckpt, seed=0, batch_size=2, device="cpu")
    assert shards[0].exists() and all(p.stat().st_mtime_ns == stamps[p] for p in shards[1:])
    np.testing.assert_array_equal(Dataset.load(out).mel, student.mel)
    with pytest.raises(ValueError, match="another checkpoint or seed"):
        gta.make(data, out, ckpt, seed=3, batch_size=2, device="cpu")
    np.testing.assert_array_equal(Dataset.load(out).mel, student.mel)  # refused: nothing touched
    gta.make(data, other, ckpt, seed=0, batch_size=2, device="cpu", overwrite=True)
    np.testing.assert_array_equal(Dataset.load(other).mel, student.mel)

    # WaveGlow trains on it as on the teacher's mels.
    assert train_waveglow.main(["--data", str(out), "--out", str(ckpt), "--preset", "tiny", "--minutes", "0.01",
                                "--reserve-seconds", "0", "--batch-size", "2", "--segment-frames", "8"]) == 0
    assert checkpoint.load(ckpt / "waveglow.pt")["iteration"] > 0
