"""Ownership rules of the CUDA wrappers, checked on the CPU against a fake runtime.

The fake stands in for ``cuda.bindings.runtime`` inside rtvoice.cuda.memory and
rtvoice.cuda.stream. It returns real ``cudaError_t`` values and real handle types, and
keeps a ledger of live allocations, so leaks and double frees show up without a GPU.
The same rules are checked on a real GPU in test_cuda_memory.py and test_cuda_stream.py.
"""

from __future__ import annotations

import ctypes
import gc
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rtvoice.cuda import DeviceBuffer, Event, HostBuffer, Stream, memory, stream
from rtvoice.errors import CudaError, InternalError

runtime = pytest.importorskip("cuda.bindings.runtime")
OK = runtime.cudaError_t.cudaSuccess


class FakeRuntime:
    """The slice of ``cuda.bindings.runtime`` the wrappers use, with a ledger of live handles."""

    cudaError_t = runtime.cudaError_t
    cudaMemcpyKind = runtime.cudaMemcpyKind
    cudaStreamNonBlocking = runtime.cudaStreamNonBlocking
    cudaEventBlockingSync = runtime.cudaEventBlockingSync
    cudaEventDisableTiming = runtime.cudaEventDisableTiming
    cudaEventWaitDefault = runtime.cudaEventWaitDefault
    cudaHostAllocDefault = runtime.cudaHostAllocDefault

    def __init__(self) -> None:
        self.live: dict[int, str] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail: dict[str, Any] = {}  # function name -> cudaError_t to return once
        self._host: dict[int, ctypes.Array[ctypes.c_char]] = {}
        self._next = 0x10000

    def _result(self, name: str, *args: Any) -> Any:
        self.calls.append((name, args))
        return self.fail.pop(name, OK)

    def _new(self, kind: str) -> int:
        self._next += 0x1000
        self.live[self._next] = kind
        return self._next

    def _drop(self, handle: Any, kind: str) -> tuple[Any]:
        if self.live.get(int(handle)) != kind:
            return (runtime.cudaError_t.cudaErrorInvalidValue,)
        del self.live[int(handle)]
        return (OK,)

    def cudaMalloc(self, nbytes: int) -> tuple[Any, Any]:
        err = self._result("cudaMalloc", nbytes)
        return (err, self._new("device") if err == OK else None)

    def cudaFree(self, ptr: int) -> tuple[Any]:
        err = self._result("cudaFree", ptr)
        return self._drop(ptr, "device") if err == OK else (err,)

    def cudaHostAlloc(self, nbytes: int, flags: int) -> tuple[Any, Any]:
        self._result("cudaHostAlloc", nbytes, flags)
        block = ctypes.create_string_buffer(nbytes)  # real memory, so array() views work
        self._host[ctypes.addressof(block)] = block
        self.live[ctypes.addressof(block)] = "host"
        return (OK, ctypes.addressof(block))

    def cudaFreeHost(self, ptr: int) -> tuple[Any]:
        self._result("cudaFreeHost", ptr)
        return self._drop(ptr, "host")

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[Any, Any]:
        self._result("cudaStreamCreateWithFlags", flags)
        return (OK, runtime.cudaStream_t(self._new("stream")))

    def cudaStreamDestroy(self, handle: Any) -> tuple[Any]:
        self._result("cudaStreamDestroy", handle)
        return self._drop(handle, "stream")

    def cudaEventCreateWithFlags(self, flags: int) -> tuple[Any, Any]:
        self._result("cudaEventCreateWithFlags", flags)
        return (OK, runtime.cudaEvent_t(self._new("event")))

    def cudaEventDestroy(self, handle: Any) -> tuple[Any]:
        self._result("cudaEventDestroy", handle)
        return self._drop(handle, "event")

    def cudaEventQuery(self, handle: Any) -> tuple[Any]:
        return (self._result("cudaEventQuery", handle),)

    def cudaMemcpyAsync(self, *args: Any) -> tuple[Any]:
        return (self._result("cudaMemcpyAsync", *args),)

    def cudaMemsetAsync(self, *args: Any) -> tuple[Any]:
        return (self._result("cudaMemsetAsync", *args),)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRuntime]:
    runtime_fake = FakeRuntime()
    monkeypatch.setattr(memory, "cudart", runtime_fake)
    monkeypatch.setattr(stream, "cudart", runtime_fake)
    yield runtime_fake
    assert runtime_fake.live == {}, "a test leaked a handle"


@pytest.mark.parametrize(
    "make",
    [lambda: DeviceBuffer(64), lambda: HostBuffer(64), Stream, Event],
    ids=["device", "host", "stream", "event"],
)
def test_close_releases_once_and_is_idempotent(fake: FakeRuntime, make: Any) -> None:
    owner = make()
    assert len(fake.live) == 1

    owner.close()
    owner.close()

    assert owner.closed
    assert fake.live == {}
    assert len([name for name, _ in fake.calls if "Free" in name or "Destroy" in name]) == 1


def test_with_block_closes(fake: FakeRuntime) -> None:
    with DeviceBuffer(64) as buf, Stream() as s, Event() as e:
        assert not (buf.closed or s.closed or e.closed)

    assert buf.closed and s.closed and e.closed


def test_use_after_close_raises_internal_error(fake: FakeRuntime) -> None:
    buf = DeviceBuffer(64)
    s = Stream()
    buf.close()
    s.close()

    with pytest.raises(InternalError, match="closed"):
        _ = buf.ptr
    with pytest.raises(InternalError, match="closed"):
        _ = s.handle
    with Event() as e, pytest.raises(InternalError, match="closed"):
        e.record(s)


def test_ensure_grows_only(fake: FakeRuntime) -> None:
    with DeviceBuffer() as buf:
        assert (buf.ptr, buf.nbytes) == (0, 0)
        assert buf.ensure(1024) is True
        assert buf.ensure(512) is False
        assert buf.ensure(1024) is False
        assert buf.nbytes == 1024
        assert buf.ensure(4096) is True
        assert buf.nbytes == 4096
        assert len(fake.live) == 1

    assert [name for name, _ in fake.calls] == ["cudaMalloc", "cudaFree", "cudaMalloc", "cudaFree"]


def test_failed_growth_leaves_the_buffer_empty_and_usable(fake: FakeRuntime) -> None:
    with DeviceBuffer(64) as buf:
        fake.fail["cudaMalloc"] = runtime.cudaError_t.cudaErrorMemoryAllocation

        with pytest.raises(CudaError) as info:
            buf.ensure(1 << 40)

        assert info.value.code == "cudaErrorMemoryAllocation"
        assert (buf.ptr, buf.nbytes) == (0, 0)
        assert buf.ensure(128) is True


def test_failed_constructor_leaves_nothing_to_close(fake: FakeRuntime, recwarn: pytest.WarningsRecorder) -> None:
    fake.fail["cudaMalloc"] = runtime.cudaError_t.cudaErrorMemoryAllocation

    with pytest.raises(CudaError):
        DeviceBuffer(64)
    gc.collect()

    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]


def test_del_only_warns_about_a_leak(fake: FakeRuntime, caplog: pytest.LogCaptureFixture) -> None:
    buf = DeviceBuffer(64)
    ptr = buf.ptr

    with pytest.warns(ResourceWarning, match="without close"):
        del buf
        gc.collect()

    assert "without close" in caplog.text
    assert fake.live == {ptr: "device"}  # __del__ made no CUDA call
    fake.cudaFree(ptr)


def test_close_logs_a_failed_free_instead_of_raising(fake: FakeRuntime, caplog: pytest.LogCaptureFixture) -> None:
    buf = DeviceBuffer(64)
    ptr = buf.ptr
    fake.fail["cudaFree"] = runtime.cudaError_t.cudaErrorIllegalAddress

    with caplog.at_level(logging.ERROR):
        buf.close()

    assert buf.closed
    assert "cudaErrorIllegalAddress" in caplog.text
    fake.cudaFree(ptr)


def test_host_buffer_array_is_a_view_of_the_pinned_memory(fake: FakeRuntime) -> None:
    with HostBuffer(64) as host:
        first = host.array(np.float32, (4, 4))
        first[:] = 7.0
        again = host.array(np.float32, 16)

        assert np.all(again == 7.0)
        assert first.ctypes.data == host.ptr
        with pytest.raises(ValueError, match="does not fit"):
            host.array(np.float64, 9)


def test_copies_pass_addresses_sizes_kinds_and_the_stream(fake: FakeRuntime) -> None:
    src = np.arange(16, dtype=np.float32)
    dst = np.empty(8, dtype=np.float32)
    kinds = runtime.cudaMemcpyKind
    with DeviceBuffer(64) as a, DeviceBuffer(64) as b, Stream() as s:
        a.copy_from_host(src, s)
        b.copy_from_device(a, s, nbytes=32)
        b.copy_to_host(dst, s)
        b.memset(0xAB, s, nbytes=8)
        expected = [
            (a.ptr, src.ctypes.data, 64, kinds.cudaMemcpyHostToDevice, s.handle),
            (b.ptr, a.ptr, 32, kinds.cudaMemcpyDeviceToDevice, s.handle),
            (dst.ctypes.data, b.ptr, 32, kinds.cudaMemcpyDeviceToHost, s.handle),
            (b.ptr, 0xAB, 8, s.handle),
        ]

    copies = [args for name, args in fake.calls if name.endswith("Async")]
    assert copies == expected


def test_copies_reject_what_does_not_fit(fake: FakeRuntime) -> None:
    with DeviceBuffer(16) as buf, Stream() as s:
        with pytest.raises(ValueError, match="Cannot copy 32 bytes"):
            buf.copy_from_host(np.zeros(8, np.float32), s)
        with pytest.raises(ValueError, match="C-contiguous"):
            buf.copy_from_host(np.zeros((4, 4), np.uint8)[:, ::2], s)
        with pytest.raises(ValueError, match="read-only"):
            buf.copy_to_host(np.frombuffer(bytes(16), np.uint8), s)
        with pytest.raises(ValueError, match=r"0\.\.255"):
            buf.memset(256, s)

    assert not [name for name, _ in fake.calls if name.endswith("Async")]


def test_zero_byte_copies_queue_nothing(fake: FakeRuntime) -> None:
    with DeviceBuffer() as empty, DeviceBuffer(16) as full, Stream() as s:
        empty.copy_from_host(np.zeros(0, np.uint8), s)
        empty.copy_to_host(np.zeros(0, np.uint8), s)
        full.copy_from_device(empty, s)
        empty.memset(0, s)

    assert not [name for name, _ in fake.calls if name.endswith("Async")]


def test_event_query_maps_not_ready_to_false(fake: FakeRuntime) -> None:
    with Event() as e:
        assert e.query() is True
        fake.fail["cudaEventQuery"] = runtime.cudaError_t.cudaErrorNotReady
        assert e.query() is False
        fake.fail["cudaEventQuery"] = runtime.cudaError_t.cudaErrorLaunchFailure
        with pytest.raises(CudaError, match="cudaEventQuery"):
            e.query()


def test_event_flags_ask_for_blocking_sync(fake: FakeRuntime) -> None:
    with Event(), Event(timing=True):
        pass

    flags = [args[0] for name, args in fake.calls if name == "cudaEventCreateWithFlags"]
    blocking, no_timing = runtime.cudaEventBlockingSync, runtime.cudaEventDisableTiming
    assert flags == [blocking | no_timing, blocking]


def test_elapsed_ms_needs_timing_events(fake: FakeRuntime) -> None:
    with Event() as start, Event(timing=True) as end, pytest.raises(ValueError, match="timing"):
        start.elapsed_ms(end)
