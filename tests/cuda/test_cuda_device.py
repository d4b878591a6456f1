"""Device queries: is_available() never raises on a machine without CUDA; GPU facts on one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtvoice import cuda
from rtvoice.cuda import _check, device
from rtvoice.errors import CudaError

REPO_ROOT = Path(__file__).resolve().parents[2]
requires_gpu = pytest.mark.skipif(not cuda.is_available(), reason="needs a CUDA GPU and driver")


def test_is_available_returns_a_bool_without_raising() -> None:
    assert isinstance(cuda.is_available(), bool)


def test_is_available_is_false_when_cuda_python_did_not_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_check, "IMPORT_ERROR", ImportError("No module named 'cuda'"))

    assert cuda.is_available() is False


def test_is_available_is_false_when_the_driver_answers_with_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_driver() -> int:
        raise CudaError("no driver", code="cudaErrorInsufficientDriver", function="x")

    monkeypatch.setattr(device, "device_count", no_driver)

    assert cuda.is_available() is False


def test_package_imports_and_reports_unavailable_without_cuda_python() -> None:
    # A fresh interpreter in which `import cuda.bindings` fails, as if not installed.
    script = (
        "import sys; sys.modules['cuda'] = None; sys.modules['cuda.bindings'] = None\n"
        "from rtvoice import cuda\n"
        "from rtvoice.errors import BackendError\n"
        "assert cuda.is_available() is False\n"
        "try:\n"
        "    cuda.DeviceBuffer(16)\n"
        "except BackendError as exc:\n"
        "    assert 'pip install' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('DeviceBuffer() without cuda-python did not raise')\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.gpu
@requires_gpu
def test_device_info_and_memory() -> None:
    assert cuda.device_count() >= 1
    info = cuda.get_device_info(0)
    free, total = cuda.mem_get_info()

    assert info.index == 0
    assert info.name
    assert info.compute_capability >= (7, 0)
    assert info.total_memory > 0
    assert 0 < free <= total
    assert cuda.used_bytes() == pytest.approx(total - free, abs=64 << 20)


@pytest.mark.gpu
@requires_gpu
def test_set_device_accepts_an_existing_device_and_rejects_a_missing_one() -> None:
    cuda.set_device(0)

    with pytest.raises(CudaError) as info:
        cuda.set_device(cuda.device_count())

    assert info.value.code == "cudaErrorInvalidDevice"
    assert info.value.function == "cudaSetDevice"
