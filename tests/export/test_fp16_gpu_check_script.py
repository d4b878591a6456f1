"""tools/gpu/fp16_vocoder_check.py, the one GPU call for fp16 graphs, runs end to end on the CPU (--dry-run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxconverter_common")
ROOT = Path(__file__).parents[2]


def test_fp16_gpu_check_dry_run_writes_every_figure(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu" / "fp16_vocoder_check.py"), "--dry-run"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "OUT": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "fp16_vocoder.json").read_text())
    (entry,) = report["voices"].values()
    assert "error" not in entry, entry
    for frames in ("128_frames", "640_frames"):
        w = entry["waveglow"][frames]
        assert w["fp16_finite"] and 50.0 < w["fp16_snr_db"] < 120.0 and w["fp32_ms_per_audio_s"] > 0
    assert entry["voice"]["fp16_streamed_vs_whole_snr_db"] > 60.0  # issue 26: seams hold in fp16 too
    assert entry["voice"]["backend"] == "onnxruntime on cpu"
