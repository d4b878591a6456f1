"""The CUDA runtime calls of rtvoice.cuda's buffers and streams, done at once on host memory.

So code written against rtvoice.cuda (DeviceBuffer, HostBuffer, Stream, Event, copy_async)
runs on the CPU: "device" memory is host memory and every asynchronous call completes before
it returns. Shared by tests/cuda_backend and tests/gpu (test_gpu_vocoder_emulated.py).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

import pytest

runtime = pytest.importorskip("cuda.bindings.runtime")
OK = runtime.cudaError_t.cudaSuccess


class EmulatedRuntime:
    """The calls rtvoice.cuda makes, done synchronously on host memory."""

    cudaError_t = runtime.cudaError_t
    cudaMemcpyKind = runtime.cudaMemcpyKind
    cudaStreamNonBlocking = runtime.cudaStreamNonBlocking
    cudaEventBlockingSync = runtime.cudaEventBlockingSync
    cudaEventDisableTiming = runtime.cudaEventDisableTiming
    cudaEventWaitDefault = runtime.cudaEventWaitDefault
    cudaHostAllocDefault = runtime.cudaHostAllocDefault

    def __init__(self) -> None:
        self.blocks: dict[int, ctypes.Array[ctypes.c_char]] = {}
        self._next = 0x1000

    def _alloc(self, nbytes: int) -> tuple[Any, int]:
        block = ctypes.create_string_buffer(nbytes)
        self.blocks[ctypes.addressof(block)] = block
        return (OK, ctypes.addressof(block))

    def _free(self, ptr: int) -> tuple[Any]:
        del self.blocks[int(ptr)]
        return (OK,)

    def _handle(self) -> int:
        self._next += 1
        return self._next

    def cudaMalloc(self, nbytes: int) -> tuple[Any, int]:
        return self._alloc(nbytes)

    def cudaHostAlloc(self, nbytes: int, flags: int) -> tuple[Any, int]:
        return self._alloc(nbytes)

    def cudaFree(self, ptr: int) -> tuple[Any]:
        return self._free(ptr)

    def cudaFreeHost(self, ptr: int) -> tuple[Any]:
        return self._free(ptr)

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: Any, stream: Any) -> tuple[Any]:
        ctypes.memmove(dst, src, nbytes)
        return (OK,)

    def cudaMemcpy2DAsync(self, dst: int, dpitch: int, src: int, spitch: int, width: int, height: int,
                          kind: Any, stream: Any) -> tuple[Any]:
        for row in range(height):
            ctypes.memmove(dst + row * dpitch, src + row * spitch, width)
        return (OK,)

    def cudaMemsetAsync(self, ptr: int, value: int, nbytes: int, stream: Any) -> tuple[Any]:
        ctypes.memset(ptr, value, nbytes)
        return (OK,)

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[Any, Any]:
        return (OK, runtime.cudaStream_t(self._handle()))

    def cudaEventCreateWithFlags(self, flags: int) -> tuple[Any, Any]:
        return (OK, runtime.cudaEvent_t(self._handle()))

    def cudaSetDevice(self, index: int) -> tuple[Any]:
        return (OK,)

    def _nothing(self, *args: Any) -> tuple[Any]:
        return (OK,)

    cudaStreamDestroy = cudaEventDestroy = cudaStreamSynchronize = cudaStreamWaitEvent = _nothing
    cudaEventRecord = cudaEventSynchronize = _nothing


def emulate(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedRuntime]:
    """Point rtvoice.cuda's buffer, stream and device modules at an emulated runtime."""
    from rtvoice.cuda import device, memory, stream

    fake = EmulatedRuntime()
    for module in (memory, stream, device):
        monkeypatch.setattr(module, "cudart", fake)
    yield fake
