"""training/stretch.sh and land.sh, run for real on the CPU with tiny models and data.

Two WaveGlow variants train at once from the same start, each sending back its own files,
and land.sh lands the one that is kept.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
STRETCH = ROOT / "training" / "stretch.sh"
LAND = ROOT / "training" / "land.sh"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "RUN": str(tmp_path / "run"), "OUT": str(tmp_path / "out"),
            "DATA": str(tmp_path / "data"), "CHECKPOINTS": str(tmp_path / "committed"),
            "DATA_ARGS": "--limit 24 --max-chars 40", **extra}


def _stretch(env: dict[str, str], *args: str, timeout: int = 540) -> subprocess.CompletedProcess[str]:
    """Run training/stretch.sh with ``args`` (runs, minutes, flags) in ``env``, its output captured."""
    return subprocess.run(["bash", str(STRETCH), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_stretch_rejects_bad_run_lists(tmp_path: Path) -> None:
    for spec, message in (("wavenet", "no model wavenet"), ("waveglow:Bad!", "variant names"),
                          ("waveglow waveglow", "named twice")):
        done = _stretch(_env(tmp_path), spec, "1", timeout=60)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    done = _stretch(_env(tmp_path), "both", "1", "--lr", "1", timeout=60)
    assert done.returncode == 2 and "MODEL_ARGS" in done.stderr


@pytest.mark.timeout(600)
def test_stretch_trains_two_variants_side_by_side_and_land_keeps_one(tmp_path: Path) -> None:
    if not (ROOT / "training" / "carry" / "espeak.tar.xz").exists():
        pytest.skip("training/carry/ is missing (bash training/fetch_espeak.sh)")
    (tmp_path / "committed").mkdir()
    (tmp_path / "out").mkdir()
    env = _env(tmp_path, WAVEGLOW_ARGS="--preset tiny --batch-size 2 --segment-frames 8 --threads 1 --log-every 1",
               WAVEGLOW_STFT_ARGS="--stft-weight 10 --stft-items 2")
    done = _stretch(env, "waveglow waveglow:stft", "0.1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("[waveglow] ") and " it " in line for line in lines)
    assert any(line.startswith("[waveglow:stft] ") and " stft " in line for line in lines)  # its own flags
    assert not any(line.startswith("[waveglow] ") and " stft " in line for line in lines)
    out = tmp_path / "out"
    for folder in (out, out / "stft"):
        assert {"waveglow.pt", "waveglow.optimizer.pt", "report.tar"} <= {p.name for p in folder.iterdir()}
        with tarfile.open(folder / "report.tar") as tar:
            assert "waveglow.log" in tar.getnames()
    assert len([p for p in out.rglob("*") if p.is_file()]) <= 8  # what the device sends back

    kept = tmp_path / "kept"
    kept.mkdir()
    subprocess.run(["bash", str(LAND), str(out / "stft"), str(kept)], check=True, capture_output=True, timeout=60)
    assert (kept / "waveglow.pt").read_bytes() == (out / "stft" / "waveglow.pt").read_bytes()
    assert "stft" in (kept / "waveglow.log").read_text()
    assert os.access(kept / "waveglow.pt", os.W_OK)


@pytest.mark.timeout(600)
def test_stretch_gta_trains_waveglow_on_the_newest_tacotron2_mels(tmp_path: Path) -> None:
    """GTA=1: the mels of the newest Tacotron 2 (committed or on the machine) become WaveGlow's data."""
    if not (ROOT / "training" / "carry" / "espeak.tar.xz").exists():
        pytest.skip("training/carry/ is missing (bash training/fetch_espeak.sh)")
    import json

    (tmp_path / "committed").mkdir()
    (tmp_path / "out").mkdir()
    done = _stretch(_env(tmp_path, GTA="1"), "waveglow", "0.1", timeout=120)
    assert done.returncode == 2 and "needs a tacotron2 checkpoint" in done.stderr, done.stderr
    first = _env(tmp_path, TACOTRON2_ARGS="--preset tiny --batch-size 4 --threads 1")
    done = _stretch(first, "tacotron2", "0.1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    env = _env(tmp_path, GTA="1", GTA_BATCH="8",
               WAVEGLOW_ARGS="--preset tiny --batch-size 2 --segment-frames 8 --threads 1 --log-every 1")
    done = _stretch(env, "waveglow", "0.1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    gta = tmp_path / "data-gta"
    settings = json.loads((gta / "manifest.json").read_text())["settings"]
    from training.checkpoint import load

    assert settings["gta"]["tacotron2_iteration"] == load(tmp_path / "run" / "tacotron2.pt")["iteration"]
    assert load(tmp_path / "out" / "waveglow.pt")["config"]["training"]["data"] == str(gta)


@pytest.mark.timeout(600)
def test_stretch_new_variant_branches_off_the_warm_machines_run_and_returns_within_the_limit(
        tmp_path: Path) -> None:
    """A variant first named on a warm machine starts from the calls before, not from scratch.

    And when what goes back would pass the device's limit, optimizer states stay behind, weights do not.
    """
    if not (ROOT / "training" / "carry" / "espeak.tar.xz").exists():
        pytest.skip("training/carry/ is missing (bash training/fetch_espeak.sh)")
    from training.checkpoint import load

    (tmp_path / "committed").mkdir()
    (tmp_path / "out").mkdir()
    env = _env(tmp_path, TACOTRON2_ARGS="--preset tiny --batch-size 4 --threads 1")
    done = _stretch(env, "tacotron2", "0.1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    first = load(tmp_path / "run" / "tacotron2.pt")["iteration"]
    assert first > 0

    done = _stretch({**env, "OUT_LIMIT_BYTES": "1"}, "tacotron2:b", "0.1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"resuming {tmp_path / 'run' / 'b' / 'tacotron2.pt'} at iteration {first}," in done.stdout
    back = tmp_path / "out" / "b"
    assert load(back / "tacotron2.pt")["iteration"] > first
    assert not (back / "tacotron2.optimizer.pt").exists()
    assert (tmp_path / "run" / "b" / "tacotron2.optimizer.pt").exists()  # still on the machine
    assert "warning: left" in done.stdout and "still holds" in done.stdout
