"""Device memory and pinned host memory, grow-only.

Ownership and threads: a buffer owns its memory from construction to :meth:`close`,
and is used only on the thread that created it (in rtvoice, the pipeline's GPU worker
thread). Buffers are not thread-safe. :attr:`ptr` lends the address to TensorRT or
ONNX Runtime; they must not free it, and must not use it after :meth:`~_Allocation.ensure`
grew the buffer or :meth:`~_Allocation.close` freed it.

Buffers grow only (as Polygraphy's ``DeviceArray.resize``): allocate once at the profile
maximum or on first need, and never inside the per-step decoder loop. Growing discards
the old contents and moves :attr:`ptr`.
"""

from __future__ import annotations

import ctypes
import math
from abc import abstractmethod
from typing import Any

import numpy as np
import numpy.typing as npt

from rtvoice.cuda._check import Owned, call, cudart
from rtvoice.cuda.stream import Stream

__all__ = ["DeviceBuffer", "HostBuffer", "copy_2d_async", "copy_async", "memset_async"]


class _Allocation(Owned):
    """A grow-only allocation: ``ptr`` and ``nbytes``, ``0`` and ``0`` when empty."""

    def __init__(self, nbytes: int = 0) -> None:
        _check_count("nbytes", nbytes)
        self._ptr = self._allocate(nbytes) if nbytes else 0
        self._nbytes = nbytes
        self._closed = False

    @property
    def ptr(self) -> int:
        """The address of the memory (``0`` while nothing is allocated)."""
        self._require_open()
        return self._ptr

    @property
    def nbytes(self) -> int:
        """The allocated size in bytes; only :meth:`ensure` changes it, and only upward."""
        self._require_open()
        return self._nbytes

    def ensure(self, nbytes: int) -> bool:
        """Make the buffer hold at least ``nbytes``, reallocating only if it is smaller.

        Growing frees the old memory before allocating the new one (to keep the peak
        low), discards the contents and changes :attr:`ptr`. No queued GPU work may still
        use the old memory. If the new allocation fails, the buffer is left empty.

        Args:
            nbytes: The size needed, in bytes.

        Returns:
            ``True`` if the buffer was reallocated, ``False`` if it was big enough.

        Raises:
            CudaError: The allocation failed (``cudaErrorMemoryAllocation``).
        """
        self._require_open()
        _check_count("nbytes", nbytes)
        if nbytes <= self._nbytes:
            return False
        self._release()
        self._ptr = self._allocate(nbytes)
        self._nbytes = nbytes
        return True

    def _release(self) -> None:
        ptr, self._ptr, self._nbytes = self._ptr, 0, 0
        if ptr:
            self._free(ptr)

    @abstractmethod
    def _allocate(self, nbytes: int) -> int: ...

    @abstractmethod
    def _free(self, ptr: int) -> None: ...

    def __repr__(self) -> str:
        """Show address and size; makes no CUDA call (``__del__`` uses it)."""
        state = "closed" if self._closed else f"ptr=0x{self._ptr:x}, nbytes={self._nbytes}"
        return f"{type(self).__name__}({state})"


class HostBuffer(_Allocation):
    """Page-locked (pinned) host memory, the fast and truly asynchronous copy partner.

    Args:
        nbytes: Bytes to allocate now; ``0`` allocates on the first :meth:`ensure`.
    """

    def array(self, dtype: npt.DTypeLike, shape: int | tuple[int, ...]) -> npt.NDArray[Any]:
        """Return a numpy view of the first bytes of this buffer.

        The view is memory this buffer owns and reuses: it is only valid until the
        buffer grows or closes (reading it after that may crash the process), and its
        contents change with every copy into the buffer. Copy it (``.copy()``) to keep it.

        Args:
            dtype: The element type, for example ``np.float32``.
            shape: The shape of the view; it must fit in :attr:`nbytes`.

        Raises:
            ValueError: The view would not fit in the buffer.
        """
        self._require_open()
        dt = np.dtype(dtype)
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        count = math.prod(dims)
        size = count * dt.itemsize
        if size > self._nbytes:
            raise ValueError(
                f"A {dt} array of shape {dims} does not fit in this HostBuffer. "
                f"Note: it needs {size} bytes, the buffer has {self._nbytes}. "
                "Hint: call ensure() first."
            )
        if size == 0:
            return np.empty(dims, dtype=dt)
        raw = (ctypes.c_byte * size).from_address(self._ptr)
        return np.frombuffer(memoryview(raw), dtype=dt, count=count).reshape(dims)

    def _allocate(self, nbytes: int) -> int:
        return int(call(cudart.cudaHostAlloc, nbytes, cudart.cudaHostAllocDefault))

    def _free(self, ptr: int) -> None:
        call(cudart.cudaFreeHost, ptr)


HostMemory = HostBuffer | npt.NDArray[Any]
"""A copy partner on the host: pinned memory, or a (pageable) C-contiguous numpy array."""


class DeviceBuffer(_Allocation):
    """Device (GPU) memory with asynchronous copies and memset on a :class:`Stream`.

    Every copy is queued on ``stream`` and returns at once; the memory on both sides
    must stay alive and untouched until the stream (or an event recorded after the copy)
    has been synchronized. For a numpy array, that means keeping a reference to it.
    Copies from or to ordinary numpy arrays (pageable memory) are staged by CUDA and may
    block the caller; use a :class:`HostBuffer` where it matters.

    In every copy, ``nbytes`` defaults to the size of the other side (the numpy array,
    the :class:`HostBuffer` or the source :class:`DeviceBuffer`) and must fit in both;
    a copy of zero bytes queues nothing.

    Args:
        nbytes: Bytes to allocate now; ``0`` allocates on the first :meth:`ensure`.
    """

    def copy_from_host(self, src: HostMemory, stream: Stream, nbytes: int | None = None) -> None:
        """Queue a copy of ``nbytes`` from the start of ``src`` to the start of this buffer."""
        ptr, size = _host_memory(src, writable=False)
        count = self._fit(size if nbytes is None else nbytes, size)
        kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        if count:  # Zero bytes queue nothing (an empty buffer's ptr is 0).
            call(cudart.cudaMemcpyAsync, self._ptr, ptr, count, kind, stream.handle)

    def copy_to_host(self, dst: HostMemory, stream: Stream, nbytes: int | None = None) -> None:
        """Queue a copy of ``nbytes`` from the start of this buffer to the start of ``dst``."""
        ptr, size = _host_memory(dst, writable=True)
        count = self._fit(size if nbytes is None else nbytes, size)
        kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        if count:
            call(cudart.cudaMemcpyAsync, ptr, self._ptr, count, kind, stream.handle)

    def copy_from_device(self, src: DeviceBuffer, stream: Stream, nbytes: int | None = None) -> None:
        """Queue a copy of ``nbytes`` from the start of ``src`` to the start of this buffer."""
        size = src.nbytes
        count = self._fit(size if nbytes is None else nbytes, size)
        kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        if count:
            call(cudart.cudaMemcpyAsync, self._ptr, src.ptr, count, kind, stream.handle)

    def memset(self, value: int, stream: Stream, nbytes: int | None = None) -> None:
        """Queue setting the first ``nbytes`` (default: all) to the byte ``value``."""
        count = self._fit(self.nbytes if nbytes is None else nbytes, self.nbytes)
        if not 0 <= value <= 255:
            raise ValueError(f"memset() sets bytes: value must be 0..255, not {value}.")
        if count:
            call(cudart.cudaMemsetAsync, self._ptr, value, count, stream.handle)

    def _fit(self, nbytes: int, other: int) -> int:
        """Check that ``nbytes`` fits in this buffer and in the other side; return it."""
        self._require_open()
        _check_count("nbytes", nbytes)
        if nbytes > min(self._nbytes, other):
            raise ValueError(
                f"Cannot copy {nbytes} bytes. Note: this DeviceBuffer has {self._nbytes} "
                f"bytes, the other side {other}. Hint: ensure() the buffer first."
            )
        return nbytes

    def _allocate(self, nbytes: int) -> int:
        return int(call(cudart.cudaMalloc, nbytes))

    def _free(self, ptr: int) -> None:
        call(cudart.cudaFree, ptr)


def _host_memory(memory: HostMemory, *, writable: bool) -> tuple[int, int]:
    """Return ``(address, nbytes)`` of a host copy partner, checking it is usable."""
    if isinstance(memory, HostBuffer):
        return memory.ptr, memory.nbytes
    if not memory.flags.c_contiguous:
        raise ValueError("Copies need a C-contiguous array. Hint: np.ascontiguousarray().")
    if writable and not memory.flags.writeable:
        raise ValueError("Cannot copy into a read-only array.")
    return int(memory.ctypes.data), int(memory.nbytes)


def _check_count(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, not {value}.")


def copy_async(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    """Queue a copy of ``nbytes`` between two raw addresses (device or pinned host).

    The addresses may be at any offset into a buffer; unified addressing infers the
    direction. Zero bytes is a no-op.

    For copies at offsets, which the whole-buffer methods above cannot express: a decoder
    frame, a slice of the gate buffer, a window of mel.
    """
    _check_count("nbytes", nbytes)
    if nbytes:
        call(cudart.cudaMemcpyAsync, dst, src, nbytes, cudart.cudaMemcpyKind.cudaMemcpyDefault, stream.handle)


def copy_2d_async(dst: int, dst_pitch: int, src: int, src_pitch: int, width: int, height: int,
                  stream: Stream) -> None:
    """Queue a strided copy of ``height`` rows of ``width`` bytes in one call.

    One call instead of one copy per row, e.g. for a column window of a (channels, frames)
    matrix.
    """
    if width and height:
        call(cudart.cudaMemcpy2DAsync, dst, dst_pitch, src, src_pitch, width, height,
             cudart.cudaMemcpyKind.cudaMemcpyDefault, stream.handle)


def memset_async(ptr: int, value: int, nbytes: int, stream: Stream) -> None:
    """Queue setting ``nbytes`` bytes at a raw device address (any offset) to the byte ``value``.

    For one row of a batched buffer, which :meth:`DeviceBuffer.memset` (whole buffer) cannot express.
    """
    _check_count("nbytes", nbytes)
    if not 0 <= value <= 255:
        raise ValueError(f"memset_async() sets bytes: value must be 0..255, not {value}.")
    if nbytes:
        call(cudart.cudaMemsetAsync, ptr, value, nbytes, stream.handle)
