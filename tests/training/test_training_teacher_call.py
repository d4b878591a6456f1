"""TEACHER=piper bash training/stretch.sh: the natural voice's GPU call, end to end on the CPU.

A stand-in graph with Piper's interface replaces the 60 MB model (the real one is held to
Piper in test_training_teacher.py), so this runs in a minute or two: the teacher arrives in
two parts over two calls, the corpus is synthesized in parallel processes into the runtime's
mels, Tacotron 2 starts from a warm-start file, both models train, and their weights come
back as float16 with the logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.training.test_training_teacher import fake_ids, stand_in_model  # noqa: E402
from training import checkpoint  # noqa: E402
from training.data import Dataset  # noqa: E402
from training.teacher import pack, save_phonemes  # noqa: E402
from training.teacher_cli import corpus_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STRETCH = ROOT / "training" / "stretch.sh"
DATA_ARGS = "--limit 16 --max-chars 40 --shard-size 8"


def _carry(tmp_path: Path, work: int = 0) -> tuple[Path, Path]:
    """The teacher packed in two parts: (what call 1 carries, what call 2 carries); ``work``: see stand_in_model."""
    model = stand_in_model(tmp_path / "piper.onnx", work=work)
    packed = tmp_path / "packed"
    pack(model, Path(str(model) + ".json"), packed, parts=2)
    texts = sorted({r.text for r in corpus_rows()})
    save_phonemes(packed / "phonemes.npz", texts, [fake_ids(t) for t in texts])
    first, second = tmp_path / "call1", tmp_path / "call2"
    for folder in (first, second):
        folder.mkdir()
    for f in packed.iterdir():
        (second if f.name.endswith(".part1") else first).joinpath(f.name).write_bytes(f.read_bytes())
    return first, second


def _whole_carry(tmp_path: Path, work: int = 0) -> Path:
    """Both of the teacher's parts in one folder: what one call carries when it fits."""
    first, second = _carry(tmp_path, work)
    for f in second.iterdir():
        (first / f.name).write_bytes(f.read_bytes())
    return first


def _env(tmp_path: Path, carry: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TEACHER": "piper", "TEACHER_CARRY": str(carry), "TEACHER_DIR": str(tmp_path / "teacher"),
            "TEACHER_JOBS": "2", "TEACHER_MINUTES": "5", "RUN": str(tmp_path / "run"), "OUT": str(tmp_path / "out"),
            "DATA": str(tmp_path / "data"), "CHECKPOINTS": str(tmp_path / "landed"), "DATA_ARGS": DATA_ARGS, **extra}


def _stretch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(STRETCH), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=540)


@pytest.mark.timeout(600)
def test_teacher_call_stages_the_teacher_synthesizes_and_trains(tmp_path: Path) -> None:
    if not list((ROOT / "training" / "carry" / "wheels").glob("*.whl")):
        pytest.skip("training/carry/wheels is missing (bash training/fetch_espeak.sh)")
    from rtvoice.export.tacotron2 import Tacotron2
    from training.train_tacotron2 import PRESETS

    first, second = _carry(tmp_path)
    (tmp_path / "out").mkdir()
    old = Tacotron2(PRESETS["tiny"]).state_dict()
    old["embedding.weight"] = torch.full_like(old["embedding.weight"], 0.125)  # recognizable after the start
    torch.save({"state_dict": old}, tmp_path / "warm.pt")
    flags = {"TACOTRON2_ARGS": f"--preset tiny --batch-size 4 --log-every 2 --val-items 2 --warm-start "
                               f"{tmp_path / 'warm.pt'}",
             "WAVEGLOW_ARGS": "--preset tiny --batch-size 2 --segment-frames 8 --log-every 2"}

    # Call 1 carries one part of the teacher: it waits on the machine, nothing trains.
    done = _stretch(_env(tmp_path, first, **flags), "both", "1.5")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "teacher incomplete" in done.stdout
    assert not (tmp_path / "data").exists() and not list((tmp_path / "out").iterdir())

    # Call 2 brings the other part: rebuilt, the corpus made, both models trained and sent back.
    done = _stretch(_env(tmp_path, second, **flags), "both", "1.0")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "rebuilt" in log and "warm start from" in log
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["settings"]["teacher"]["piper"] == "en_US-joe-medium"
    out = tmp_path / "out"
    for name in ("tacotron2", "waveglow"):
        saved = checkpoint.load(out / f"{name}.pt")
        assert saved["weights_dtype"] == "float16" and saved["iteration"] > 0
        assert all(v.dtype != torch.float32 for v in saved["state_dict"].values())
    with tarfile.open(out / "report.tar") as tar:
        assert {"tacotron2.log", "waveglow.log"} <= set(tar.getnames())
    assert len([p for p in out.rglob("*") if p.is_file()]) <= 8

    # A run resumed from the float16 weights that came back trains on (they load as float32).
    landed = tmp_path / "landed"
    landed.mkdir()
    for f in out.glob("tacotron2.pt*"):
        (landed / f.name).write_bytes(f.read_bytes())
    iteration = checkpoint.iteration_of(landed, "tacotron2")
    (tmp_path / "run").rename(tmp_path / "run-gone")  # a fresh machine: only the landed files
    done = _stretch(_env(tmp_path, second, TACOTRON2_ARGS="--batch-size 4 --log-every 2 --val-items 2"),
                    "tacotron2", "0.8")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert f"resuming {tmp_path / 'run'}/tacotron2.pt at iteration {iteration}" in done.stdout
    assert checkpoint.iteration_of(tmp_path / "run", "tacotron2") > iteration


def test_corpus_making_stops_at_its_deadline_and_resumes(tmp_path: Path) -> None:
    """Out of time, ``make`` exits 4 with finished shards kept; the next run makes only the rest."""
    import sys

    first = _whole_carry(tmp_path)
    teacher = tmp_path / "teacher"
    subprocess.run([sys.executable, "-m", "training.teacher", "unpack", "--src", str(first), "--out", str(teacher)],
                   cwd=ROOT, check=True, timeout=120)
    cmd = [sys.executable, "-m", "training.teacher", "make", "--model", str(teacher / "joe.onnx"), "--phonemes",
           str(teacher / "phonemes.npz"), "--out", str(tmp_path / "data"), "--jobs", "1", "--limit", "40",
           "--max-chars", "60", "--shard-size", "4", "--device", "cpu"]
    done = subprocess.run([*cmd, "--minutes", "0.0001"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4, done.stderr[-2000:]
    made = sorted(p.name for p in (tmp_path / "data").glob("shard-*.npz"))
    assert made
    # The finished shards alone get a manifest marked incomplete, which loads as a dataset.
    partial = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert partial["complete"] is False and partial["shards"] == made
    data = Dataset.load(tmp_path / "data")
    in_made = {int(i) for name in made for i in np.load(tmp_path / "data" / name)["index"]}
    assert set(data.index.tolist()) == in_made and len(data) == 4 * len(made)
    assert set(partial["heldout"]) <= in_made and int(data.heldout.sum()) == len(partial["heldout"])
    # The rest, in a shuffled order (as training/stretch.sh makes them): the same corpus in the end.
    done = subprocess.run([*cmd, "--shard-order", "shuffled", "--seed", "3"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["complete"] is True
    total = len(manifest["shards"])
    assert set(made) < set(manifest["shards"])
    assert f"{total - len(made)} of {total} shards to make" in done.stderr  # the made ones were skipped
    assert "in an order shuffled with seed 3" in done.stderr


def test_a_corpus_changed_after_phonemizing_fails_before_any_synthesis(tmp_path: Path) -> None:
    """Texts without phoneme ids (the front end changed, phonemize was not re-run): exit 2, one clear line."""
    import sys

    first = _whole_carry(tmp_path)
    texts = sorted({r.text for r in corpus_rows()})[:50]
    save_phonemes(first / "phonemes.npz", texts, [fake_ids(t) for t in texts])
    teacher = tmp_path / "teacher"
    subprocess.run([sys.executable, "-m", "training.teacher", "unpack", "--src", str(first), "--out", str(teacher)],
                   cwd=ROOT, check=True, timeout=120)
    done = subprocess.run([sys.executable, "-m", "training.teacher", "make", "--model", str(teacher / "joe.onnx"),
                           "--phonemes", str(teacher / "phonemes.npz"), "--out", str(tmp_path / "data"), "--jobs",
                           "1", "--limit", "40", "--device", "cpu"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "have no phoneme ids" in done.stderr and "phonemize" in done.stderr
    assert not (tmp_path / "data").exists()
    verify = subprocess.run([sys.executable, "-m", "training.teacher", "verify", "--phonemes",
                             str(teacher / "phonemes.npz")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 1 and "lack phoneme ids" in verify.stdout


@pytest.mark.timeout(600)
def test_an_incomplete_corpus_trains_on_its_finished_shards_unless_partial_is_off(tmp_path: Path) -> None:
    """PARTIAL=0: a deadline-stopped corpus trains nothing; the default trains on the shards made."""
    if not list((ROOT / "training" / "carry" / "wheels").glob("*.whl")):
        pytest.skip("training/carry/wheels is missing (bash training/fetch_espeak.sh)")
    first = _whole_carry(tmp_path)
    (tmp_path / "out").mkdir()
    flags = {"TEACHER_MINUTES": "0.0001", "DATA_ARGS": "--limit 16 --max-chars 40 --shard-size 2",
             "TACOTRON2_ARGS": "--preset tiny --batch-size 2 --log-every 2 --val-items 2"}

    done = _stretch(_env(tmp_path, first, PARTIAL="0", **flags), "tacotron2", "0.5")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "trained nothing" in done.stdout and "training on" not in done.stdout
    assert checkpoint.iteration_of(tmp_path / "run", "tacotron2") == -1
    made = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert made["complete"] is False and 0 < len(made["shards"]) < made["planned"]

    done = _stretch(_env(tmp_path, first, **flags), "tacotron2", "0.5")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    partial = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert len(made["shards"]) < len(partial["shards"]) < partial["planned"]  # it made more first
    assert f"training on {len(partial['shards'])} of {partial['planned']} shards" in done.stdout
    assert checkpoint.iteration_of(tmp_path / "run", "tacotron2") > 0


@pytest.mark.timeout(600)
def test_auto_teacher_device_stays_on_the_cpu_where_the_cuda_provider_does_not_start(tmp_path: Path) -> None:
    """onnxruntime-gpu lists CUDAExecutionProvider even where its CUDA libraries do not load.

    TEACHER_DEVICE=auto must then make the corpus on the CPU (nproc processes), not pick cuda
    and stop. Needs an onnxruntime-gpu for this Python without a GPU: RTVOICE_TEST_ORT_GPU names
    its folder (e.g. the cp311 wheel unpacked).
    """
    site = os.environ.get("RTVOICE_TEST_ORT_GPU")
    if not site or not (Path(site) / "onnxruntime" / "capi" / "libonnxruntime_providers_cuda.so").is_file():
        pytest.skip("RTVOICE_TEST_ORT_GPU does not name an unpacked onnxruntime-gpu")
    if not list((ROOT / "training" / "carry" / "wheels").glob("*.whl")):
        pytest.skip("training/carry/wheels is missing (bash training/fetch_espeak.sh)")
    first = _whole_carry(tmp_path)
    env = _env(tmp_path, first, SYNTH_ONLY="1", PYTHONPATH=site)
    del env["TEACHER_JOBS"]
    done = _stretch(env, "tacotron2", "1.5")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"teacher: Piper on cpu, {len(os.sched_getaffinity(0))} processes" in done.stdout, done.stdout[-3000:]
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["complete"] is True


@pytest.mark.timeout(600)
def test_the_corpus_grows_beside_the_training_and_both_trainers_take_it_in(tmp_path: Path) -> None:
    """TEACHER_BACKGROUND=1: the corpus goes on being made while both models train on it as it grows."""
    if not list((ROOT / "training" / "carry" / "wheels").glob("*.whl")):
        pytest.skip("training/carry/wheels is missing (bash training/fetch_espeak.sh)")
    first = _whole_carry(tmp_path, work=4000)  # about 0.7 s a text: the one background process is still
    # making the corpus when the trainers load it, and until a minute before they stop
    (tmp_path / "out").mkdir()
    flags = {"TEACHER_MINUTES": "0.0001", "TEACHER_BACKGROUND": "1", "TEACHER_BACKGROUND_JOBS": "1",
             "FOLLOW_SECONDS": "1", "DATA_ARGS": "--limit 60 --max-chars 60 --shard-size 2",
             "TACOTRON2_ARGS": "--preset tiny --batch-size 2 --log-every 2 --val-items 2",
             "WAVEGLOW_ARGS": "--preset tiny --batch-size 2 --segment-frames 8 --log-every 2"}
    done = _stretch(_env(tmp_path, first, **flags), "both", "2.0")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    at_start = int(log.split("training on ")[1].split(" of ")[0])
    assert f"corpus now {len(manifest['shards'])} of {manifest['planned']} shards" in log
    assert at_start < len(manifest["shards"])
    assert "[teacher]" in log and "the rest of the corpus on the CPU beside the training, 1 processes" in log
    for model in ("tacotron2", "waveglow"):
        lines = [line for line in log.splitlines() if line.startswith(f"[{model}]")]
        loaded = int(next(line for line in lines if " data: " in line).split(" data: ")[1].split(" utterances")[0])
        grew = [int(line.split("teacher: ")[1].split(" utterances")[0]) for line in lines
                if "more shards from the teacher" in line]
        assert grew and loaded < grew[0] and grew == sorted(grew), f"{model}: loaded {loaded}, grew {grew}"
        assert checkpoint.iteration_of(tmp_path / "run", model) > 0
