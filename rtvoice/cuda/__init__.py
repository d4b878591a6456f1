"""The only package of rtvoice that imports cuda-python (``cuda.bindings``).

It owns every CUDA call: :func:`call`/:func:`check` turn failures into
:class:`~rtvoice.errors.CudaError`; :class:`DeviceBuffer`, :class:`HostBuffer`,
:class:`Stream` and :class:`Event` own one CUDA resource each (``close()`` is
idempotent, ``with`` closes, ``__del__`` only warns about a leak). Other packages
get raw addresses and stream handles from :attr:`DeviceBuffer.ptr` and
:attr:`Stream.handle`, and never free them.

Threads: every object here is used only on the thread that created it (the
pipeline's GPU worker thread). Importing this package works without cuda-python;
:func:`is_available` says whether CUDA can be used.
"""

from rtvoice.cuda._check import call, check
from rtvoice.cuda.capture_guard import CaptureGuard, capture_guard
from rtvoice.cuda.device import (
    DeviceInfo,
    device_count,
    get_device_info,
    is_available,
    mem_get_info,
    set_device,
    used_bytes,
)
from rtvoice.cuda.graph import CudaGraph
from rtvoice.cuda.memory import DeviceBuffer, HostBuffer, copy_2d_async, copy_async, memset_async
from rtvoice.cuda.stream import Event, Stream

__all__ = [
    "CaptureGuard",
    "CudaGraph",
    "capture_guard",
    "DeviceBuffer",
    "DeviceInfo",
    "Event",
    "HostBuffer",
    "Stream",
    "call",
    "check",
    "copy_2d_async",
    "copy_async",
    "device_count",
    "get_device_info",
    "is_available",
    "mem_get_info",
    "memset_async",
    "set_device",
    "used_bytes",
]
