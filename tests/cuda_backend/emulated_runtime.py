"""The CUDA runtime calls of rtvoice.cuda's buffers and streams, done at once on host memory.

So code written against rtvoice.cuda (DeviceBuffer, Stream, copy_async) runs on the CPU:
"device" memory is host memory and every asynchronous call completes before it returns.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

import pytest

runtime = pytest.importorskip("cuda.bindings.runtime")
OK = runtime.cudaError_t.cudaSuccess


class EmulatedRuntime:
    cudaError_t = runtime.cudaError_t
    cudaMemcpyKind = runtime.cudaMemcpyKind
    cudaStreamNonBlocking = runtime.cudaStreamNonBlocking
    cudaEventBlockingSync = runtime.cudaEventBlockingSync
    cudaEventDisableTiming = runtime.cudaEventDisableTiming
    cudaHostAllocDefault = runtime.cudaHostAllocDefault

    def __init__(self) -> None:
        self.blocks: dict[int, Any] = {}
        self._next = 0x1000

    def cudaMalloc(self, nbytes: int) -> tuple[Any, int]:
        block = ctypes.create_string_buffer(nbytes)
        self.blocks[ctypes.addressof(block)] = block
        return (OK, ctypes.addressof(block))

    def cudaFree(self, ptr: int) -> tuple[Any]:
        del self.blocks[int(ptr)]
        return (OK,)

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: Any, stream: Any) -> tuple[Any]:
        ctypes.memmove(dst, src, nbytes)
        return (OK,)

    def cudaMemsetAsync(self, ptr: int, value: int, nbytes: int, stream: Any) -> tuple[Any]:
        ctypes.memset(ptr, value, nbytes)
        return (OK,)

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[Any, Any]:
        self._next += 1
        return (OK, runtime.cudaStream_t(self._next))

    def _nothing(self, *args: Any) -> tuple[Any]:
        return (OK,)

    cudaStreamDestroy = cudaStreamSynchronize = cudaSetDevice = _nothing


def emulate(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedRuntime]:
    """Point rtvoice.cuda's buffer, stream and device modules at an emulated runtime."""
    from rtvoice.cuda import device, memory, stream

    fake = EmulatedRuntime()
    for module in (memory, stream, device):
        monkeypatch.setattr(module, "cudart", fake)
    yield fake
