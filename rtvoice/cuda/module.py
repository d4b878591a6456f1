"""Loading a cubin and launching its kernels (the CUDA driver API, through cuda-python).

A :class:`CudaModule` owns one loaded module (``cuModuleLoadData``) in the current
device's primary context, the one the runtime API (:func:`~rtvoice.cuda.set_device`)
uses, so its kernels run on our :class:`~rtvoice.cuda.Stream` handles and read our
:class:`~rtvoice.cuda.DeviceBuffer` addresses. A launch only enqueues, so launches can be
captured in a :class:`~rtvoice.cuda.CudaGraph`.

Kernel arguments are one ``ctypes.Structure`` passed by value: its layout must match the
kernel's C struct (the caller's test compares the two). Threads: as the rest of this
package, a module is used on the thread that loaded it.
"""

from __future__ import annotations

import ctypes
from typing import Any

from rtvoice.cuda._check import Owned, call, cudart
from rtvoice.errors import BackendError, CudaError

__all__ = ["CudaModule", "driver_call"]


def _driver() -> Any:
    try:
        from cuda.bindings import driver
    except ImportError as exc:
        raise BackendError(f"CUDA is unavailable: cuda-python is not installed ({exc}).", backend="cuda") from exc
    return driver


def driver_call(fn: Any, *args: Any) -> Any:
    """Call a ``cuda.bindings.driver`` function; raise :class:`CudaError` unless it returns CUDA_SUCCESS."""
    driver = _driver()
    err, *values = fn(*args)
    if err != driver.CUresult.CUDA_SUCCESS:
        code = getattr(err, "name", str(err))
        status, text = driver.cuGetErrorString(err)
        what = bytes(text).decode(errors="replace") if status == driver.CUresult.CUDA_SUCCESS and text else ""
        raise CudaError(f"{fn.__name__} failed with {code}: {what}", code=code, function=fn.__name__)
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


class CudaModule(Owned):
    """A loaded cubin and its kernels by name."""

    def __init__(self, cubin: bytes, kernels: tuple[str, ...]) -> None:
        """Load ``cubin`` into the current device's context and look up ``kernels``.

        Raises:
            CudaError: The cubin does not fit this GPU (``CUDA_ERROR_NO_BINARY_FOR_GPU``) or a
                kernel is missing.
        """
        driver = _driver()
        call(cudart.cudaFree, 0)  # makes sure the runtime's primary context exists and is current
        self._cubin = cubin  # the driver may read the image lazily: keep it alive
        self._module: Any = driver_call(driver.cuModuleLoadData, cubin)
        self._closed = False
        try:
            self._functions = {name: driver_call(driver.cuModuleGetFunction, self._module, name.encode())
                               for name in kernels}
        except BaseException:
            self.close()
            raise

    def max_blocks_per_sm(self, kernel: str, threads: int, smem: int) -> int:
        """How many blocks of ``kernel`` fit on one SM at once (occupancy)."""
        driver = _driver()
        return int(driver_call(driver.cuOccupancyMaxActiveBlocksPerMultiprocessor, self._function(kernel),
                               threads, smem))

    def launch(self, kernel: str, grid: int, threads: int, smem: int, stream: int, params: ctypes.Structure,
               *, cooperative: bool = False) -> None:
        """Enqueue ``kernel<<<grid, threads, smem, stream>>>(params)``; returns at once.

        ``cooperative`` launches with CUDA's guarantee that every block is resident at once
        (``cuLaunchCooperativeKernel``), which a grid-wide barrier needs; it fails instead of
        hanging when the grid is too large.
        """
        driver = _driver()
        self._require_open()
        pointers = (ctypes.c_void_p * 1)(ctypes.addressof(params))
        handle = driver.CUstream(stream)
        if cooperative:
            driver_call(driver.cuLaunchCooperativeKernel, self._function(kernel), grid, 1, 1, threads, 1, 1,
                        smem, handle, ctypes.addressof(pointers))
        else:
            driver_call(driver.cuLaunchKernel, self._function(kernel), grid, 1, 1, threads, 1, 1, smem, handle,
                        ctypes.addressof(pointers), 0)

    def _function(self, kernel: str) -> Any:
        self._require_open()
        try:
            return self._functions[kernel]
        except KeyError:
            raise BackendError(f"The module has no kernel {kernel!r}.", backend="cuda") from None

    def _release(self) -> None:
        module, self._module = self._module, None
        self._functions = {}
        if module is not None:
            driver_call(_driver().cuModuleUnload, module)

    def __repr__(self) -> str:
        return f"CudaModule({'closed' if self._closed else 'open'})"
