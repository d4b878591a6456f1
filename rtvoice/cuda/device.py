"""Which GPUs there are, how much memory they have, and which one this thread uses.

Threads: CUDA's current device is per host thread. Call :func:`set_device` on the
pipeline's GPU worker thread before that thread creates streams or buffers; the other
functions may be called from any thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rtvoice.cuda import _check
from rtvoice.cuda._check import call, cudart
from rtvoice.errors import CudaError

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceInfo:
    """What rtvoice needs to know about one GPU."""

    index: int
    """The CUDA device ordinal, as :func:`set_device` takes it."""
    name: str
    """The product name, for example ``"NVIDIA H100 80GB HBM3"``."""
    compute_capability: tuple[int, int]
    """``(major, minor)``, for example ``(9, 0)`` on an H100."""
    total_memory: int
    """Total device memory in bytes."""


def is_available() -> bool:
    """Return whether CUDA can be used: cuda-python imports and at least one GPU answers.

    Never raises for the expected reasons (cuda-python not installed, no driver, a driver
    too old for CUDA 13, no GPU); it logs the reason at DEBUG level and returns ``False``.
    """
    if _check.IMPORT_ERROR is not None:
        _log.debug("CUDA unavailable: cuda-python not importable: %s", _check.IMPORT_ERROR)
        return False
    try:
        count = device_count()
    except CudaError as exc:
        _log.debug("CUDA unavailable: %s", exc)
        return False
    return count > 0


def device_count() -> int:
    """Return the number of CUDA devices.

    Raises:
        CudaError: No usable driver (``cudaErrorInsufficientDriver``) or no device
            (``cudaErrorNoDevice``).
        BackendError: cuda-python is not installed.
    """
    return int(call(cudart.cudaGetDeviceCount))


def get_device_info(index: int = 0) -> DeviceInfo:
    """Describe device ``index``.

    Raises:
        CudaError: ``cudaErrorInvalidDevice`` if there is no such device.
    """
    prop = call(cudart.cudaGetDeviceProperties, index)
    raw = prop.name  # bytes (a C char[256]) in cuda-bindings 13; str tolerated.
    name = raw.split(b"\0", 1)[0].decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return DeviceInfo(
        index=index,
        name=name,
        compute_capability=(int(prop.major), int(prop.minor)),
        total_memory=int(prop.totalGlobalMem),
    )


def mem_get_info() -> tuple[int, int]:
    """Return ``(free, total)`` bytes of the calling thread's current device.

    ``free`` counts every process on the device. The first call on a device creates
    its CUDA context, which itself takes a few hundred MiB.
    """
    free, total = call(cudart.cudaMemGetInfo)
    return int(free), int(total)


def used_bytes() -> int:
    """Return the bytes in use on the current device (``total - free``), for leak tests.

    Compare two readings taken after the CUDA context exists; the number includes
    other processes and CUDA's own allocations.
    """
    free, total = mem_get_info()
    return total - free


def set_device(index: int) -> None:
    """Make device ``index`` current for the calling thread.

    Raises:
        CudaError: ``cudaErrorInvalidDevice`` if there is no such device.
    """
    call(cudart.cudaSetDevice, index)
