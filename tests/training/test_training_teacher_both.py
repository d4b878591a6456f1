"""``teacher make --teacher-device both``: CUDA and CPU processes make one corpus from one shard queue.

There is no GPU here. The processes that claim a CUDA slot run ONNX Runtime's CPU provider
instead (training.teacher_pool.CUDA_STAND_IN, a test-only switch that logs a warning), so what
these tests hold is the mixed pool itself: how many processes take the CUDA role, that every
shard is made once by one process, the manifest, the deadline stop, and stretch.sh's ``auto``
choice. Nothing here runs CUDA; the mixed mode has not yet run on a GPU.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from tests.training.test_training_teacher import fake_ids, stand_in_model  # noqa: E402
from tests.training.test_training_teacher_call import _env, _stretch, _whole_carry  # noqa: E402
from training.teacher import save_phonemes  # noqa: E402
from training.teacher_cli import corpus_rows  # noqa: E402
from training.teacher_pool import CUDA_STAND_IN  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ROWS = ["--limit", "40", "--max-chars", "60", "--shard-size", "4", "--device", "cpu"]
STAND_IN = {**os.environ, CUDA_STAND_IN: "1"}


def _teacher(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in model that takes about 0.1 s a text (so the pool's processes share the shards), and ids."""
    model = stand_in_model(tmp_path / "piper.onnx", work=400)
    texts = sorted({r.text for r in corpus_rows()})
    save_phonemes(tmp_path / "phonemes.npz", texts, [fake_ids(t) for t in texts])
    return model, tmp_path / "phonemes.npz"


def _make(model: Path, phonemes: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "training.teacher", "make", "--model", str(model), "--phonemes", str(phonemes),
           "--out", str(out), *ROWS, *flags]
    return subprocess.run(cmd, cwd=ROOT, env=STAND_IN, capture_output=True, text=True, timeout=300)


def _spoken(log: str) -> dict[str, tuple[int, int]]:
    """The ``teacher processes:`` line: per device, (processes, texts)."""
    line = next(x for x in log.splitlines() if x.startswith("teacher processes: "))
    return {d: (int(n), int(t)) for d, n, t in re.findall(r"(\w+): (\d+) process(?:es)? spoke (\d+) texts", line)}


def _texts(folder: Path, shards: list[str]) -> int:
    return sum(int(np.load(folder / name)["index"].size) for name in shards)


@pytest.mark.timeout(600)
def test_cuda_and_cpu_processes_make_each_shard_once_and_the_corpus_a_cpu_run_makes(tmp_path: Path) -> None:
    model, phonemes = _teacher(tmp_path)
    mixed = tmp_path / "mixed"
    both = ("--teacher-device", "both", "--cuda-jobs", "1", "--jobs", "3")

    # Out of time after its first shard: exit 4, the finished shards kept under a partial manifest.
    done = _make(model, phonemes, mixed, *both, "--minutes", "0.0001")
    assert done.returncode == 4, done.stderr[-3000:]
    assert "3 processes, the first 1 to speak on CUDA" in done.stderr and "(tests only)" in done.stderr
    partial = json.loads((mixed / "manifest.json").read_text())
    made = sorted(p.name for p in mixed.glob("shard-*.npz"))
    assert made and partial["complete"] is False and partial["shards"] == made and len(made) < partial["planned"]
    assert not list(mixed.glob("*.tmp*"))  # no half-written shard or manifest

    # The rest: the CUDA process and the CPU processes all speak, and no text is spoken twice.
    done = _make(model, phonemes, mixed, *both)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((mixed / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["planned"] == len(manifest["shards"])
    rest = sorted(set(manifest["shards"]) - set(made))
    assert f"{len(rest)} of {manifest['planned']} shards to make" in done.stderr
    spoken = _spoken(done.stderr)
    assert spoken["cuda"][0] == 1 and spoken["cpu"][0] >= 1, spoken  # one CUDA slot, the others on the CPU
    assert spoken["cuda"][1] > 0 and spoken["cpu"][1] > 0, spoken  # both devices contributed
    assert spoken["cuda"][1] + spoken["cpu"][1] == _texts(mixed, rest), spoken  # each shard made once

    # The same corpus as the CPU alone makes: the same manifest, shard for shard the same arrays.
    alone = tmp_path / "alone"
    done = _make(model, phonemes, alone, "--teacher-device", "cpu", "--jobs", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((alone / "manifest.json").read_text()) == manifest
    for name in manifest["shards"]:
        with np.load(mixed / name) as a, np.load(alone / name) as b:
            assert set(a.files) == set(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")


def test_a_mixed_corpus_continues_a_cpu_corpus_and_both_needs_a_process_per_device(tmp_path: Path) -> None:
    """A CPU-made partial corpus is finished by ``both``; ``--cuda-jobs`` must leave a CPU process."""
    model = stand_in_model(tmp_path / "piper.onnx")
    texts = sorted({r.text for r in corpus_rows()})
    save_phonemes(tmp_path / "phonemes.npz", texts, [fake_ids(t) for t in texts])
    data = tmp_path / "data"
    done = _make(model, tmp_path / "phonemes.npz", data, "--teacher-device", "cpu", "--jobs", "1", "--minutes",
                 "0.0001")
    assert done.returncode == 4, done.stderr[-3000:]
    done = _make(model, tmp_path / "phonemes.npz", data, "--teacher-device", "both", "--cuda-jobs", "2", "--jobs", "2")
    assert done.returncode == 2 and "--cuda-jobs 2 of --jobs 2" in done.stderr, done.stderr[-3000:]
    done = _make(model, tmp_path / "phonemes.npz", data, "--teacher-device", "both", "--cuda-jobs", "1", "--jobs", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((data / "manifest.json").read_text())["complete"] is True


@pytest.mark.timeout(600)
def test_auto_picks_both_where_a_cuda_session_opens_and_the_cpu_where_none_does(tmp_path: Path) -> None:
    """stretch.sh TEACHER_DEVICE=auto: ``both`` (4 on cuda by default, one core spare) when the probe opens."""
    import onnxruntime as ort

    if not list((ROOT / "training" / "carry" / "wheels").glob("*.whl")):
        pytest.skip("training/carry/wheels is missing (bash training/fetch_espeak.sh)")
    first = _whole_carry(tmp_path)
    nproc = len(os.sched_getaffinity(0))

    env = _env(tmp_path, first, SYNTH_ONLY="1", TEACHER_CUDA_JOBS="1", **{CUDA_STAND_IN: "1"})
    del env["TEACHER_JOBS"]
    done = _stretch(env, "tacotron2", "1.5")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    jobs = 1 + max(1, nproc - 2)
    assert f"teacher: Piper on cuda and cpu, {jobs} processes (1 on cuda)" in done.stdout, log[-3000:]
    assert f"{jobs} processes, the first 1 to speak on CUDA" in log and "teacher processes: " in log
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["complete"] is True

    # Without a CUDA session (this machine's onnxruntime has no CUDA provider): the CPU, nproc processes.
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    env = _env(tmp_path, first, SYNTH_ONLY="1", DATA=str(tmp_path / "data-cpu"))
    del env["TEACHER_JOBS"]
    done = _stretch(env, "tacotron2", "1.5")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert f"teacher: Piper on cpu, {nproc} processes" in done.stdout, done.stdout[-3000:]
