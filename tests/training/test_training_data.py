"""training/espeak.py and training/data.py: WAV parsing, trimming, the corpus and the dataset.

The dataset test runs the real pipeline (processes, shards, mels, resume) with a stand-in
for espeak-ng that writes a WAV to stdout, so it needs neither espeak-ng nor a network.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import string
import sys
import wave
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from training.espeak import Teacher, TeacherError, parse_wav, trim

if TYPE_CHECKING:
    from training.data import Row

FAKE_ESPEAK = """#!{python}
# Stand-in for espeak-ng: a 200 Hz tone, 0.05 s per input character, between silences.
import io, sys, wave
import numpy as np
text = sys.stdin.read()
assert "--stdout" in sys.argv and "--stdin" in sys.argv
n = int(0.05 * 22050 * len(text))
tone = (8000 * np.sin(2 * np.pi * 200 * np.arange(n) / 22050)).astype("<i2")
pcm = np.concatenate([np.zeros(2205, "<i2"), tone, np.zeros(6615, "<i2")])
buf = io.BytesIO()
with wave.open(buf, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate({rate}); w.writeframes(pcm.tobytes())
data = bytearray(buf.getvalue())
data[40:44] = (0x7FFFF000).to_bytes(4, "little")  # what espeak-ng writes to a pipe
sys.stdout.buffer.write(bytes(data))
"""


def wav_bytes(samples: np.ndarray, rate: int = 22050, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def fake_espeak(folder: Path, rate: int = 22050) -> str:
    path = folder / "fake-espeak-ng"
    path.write_text(FAKE_ESPEAK.format(python=sys.executable, rate=rate))
    path.chmod(0o755)
    return str(path)


def tiny_corpus(folder: Path, words: Sequence[str], heldout: Collection[int], shard_size: int = 8) -> Path:
    """Make ``folder/data``, a corpus of ``words`` spoken by :func:`fake_espeak`; lines ``heldout`` held out.

    The trainer tests each train on a few such sentences; one maker keeps their corpora
    made alike (one process, CPU mels) and each test down to what it checks.
    """
    from training.data import Row, make

    rows = [Row(i, "heldout" if i in heldout else "train", w) for i, w in enumerate(words)]
    data = folder / "data"
    make(data, rows, Teacher(espeak=fake_espeak(folder)), jobs=1, shard_size=shard_size, device="cpu")
    return data


def hello_rows(n: int, held: Callable[[int], bool] = lambda i: i % 4 == 0) -> list[Row]:
    """``n`` corpus rows "hello number a." to the ``n``-th letter; row ``i`` held out where ``held(i)``."""
    from training.data import Row

    return [Row(i, "heldout" if held(i) else "train", f"hello number {string.ascii_lowercase[i]}.") for i in range(n)]


def test_training_parse_wav_reads_a_pipe_header() -> None:
    samples = np.arange(-500, 500, dtype=np.int16)
    data = bytearray(wav_bytes(samples))
    data[40:44] = (0x7FFFF000).to_bytes(4, "little")
    np.testing.assert_array_equal(parse_wav(bytes(data)), samples)


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (22050, 2)])
def test_training_parse_wav_refuses_other_formats(rate: int, channels: int) -> None:
    with pytest.raises(TeacherError, match="22050 Hz"):
        parse_wav(wav_bytes(np.zeros(100, np.int16), rate, channels))


def test_training_trim_keeps_a_margin() -> None:
    x = np.zeros(256 * 100, np.int16)
    x[256 * 40 : 256 * 50] = 10000
    y = trim(x, threshold=0.01, margin_blocks=4)
    assert y.size == 256 * (10 + 8)
    assert trim(np.zeros(1000, np.int16), 0.01, 4).size == 1000  # all silence: untouched


def test_training_corpus_is_cleaned_and_split_deterministically(tmp_path: Path) -> None:
    from training.data import build_corpus, read_corpus

    lines = [f"Sentence number {i}, said Mr. Smith on 3 May." for i in range(40)] + ["..."]
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
    rows = build_corpus(tmp_path / "t.txt", tmp_path / "c.tsv", heldout=5, seed=1)
    again = read_corpus(tmp_path / "c.tsv")
    assert rows == again
    assert len(rows) == 40  # "..." has nothing to speak
    # rtvoice.text's reading (a date reads "on the third of may" since 5f651b0's normalizer)
    assert rows[0].text == "sentence number zero, said mister smith on the third of may."
    held = [r.index for r in rows if r.split == "heldout"]
    assert len(held) <= 5 and held == [r.index for r in build_corpus(tmp_path / "t.txt", tmp_path / "d.tsv",
                                                                        heldout=5, seed=1) if r.split == "heldout"]


@pytest.mark.timeout(120)
def test_training_make_dataset_resumes(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from training.data import Dataset, Row, make, symbol_ids

    rows = hello_rows(10)
    teacher = Teacher(espeak=fake_espeak(tmp_path))
    out = tmp_path / "data"
    make(out, rows, teacher, jobs=2, shard_size=4, device="cpu")
    shards = sorted(out.glob("shard-*.npz"))
    assert len(shards) == 3
    data = Dataset.load(out)
    assert len(data) == 10 and int(data.heldout.sum()) == 3
    for i in range(len(data)):
        n_audio = int(data.audio_off[i + 1] - data.audio_off[i])
        assert data.mel_off[i + 1] - data.mel_off[i] == 1 + n_audio // 256
        np.testing.assert_array_equal(data.ids[data.ids_off[i] : data.ids_off[i + 1]], symbol_ids(rows[i].text))
    assert data.mel.dtype == np.float16 and data.mel.shape[1] == 80
    # Trimmed: 0.1 s leading silence cut to the margin, the tone kept whole.
    assert 0.05 * 22050 * len(rows[0].text) <= data.audio_off[1] < 0.05 * 22050 * len(rows[0].text) + 256 * 11

    stamps = {p: p.stat().st_mtime_ns for p in shards}
    shards[0].unlink()
    make(out, rows, teacher, jobs=1, shard_size=4, device="cpu")  # remakes only the missing shard
    assert all(p.stat().st_mtime_ns == stamps[p] for p in shards[1:]) and shards[0].exists()
    assert json.loads((out / "manifest.json").read_text())["heldout"] == [0, 4, 8]
    # A rebuilt corpus (one text re-normalized): only its shard is made again, with the new text.
    stamps = {p: p.stat().st_mtime_ns for p in shards}
    changed = [*rows[:5], Row(5, rows[5].split, "hello number six."), *rows[6:]]
    make(out, changed, teacher, jobs=1, shard_size=4, device="cpu")
    assert [p.stat().st_mtime_ns == stamps[p] for p in shards] == [True, False, True]
    data = Dataset.load(out)
    np.testing.assert_array_equal(data.ids[data.ids_off[5] : data.ids_off[6]], symbol_ids("hello number six."))
    with pytest.raises(ValueError, match="other settings"):
        make(out, rows, Teacher(espeak=teacher.espeak, speed=120), jobs=1, shard_size=4, device="cpu")


@pytest.mark.timeout(120)
def test_training_a_dataset_grows_by_the_shards_made_after_it_loaded(tmp_path: Path) -> None:
    """--follow-data: rows loaded first keep their places; new shards append, held-out rows marked."""
    pytest.importorskip("torch")
    from training.data import CorpusFollower, Dataset, make

    rows = hello_rows(12)
    teacher = Teacher(espeak=fake_espeak(tmp_path))
    out = tmp_path / "data"
    make(out, rows[:4], teacher, jobs=1, shard_size=4, device="cpu")
    for with_audio in (True, False):
        first = Dataset.load(out, with_audio=with_audio)
        assert first.grown(out) is None and len(first.shards) == 1
        follower = CorpusFollower(out, every_s=0.01)
        assert follower.poll(first) is None  # not due yet
        make(out, rows, teacher, jobs=1, shard_size=4, device="cpu")  # the teacher makes the rest
        follower.last -= 1
        grown = follower.poll(first)
        assert grown is not None and len(grown) == 12 and len(grown.shards) == 3
        whole = Dataset.load(out, with_audio=with_audio)
        for key in ("ids", "mel", "audio"):
            assert [a.tolist() for a in grown.split(key)] == [a.tolist() for a in whole.split(key)], key
        assert grown.index.tolist() == whole.index.tolist() == list(range(12))
        assert np.flatnonzero(grown.heldout).tolist() == [0, 4, 8]
        assert (grown.audio.size > 0) == with_audio
        assert CorpusFollower(out, every_s=0).poll(first) is None  # following off
        shutil.rmtree(out)  # the next round starts again from the first shard alone
        make(out, rows[:4], teacher, jobs=1, shard_size=4, device="cpu")


def test_training_make_lists_each_shard_as_it_is_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trainer following the corpus sees shards while ``make`` still runs: the manifest grows."""
    pytest.importorskip("torch")
    from training import data as data_mod
    from training.data import make

    rows = hello_rows(8, held=lambda i: False)
    out = tmp_path / "data"
    seen: list[list[str]] = []
    real = data_mod.save_shard

    def save_and_look(path: Path, *args: object) -> None:
        manifest = out / "manifest.json"
        seen.append(json.loads(manifest.read_text())["shards"] if manifest.exists() else [])
        real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(data_mod, "save_shard", save_and_look)
    make(out, rows, Teacher(espeak=fake_espeak(tmp_path)), jobs=1, shard_size=2, device="cpu")
    assert [len(s) for s in seen] == [0, 1, 2, 3]
    final = json.loads((out / "manifest.json").read_text())
    assert final["complete"] is True and len(final["shards"]) == 4


@pytest.mark.timeout(300)
def test_training_both_trainers_follow_a_growing_corpus_and_validate_once_held_out_rows_come(tmp_path: Path) -> None:
    """--follow-data: each trainer takes in shards made after it started; its first shard held no held-out
    row, so it validates on the new shards' ones (a checkpoint with no val would leave rollback blind)."""
    import subprocess
    import time

    pytest.importorskip("torch")
    from training.data import make

    rows = hello_rows(16, held=lambda i: i >= 8 and i % 4 == 0)
    teacher = Teacher(espeak=fake_espeak(tmp_path))
    data = tmp_path / "data"
    make(data, rows[:4], teacher, jobs=1, shard_size=4, device="cpu")
    flags = {"tacotron2": ["--val-items", "2"], "waveglow": ["--segment-frames", "8"]}
    runs = {m: subprocess.Popen([sys.executable, "-m", f"training.train_{m}", "--minutes", "0.5", "--data", str(data),
                                 "--out", str(tmp_path / m), "--preset", "tiny", "--batch-size", "2", "--log-every",
                                 "10", "--follow-data", "0.5", "--reserve-seconds", "5", *extra], cwd=Path(__file__).resolve().parents[2],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            for m, extra in flags.items()}
    logs = {m: tmp_path / m / f"{m}.log" for m in runs}
    deadline = time.monotonic() + 120
    while not all(f.exists() and " data: " in f.read_text() for f in logs.values()):
        assert time.monotonic() < deadline and all(r.poll() is None for r in runs.values()), "a trainer did not start"
        time.sleep(0.2)
    make(data, rows, teacher, jobs=1, shard_size=4, device="cpu")  # the teacher makes the rest meanwhile
    for m, run in runs.items():
        assert run.wait(timeout=180) == 0, logs[m].read_text()[-2000:]
        log = logs[m].read_text()
        grew = [line for line in log.splitlines() if "more shards from the teacher" in line]
        assert grew and "teacher: 16 utterances (2 held out)" in grew[-1], log[-2000:]
        final = [line for line in log.splitlines() if "checkpoint at iteration" in line][-1]
        assert ("val mel " if m == "tacotron2" else "mel_l1 ") in final, final


def test_training_fake_espeak_refuses_other_rates(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="16000 Hz"):
        Teacher(espeak=fake_espeak(tmp_path, rate=16000)).speak("hello.")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_training_real_espeak_speaks_22050_hz() -> None:
    clip = Teacher().speak("hello there.")
    assert 0.3 < clip.size / 22050 < 2.0 and np.abs(clip).max() > 3000


def test_training_bundled_espeak_if_fetched() -> None:
    root = Path(__file__).resolve().parents[2]
    tarball = root / "training" / "carry" / "espeak.tar.xz"
    if not tarball.exists():
        pytest.skip("training/carry not fetched (bash training/fetch_espeak.sh)")
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "-C", tmp, "-xJf", str(tarball)], check=True)
        clip = Teacher(espeak=os.path.join(tmp, "espeak", "espeak-ng")).speak("hello there.")
    assert 0.3 < clip.size / 22050 < 2.0
