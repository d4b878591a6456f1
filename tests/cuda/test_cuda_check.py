"""check() and call(): one place turns cuda-python result tuples into CudaError (CPU only)."""

from __future__ import annotations

import pytest

from rtvoice.cuda import call, check
from rtvoice.cuda._check import _MissingCudart
from rtvoice.errors import BackendError, CudaError

runtime = pytest.importorskip("cuda.bindings.runtime")
OK = runtime.cudaError_t.cudaSuccess


def test_check_returns_none_one_value_or_tuple() -> None:
    assert check((OK,), "cudaFree") is None
    assert check((OK, 1234), "cudaMalloc") == 1234
    assert check((OK, 10, 20), "cudaMemGetInfo") == (10, 20)


def test_check_raises_cuda_error_with_enum_name_function_and_description() -> None:
    failure = runtime.cudaError_t.cudaErrorMemoryAllocation

    with pytest.raises(CudaError) as info:
        check((failure, None), "cudaMalloc")

    assert info.value.code == "cudaErrorMemoryAllocation"
    assert info.value.function == "cudaMalloc"
    assert info.value.backend == "cuda"
    assert "cudaMalloc failed with cudaErrorMemoryAllocation" in str(info.value)
    assert "out of memory" in str(info.value)  # CUDA's own description of the code
    assert isinstance(info.value, BackendError)


def test_call_names_the_function_it_called() -> None:
    # Device -1 never exists; with no driver at all the runtime says so instead.
    with pytest.raises(CudaError) as info:
        call(runtime.cudaSetDevice, -1)

    assert info.value.function == "cudaSetDevice"
    assert info.value.code in {
        "cudaErrorInvalidDevice",
        "cudaErrorInsufficientDriver",
        "cudaErrorNoDevice",
    }


def test_call_returns_the_value_on_success() -> None:
    version = call(runtime.cudaRuntimeGetVersion)  # A constant: needs no driver.

    assert version >= 13000


def test_missing_cuda_python_raises_backend_error_with_install_hint() -> None:
    missing = _MissingCudart(ImportError("No module named 'cuda'"))

    with pytest.raises(BackendError, match="pip install") as info:
        missing.cudaMalloc(16)

    assert info.value.backend == "cuda"
    assert not isinstance(info.value, CudaError)
