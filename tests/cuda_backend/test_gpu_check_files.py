"""What tools/gpu/cuda_backend_check.sh leaves in $OUT on a full (non-dry) run.

Why: the device call brings back at most 8 files from $OUT; a 9th is left out, and with it
a stage's results. Every stage runs here on the CPU (each ``cuda_backend_check.py`` stage with
``--dry-run`` added by a wrapper standing in for python3; pytest runs the GPU tests, which skip
without a GPU), so the files counted are those of the script's real, non-dry path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVICE_FILES_BACK = 8  # the device tool's limit on files brought back from $OUT


def run_check(tmp_path: Path, **env: str) -> tuple[Path, str]:
    """tools/gpu/cuda_backend_check.sh on its real (non-dry) path, every stage with ``--dry-run``
    added by a wrapper standing in for python3, ``env`` over ours; its $OUT and log.

    Fails unless the script ran to its end.
    """
    wrapper = tmp_path / "python3"
    wrapper.write_text('#!/bin/sh\ncase "$1" in tools/gpu/cuda_backend_check.py) exec "$REAL_PYTHON" "$@" --dry-run;; '
                       'esac\nexec "$REAL_PYTHON" "$@"\n')
    wrapper.chmod(0o755)
    out = tmp_path / "out"
    full = {**os.environ, "OUT": str(out), "PYTHON": str(wrapper), "REAL_PYTHON": sys.executable, **env}
    for name in ("SWEEP", "ENGINE_BENCH", "STAGES", "TABLE_ONLY"):  # only what the test asks for
        if name not in env:
            full.pop(name, None)
    done = subprocess.run(["bash", str(ROOT / "tools" / "gpu" / "cuda_backend_check.sh")], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=280)
    log = (out / "cuda_check.log").read_text()
    assert done.returncode == 0 and "finished" in log, log[-3000:] + done.stderr[-2000:]
    return out, log


@pytest.mark.timeout(300)
def test_a_full_gpu_check_run_leaves_no_more_files_than_the_device_brings_back(tmp_path: Path) -> None:
    # The sweep stage runs and writes sweep.json, but starts no shape: its 14 NVRTC compiles (about
    # 40 s of this test) add no file, and test_kernel_shapes.py compiles every shape already.
    out, log = run_check(tmp_path, SWEEP_BUDGET_S="0")
    assert "== pytest" in log and "== sweep" in log and "== profile" in log  # the non-dry path, every stage
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(files) <= DEVICE_FILES_BACK, files
    for stage in ("env", "voices", "parity", "bench", "sweep", "engine", "summary"):
        assert f"{stage}.json" in files
    sweep = json.loads((out / "sweep.json").read_text())
    assert "finished" in sweep and sweep["us_per_step"], sweep
    assert all(str(row).startswith("skipped") for row in sweep["us_per_step"].values())  # SWEEP_BUDGET_S=0
    profile = json.loads((out / "engine.json").read_text())["profile"]  # the profile stage's file is engine.json
    assert "finished" in profile and not [k for k in profile if k.endswith("error")], profile


@pytest.mark.timeout(300)
def test_the_table_run_takes_the_sweeps_place_among_the_files(tmp_path: Path) -> None:
    """ENGINE_BENCH=1 adds table.json (issue 26's table) and skips the sweep, so 8 files still come back.

    Its table stage runs the dry plan (the tiny voice on the CPU) through the wrapper; the
    summary holds the table too, in case a file were left out.
    """
    pytest.importorskip("torch")
    pytest.importorskip("onnxconverter_common")
    out, log = run_check(tmp_path, ENGINE_BENCH="1")
    assert "== table" in log and "== sweep" not in log and "== pytest" in log
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(files) <= DEVICE_FILES_BACK, files
    assert "table.json" in files and "sweep.json" not in files
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["table"]["rows"]) == {"cuda", "onnxruntime", "cuda_fp16", "torch_fp16"}, summary["table"]


@pytest.mark.timeout(300)
def test_stages_and_table_only_run_a_short_call_of_a_few_rows(tmp_path: Path) -> None:
    """STAGES picks the check's stages and TABLE_ONLY the table's rows: the short call that a
    small device budget holds (e.g. the fp16 rows alone), each skip said in the log or the table."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxconverter_common")
    out, log = run_check(tmp_path, ENGINE_BENCH="1", STAGES="env table summary",
                         TABLE_ONLY="build,cuda,fp16_voice,cuda_fp16")
    for skipped in ("voices", "parity", "bench", "engine", "profile"):
        assert f"== {skipped}: not in STAGES" in log
    assert "== pytest" not in log and "== env (limit" in log and "== table (limit" in log
    assert sorted(p.name for p in out.iterdir()) == ["cuda_check.log", "env.json", "summary.json", "table.json"]
    table = json.loads((out / "table.json").read_text())
    for name in ("cuda", "cuda_fp16"):
        assert table[name]["rc"] == 0, table[name]
    for name in ("onnxruntime", "torch_fp16", "cuda_streams", "onnxruntime_streams", "cuda_fp16_streams"):
        assert table[name] == "skipped: not in TABLE_ONLY"
    assert set(table["rows"]) == {"cuda", "cuda_fp16"}
