"""Device and pinned buffers on a real GPU: copies, grow-only ensure, no leaks."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from rtvoice import cuda
from rtvoice.cuda import DeviceBuffer, Event, HostBuffer, Stream, call
from rtvoice.cuda._check import cudart
from rtvoice.errors import InternalError

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda.is_available(), reason="needs a CUDA GPU and driver"),
]
MIB = 1 << 20


@pytest.fixture
def stream() -> Iterator[Stream]:
    with Stream() as s:
        yield s


def test_roundtrip_through_pinned_memory(stream: Stream) -> None:
    data = np.arange(1 << 20, dtype=np.float32)
    with (
        DeviceBuffer(data.nbytes) as dev,
        HostBuffer(data.nbytes) as src,
        HostBuffer(data.nbytes) as dst,
    ):
        src.array(np.float32, data.shape)[:] = data
        dev.copy_from_host(src, stream)
        dev.copy_to_host(dst, stream)
        stream.synchronize()

        np.testing.assert_array_equal(dst.array(np.float32, data.shape), data)


def test_roundtrip_numpy_and_device_to_device(stream: Stream) -> None:
    data = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    out = np.zeros_like(data)
    with DeviceBuffer(data.nbytes) as a, DeviceBuffer(data.nbytes) as b:
        a.copy_from_host(data, stream)
        b.copy_from_device(a, stream)
        b.copy_to_host(out, stream)
        stream.synchronize()

    np.testing.assert_array_equal(out, data)


def test_memset_sets_bytes(stream: Stream) -> None:
    with DeviceBuffer(1024) as dev, HostBuffer(1024) as host:
        dev.memset(0xAB, stream)
        dev.memset(0, stream, nbytes=100)
        dev.copy_to_host(host, stream)
        stream.synchronize()
        raw = host.array(np.uint8, 1024)

        assert np.all(raw[:100] == 0)
        assert np.all(raw[100:] == 0xAB)


def test_ensure_grows_only() -> None:
    with DeviceBuffer() as buf:
        assert (buf.ptr, buf.nbytes) == (0, 0)
        assert buf.ensure(MIB) is True
        first = buf.ptr
        assert first != 0
        assert buf.ensure(MIB // 2) is False
        assert (buf.ptr, buf.nbytes) == (first, MIB)
        assert buf.ensure(4 * MIB) is True
        assert buf.nbytes == 4 * MIB
        assert buf.ptr != 0


@pytest.mark.parametrize(
    "make",
    [lambda: DeviceBuffer(MIB), lambda: HostBuffer(MIB), Stream, Event],
    ids=["device", "host", "stream", "event"],
)
def test_close_is_idempotent(make: Callable[[], Any]) -> None:
    owner = make()

    owner.close()
    owner.close()

    assert owner.closed


def test_use_after_close_raises() -> None:
    buf = DeviceBuffer(MIB)
    buf.close()

    with pytest.raises(InternalError):
        _ = buf.ptr


def _one_cycle() -> None:
    with (
        DeviceBuffer(16 * MIB) as dev,
        HostBuffer(MIB) as host,
        Stream() as s,
        Event() as done,
    ):
        dev.memset(1, s)
        dev.copy_to_host(host, s)
        done.record(s)
        done.synchronize()


def test_allocate_close_cycles_return_device_memory() -> None:
    _one_cycle()  # Warm up: the CUDA context and the driver's own pools.
    start = cuda.used_bytes()

    for _ in range(200):
        _one_cycle()

    # One leaked cycle would be 16 MiB; 200 of them 3.2 GiB.
    assert abs(cuda.used_bytes() - start) <= 4 * MIB


def test_del_warns_about_a_leak_and_frees_nothing() -> None:
    buf = DeviceBuffer(MIB)
    ptr = buf.ptr

    with pytest.warns(ResourceWarning, match="without close"):
        del buf
        gc.collect()

    call(cudart.cudaFree, ptr)  # The test leaked it on purpose; __del__ must not free it.
