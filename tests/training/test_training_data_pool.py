"""training.data.make when a worker process dies or a shard never finishes.

A pool worker killed while it holds a shard (SIGKILL, the OOM killer, an abort inside ONNX
Runtime's CUDA code) never returns that shard; ``make`` used to wait for it forever, deadline
or not. The stand-in teachers here kill their own process, or sleep, on one text. They run in
real spawned pool processes, as the Piper and espeak-ng teachers do.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.training.test_training_data import FAKE_ESPEAK
from training.data import Row, make

# Checked without importing torch: the pool's workers import this module too, and need no torch.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="make needs torch")

ROOT = Path(__file__).resolve().parents[2]
ROWS = [Row(i, "heldout" if i % 4 == 0 else "train", f"text number {'abcdefghijkl'[i]}.") for i in range(12)]


@dataclass(frozen=True)
class Fatal:
    """Speaks a short tone per text; on ``fatal`` it first kills its own process (once: while ``marker`` exists)."""

    fatal: str
    marker: str
    sleep: float = 0.0
    """Seconds to sleep on ``fatal`` instead of dying (a shard that never finishes)."""

    def speak(self, text: str) -> np.ndarray:
        if text == self.fatal and self.sleep:
            time.sleep(self.sleep)
        elif text == self.fatal and os.path.exists(self.marker):
            os.unlink(self.marker)
            os.kill(os.getpid(), signal.SIGKILL)
        return (3000 * np.sin(np.arange(256 * (10 + len(text))) / 5)).astype(np.int16)


def _shards(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("shard-*.npz"))


@pytest.mark.timeout(120)
def test_a_worker_killed_mid_shard_stops_make_with_a_partial_manifest_and_a_rerun_finishes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "die-once"
    marker.touch()
    teacher = Fatal(fatal=ROWS[6].text, marker=str(marker))
    out = tmp_path / "data"
    start = time.monotonic()
    with caplog.at_level(logging.INFO, logger="training.data"):
        assert make(out, ROWS, teacher, jobs=2, shard_size=2, device="cpu") is None  # no deadline at all
    assert time.monotonic() - start < 60
    assert not marker.exists()  # it did die
    died = [r.getMessage() for r in caplog.records if "died" in r.getMessage()]
    assert len(died) == 1 and "SIGKILL" in died[0] and "the next call makes the rest" in died[0], died
    made = _shards(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["planned"] == 6 and manifest["shards"] == made
    assert "shard-00006-00007-2.npz" not in made and 0 < len(made) < 6
    assert not list(out.glob("*.tmp*"))

    stamps = {name: (out / name).stat().st_mtime_ns for name in made}
    assert make(out, ROWS, teacher, jobs=2, shard_size=2, device="cpu")["complete"] is True  # the marker is gone
    assert _shards(out) == json.loads((out / "manifest.json").read_text())["shards"] and len(_shards(out)) == 6
    assert all((out / name).stat().st_mtime_ns == t for name, t in stamps.items())  # only the missing ones made


@pytest.mark.timeout(120)
def test_the_deadline_fires_on_time_while_a_shard_is_stuck(tmp_path: Path) -> None:
    teacher = Fatal(fatal=ROWS[0].text, marker="", sleep=3600)
    out = tmp_path / "data"
    start = time.monotonic()
    # Two processes: one sleeps in the first shard, the other makes the rest, then waits.
    assert make(out, ROWS, teacher, jobs=2, shard_size=2, device="cpu", deadline=start + 15) is None
    assert time.monotonic() - start < 15 + 5
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["shards"] == _shards(out)
    assert "shard-00000-00001-2.npz" not in manifest["shards"] and manifest["shards"]


@pytest.mark.timeout(120)
def test_a_deadline_waits_for_a_first_shard_only_so_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call stopped before its first shard waits for it past the deadline, but not for a stuck one."""
    import training.data

    monkeypatch.setattr(training.data, "FIRST_SHARD_GRACE_S", 3.0)
    teacher = Fatal(fatal=ROWS[0].text, marker="", sleep=3600)
    out = tmp_path / "data"
    start = time.monotonic()
    assert make(out, ROWS[:2], teacher, jobs=1, shard_size=2, device="cpu", deadline=start) is None
    assert time.monotonic() - start < 3 + 5
    assert not (out / "manifest.json").exists() and not _shards(out)


@pytest.mark.timeout(180)
def test_the_espeak_command_exits_4_when_a_worker_dies_and_the_next_run_completes(tmp_path: Path) -> None:
    """``python -m training.data make``: the espeak-ng stand-in kills its pool worker (its parent) on one text."""
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("index\tsplit\ttext\n" + "".join(f"{r.index}\t{r.split}\t{r.text}\n" for r in ROWS))
    marker = tmp_path / "die-once"
    marker.touch()
    kill = (f"text = sys.stdin.read()\nimport os, signal\nif text == {ROWS[6].text!r} and os.path.exists("
            f"{str(marker)!r}):\n    os.unlink({str(marker)!r}); os.kill(os.getppid(), signal.SIGKILL)\n")
    espeak = tmp_path / "fake-espeak-ng"
    espeak.write_text(FAKE_ESPEAK.format(python=sys.executable, rate=22050).replace("text = sys.stdin.read()\n", kill))
    espeak.chmod(0o755)
    out = tmp_path / "data"
    cmd = [sys.executable, "-m", "training.data", "make", "--corpus", str(corpus), "--out", str(out), "--espeak",
           str(espeak), "--jobs", "2", "--shard-size", "2", "--device", "cpu"]

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stderr[-3000:]
    assert not marker.exists() and "error: a teacher process died (pid " in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["shards"] == _shards(out) and len(_shards(out)) < 6

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "manifest.json").read_text())["complete"] is True and len(_shards(out)) == 6


@pytest.mark.timeout(60)
def test_an_idle_worker_killed_while_another_is_busy_is_seen_and_stopping_does_not_hang() -> None:
    """multiprocessing.Pool's idle workers wait on one shared lock; one killed there starved the rest.

    Here each worker has its own pipe: the death is reported while the busy worker sleeps on,
    and stopping ends that one too, promptly.
    """
    from training.shard_workers import ShardWorkers, WorkerDied

    with ShardWorkers(time.sleep, 2) as workers:
        workers.submit([3600])
        assert workers.next(timeout=0.5) is None and workers.pending == 1
        idle = next(p for k, p in enumerate(workers.procs) if k not in workers.busy)
        os.kill(idle.pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(WorkerDied, match=f"pid {idle.pid}, SIGKILL"):
            while time.monotonic() - start < 10:
                workers.next(timeout=0.5)
        workers.stop()
        assert time.monotonic() - start < 10
        assert all(p.exitcode is not None for p in workers.procs)


@pytest.mark.timeout(60)
def test_a_jobs_exception_is_raised_in_the_parent_with_the_workers_traceback() -> None:
    import math

    from training.shard_workers import RemoteTraceback, ShardWorkers

    with ShardWorkers(math.sqrt, 1) as workers:
        workers.submit([4.0, -1.0])
        assert workers.next(timeout=30) == 2.0
        with pytest.raises(ValueError, match="math domain error") as raised:
            workers.next(timeout=30)
        assert isinstance(raised.value.__cause__, RemoteTraceback) and "ValueError" in str(raised.value.__cause__)


@dataclass(frozen=True)
class Recorder:
    """Speaks a short tone per text and appends the text to ``log``: the order shards were made in."""

    log: str

    def speak(self, text: str) -> np.ndarray:
        with open(self.log, "a") as f:
            f.write(text + "\n")
        return (3000 * np.sin(np.arange(256 * (10 + len(text))) / 5)).astype(np.int16)


@pytest.mark.timeout(120)
def test_a_shuffled_order_makes_the_same_shards_in_another_order(tmp_path: Path) -> None:
    """``order_seed``: the missing shards in the order that seed shuffles them to, and the same shards."""
    import random

    names = [f"shard-{i:05d}-{i + 1:05d}-2.npz" for i in range(0, 12, 2)]
    seed, expected = 7, list(names)
    random.Random(seed).shuffle(expected)
    assert expected != names  # else this seed would not tell the two orders apart
    spoken = tmp_path / "spoken.txt"
    shuffled, in_order = tmp_path / "shuffled", tmp_path / "in-order"
    make(shuffled, ROWS, Recorder(str(spoken)), jobs=1, shard_size=2, device="cpu", order_seed=seed)
    texts = spoken.read_text().splitlines()
    first_rows = [int(n.split("-")[1]) for n in expected]  # each shard's first row, in the expected order
    assert texts[::2] == [ROWS[i].text for i in first_rows]
    make(in_order, ROWS, Recorder(str(tmp_path / "in-order.txt")), jobs=1, shard_size=2, device="cpu")
    assert (tmp_path / "in-order.txt").read_text().splitlines() == [r.text for r in ROWS]
    assert _shards(shuffled) == _shards(in_order) == names
    for name in names:
        a, b = np.load(shuffled / name), np.load(in_order / name)
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
