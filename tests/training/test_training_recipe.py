"""The whole recipe, tiny: data (a stand-in espeak-ng) -> both trainers -> resume -> export -> speak."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from tests.training.test_training_data import tiny_corpus  # noqa: E402


@pytest.mark.timeout(600)
def test_training_recipe_end_to_end(tmp_path: Path) -> None:
    from training import checkpoint, export_default, train_tacotron2, train_waveglow
    from training.data import Dataset

    words = ["hello there.", "good morning, sir.", "a cat sat.", "we go home now.", "yes.", "no way."]
    data = tiny_corpus(tmp_path, words, heldout={5})
    assert len(Dataset.load(data)) == 6
    ckpt = tmp_path / "ckpt"
    common = ["--data", str(data), "--out", str(ckpt), "--preset", "tiny", "--reserve-seconds", "0", "--resume"]
    assert train_tacotron2.main(["--minutes", "0.01", "--batch-size", "4", "--log-every", "1", *common]) == 0
    first = checkpoint.load(ckpt / "tacotron2.pt")["iteration"]
    assert first > 0
    assert train_tacotron2.main(["--minutes", "0.01", "--batch-size", "4", "--log-every", "1", *common]) == 0
    again = checkpoint.load(ckpt / "tacotron2.pt")
    assert again["iteration"] > first and "train/mel" in again["history"]
    assert train_waveglow.main(["--minutes", "0.01", "--batch-size", "2", "--segment-frames", "8", "--stft-weight", "1",
                                "--log-every", "1", *common]) == 0
    tiny_iterations = checkpoint.load(ckpt / "waveglow.pt")["iteration"]
    assert tiny_iterations > 0
    # Switching architecture: --only-preset starts the frame-rate WaveGlow afresh over the tiny run,
    # then resumes it when the same flags come again.
    frame = [*common[:5], "frame", *common[6:], "--only-preset", "--minutes", "0.01", "--batch-size", "2",
             "--segment-frames", "8", "--log-every", "1"]
    assert train_waveglow.main(frame) == 0
    switched = checkpoint.load(ckpt / "waveglow.pt")
    assert switched["config"]["n_group"] == 256
    assert "--only-preset: starting afresh with preset 'frame'" in (ckpt / "waveglow.log").read_text()
    assert train_waveglow.main(frame) == 0
    assert checkpoint.load(ckpt / "waveglow.pt")["iteration"] > switched["iteration"]
    for name in ("tacotron2.pt", "tacotron2.optimizer.pt", "waveglow.pt", "waveglow.optimizer.pt"):
        assert (ckpt / name).stat().st_size < 16 * 2**20
    if _has_matplotlib():
        assert (ckpt / "tacotron2_alignment.png").exists() and (ckpt / "waveglow_spectrogram.png").exists()

    voice = tmp_path / "voice"
    assert export_default.main(["--checkpoints", str(ckpt), "--out", str(voice), "--max-decoder-steps", "40",
                                "--check-text", "hello."]) == 0
    config = json.loads((voice / "voice.json").read_text())
    assert config["streaming"]["context_frames"] == 40  # the trained frame-rate WaveGlow's seams need it
    assert config["decoder"]["max_decoder_steps"] == 40 and config["decoder"]["prenet_dim"] == 32
    from rtvoice import Voice

    with Voice.load(voice, backend="onnxruntime", device="cpu") as v:
        audio = np.concatenate([c.samples for c in v.synthesize("a cat.")])
    assert audio.size > 0 and np.isfinite(audio).all()


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.timeout(300)
@pytest.mark.skipif(torch.cuda.is_available(), reason="makes the capture fail by having no CUDA device")
def test_a_failed_graph_capture_restarts_the_run_eagerly(tmp_path: Path) -> None:
    """--cuda-graphs on where no graph can be captured: the trainer replaces itself with an eager run.

    On the GPU machine a failed capture leaves CUDA's random generator unusable, so the
    fallback must be a fresh process; here the capture fails for want of a device, and the
    same path runs: same pid, same log, --cuda-graphs off, the minutes left.
    """
    import subprocess
    import sys

    from training import checkpoint

    data = tiny_corpus(tmp_path, ["hi there.", "a cat.", "go.", "no."], heldout={3})
    ckpt = tmp_path / "ckpt"
    run = subprocess.run(
        [sys.executable, "-m", "training.train_tacotron2", "--data", str(data), "--out", str(ckpt), "--preset", "tiny",
         "--device", "cpu", "--cuda-graphs", "on", "--minutes", "0.1", "--batch-size", "2", "--reserve-seconds", "0",
         "--log-every", "1", "--profile-steps", "1"],
        capture_output=True, text=True, timeout=240, check=False)
    log = (ckpt / "tacotron2.log").read_text()
    assert run.returncode == 0, run.stderr[-2000:]
    assert "capture of the decoder loop failed" in log and "restarting eagerly" in log
    saved = checkpoint.load(ckpt / "tacotron2.pt")
    assert saved["iteration"] > 0
    assert saved["config"]["training"]["cuda_graphs"] == "off"
    assert 0 < saved["config"]["training"]["minutes"] < 0.1  # what was left, not a new budget
    assert "profile of 1 steps" in log  # the restarted run keeps the other flags


@pytest.mark.timeout(300)
@pytest.mark.skipif(torch.cuda.is_available(), reason="makes the capture fail by having no CUDA device")
def test_a_failed_waveglow_step_capture_restarts_the_run_eagerly(tmp_path: Path) -> None:
    """The same fallback for WaveGlow's graphed step; the run also resumes a plain-W checkpoint in LU form."""
    import subprocess
    import sys

    from training import checkpoint

    data = tiny_corpus(tmp_path, ["hi there.", "a cat.", "go.", "no."], heldout={3})
    ckpt = tmp_path / "ckpt"
    common = [sys.executable, "-m", "training.train_waveglow", "--data", str(data), "--out", str(ckpt), "--preset",
              "tiny", "--device", "cpu", "--batch-size", "2", "--segment-frames", "8", "--reserve-seconds", "0",
              "--log-every", "1", "--resume"]
    first = subprocess.run([*common, "--minutes", "0.05", "--inv-conv", "plain"], capture_output=True, text=True,
                           timeout=120, check=False)
    assert first.returncode == 0, first.stderr[-2000:]
    run = subprocess.run([*common, "--minutes", "0.1", "--cuda-graphs", "on"], capture_output=True, text=True,
                         timeout=240, check=False)
    log = (ckpt / "waveglow.log").read_text()
    assert run.returncode == 0, run.stderr[-2000:]
    assert "capture of the training step failed" in log and "restarting eagerly" in log
    assert "1x1 convolutions lu (the checkpoint's: plain)" in log  # another parameter form: a fresh optimizer
    saved = checkpoint.load(ckpt / "waveglow.pt")
    assert saved["config"]["training"]["cuda_graphs"] == "off" and saved["config"]["training"]["inv_conv"] == "lu"
    assert "convinv.0.conv.weight" in saved["state_dict"]  # saved as NVIDIA's plain W
    assert not any("parametrizations" in name for name in saved["state_dict"])


@pytest.mark.timeout(300)
def test_a_batch_out_of_memory_shrinks_the_batch_and_training_goes_on(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A --batch-size too large for the GPU costs one batch, not the run.

    No CPU allocation fails the way CUDA's does, so the step raises torch's OutOfMemoryError
    itself whenever a batch holds more than 3 sentences, as a GPU would past its memory.
    """
    from training import checkpoint, train_tacotron2

    words = ["hi there.", "a cat.", "go.", "no.", "we sat.", "yes sir.", "a dog ran.", "up."]
    data = tiny_corpus(tmp_path, words, heldout={7})
    real = train_tacotron2.teacher_forced
    sizes: list[int] = []

    def step(model, batch, *rest):  # type: ignore[no-untyped-def]
        sizes.append(batch.text.size(0))
        if batch.text.size(0) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, batch, *rest)

    monkeypatch.setattr(train_tacotron2, "teacher_forced", step)
    ckpt = tmp_path / "ckpt"
    assert train_tacotron2.main(["--data", str(data), "--out", str(ckpt), "--preset", "tiny", "--device", "cpu",
                                 "--minutes", "0.02", "--batch-size", "7", "--reserve-seconds", "0",
                                 "--log-every", "1"]) == 0
    assert sizes[:3] == [7, 5, 3]  # 7 -> 5 -> 3 (three quarters, rounded down), then it trains
    saved = checkpoint.load(ckpt / "tacotron2.pt")
    assert saved["iteration"] > 0 and saved["config"]["training"]["batch_size"] == 3
    log = (ckpt / "tacotron2.log").read_text()
    assert "out of memory on a batch of 7 items" in log and "batch size 5 -> 3" in log


@pytest.mark.timeout(300)
def test_a_diverged_checkpoint_is_not_saved_and_training_rolls_back(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A val mel far above the last checkpoint's never overwrites it: the run goes back to it.

    After the first checkpoint, validation reports ten times its real mel loss, as a run that
    diverged would; every later save must then restore the first checkpoint instead.
    """
    from training import checkpoint, train_tacotron2

    words = ["hi there.", "a cat.", "go.", "no.", "we sat.", "yes sir.", "a dog ran.", "up."]
    data = tiny_corpus(tmp_path, words, heldout={7})
    real = train_tacotron2.validate
    calls: list[int] = []

    def diverged(*args, **kwargs):  # type: ignore[no-untyped-def]
        val = real(*args, **kwargs)
        calls.append(len(calls))
        return {**val, "mel": val["mel"] * (10 if len(calls) > 1 else 1)}

    monkeypatch.setattr(train_tacotron2, "validate", diverged)
    ckpt = tmp_path / "ckpt"
    assert train_tacotron2.main(["--data", str(data), "--out", str(ckpt), "--preset", "tiny", "--device", "cpu",
                                 "--minutes", "0.06", "--checkpoint-minutes", "0.01", "--batch-size", "3",
                                 "--reserve-seconds", "0", "--log-every", "1"]) == 0
    log = (ckpt / "tacotron2.log").read_text()
    first = int(log.split("checkpoint at iteration ")[1].split(":")[0])
    assert len(calls) >= 2 and log.count("checkpoint at iteration ") == 1
    assert log.count(f"rolled back to iteration {first}") == len(calls) - 1
    saved = checkpoint.load(ckpt / "tacotron2.pt")
    assert saved["iteration"] == first and len(saved["history"]["val/mel"]) == 1
    # Without the guard (--rollback-ratio 0) a resumed run saves whatever validation says.
    assert train_tacotron2.main(["--data", str(data), "--out", str(ckpt), "--resume", "--preset", "tiny",
                                 "--device", "cpu", "--minutes", "0.01", "--batch-size", "3", "--reserve-seconds",
                                 "0", "--rollback-ratio", "0"]) == 0
    assert checkpoint.load(ckpt / "tacotron2.pt")["iteration"] > first
