"""A fake CUDA device in host memory, so the GPU engine's logic runs on the CPU.

"Device" buffers are numpy allocations whose addresses the engine passes around as if
they were device pointers; copies are ``memmove``; each graph runner is an ONNX Runtime
CPU session that reads and writes those addresses. Streams run everything at once, so
ordering is the program order. CUDA graphs are recorded callables, replayed on launch.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from rtvoice.engine import gpu_decoder, gpu_engine, gpu_rows, gpu_vocoder
from rtvoice.engine.gpu_runner import DeviceTensor
from rtvoice.ort.sessions import open_session


class FakeBuffer:
    """DeviceBuffer and HostBuffer at once: grow-only host memory."""

    live = 0

    def __init__(self, nbytes: int = 0) -> None:
        self._mem = np.zeros(0, np.uint8)
        self.nbytes = 0
        self.closed = False
        FakeBuffer.live += 1
        self.ensure(nbytes)

    @property
    def ptr(self) -> int:
        return int(self._mem.ctypes.data) if self.nbytes else 0

    def ensure(self, nbytes: int) -> bool:
        if nbytes <= self.nbytes:
            return False
        self._mem = np.full(nbytes, 0xAB, np.uint8)  # garbage, like fresh device memory
        self.nbytes = nbytes
        return True

    def memset(self, value: int, stream: object, nbytes: int | None = None) -> None:
        ctypes.memset(self.ptr, value, self.nbytes if nbytes is None else nbytes)

    def array(self, dtype: Any, shape: Any) -> Any:
        dt = np.dtype(dtype)
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        return np.frombuffer(self._mem, dt, count=int(np.prod(dims))).reshape(dims)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            FakeBuffer.live -= 1


class FakeStream:
    handle = 0x5EED
    closed = False

    def synchronize(self) -> None: ...

    def wait(self, event: object) -> None: ...

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeEvent:
    def record(self, stream: object) -> None: ...

    def synchronize(self) -> None: ...

    def close(self) -> None: ...


class FakeGraph:
    """A captured run of steps: the enqueue callable, replayed by launch()."""

    captured: list[FakeGraph] = []

    def __init__(self, enqueue: Callable[[], None]) -> None:
        self.enqueue, self.launches, self.closed = enqueue, 0, False

    @classmethod
    def capture(cls, stream: object, enqueue: Callable[[], None]) -> FakeGraph:
        graph = cls(enqueue)
        cls.captured.append(graph)
        return graph

    def launch(self, stream: object) -> None:
        assert not self.closed
        self.launches += 1
        self.enqueue()

    def close(self) -> None:
        self.closed = True


def copy_async(dst: int, src: int, nbytes: int, stream: object) -> None:
    if nbytes:
        ctypes.memmove(dst, src, nbytes)


def copy_2d_async(dst: int, dst_pitch: int, src: int, src_pitch: int, width: int, height: int,
                  stream: object) -> None:
    for row in range(height):
        ctypes.memmove(dst + row * dst_pitch, src + row * src_pitch, width)


def memset_async(ptr: int, value: int, nbytes: int, stream: object) -> None:
    ctypes.memset(ptr, value, nbytes)


def view(t: DeviceTensor) -> Any:
    count = int(np.prod(t.shape))
    raw = (ctypes.c_byte * (count * np.dtype(t.dtype).itemsize)).from_address(t.ptr)
    return np.frombuffer(raw, np.dtype(t.dtype), count=count).reshape(t.shape)


class FakeRunner:
    """A GraphRunner on an ONNX Runtime CPU session, reading and writing fake device memory."""

    opened: list[FakeRunner] = []
    shapes: list[tuple[str, tuple[int, ...]]] = []
    """(graph, first input shape) of every run, across runners."""

    def __init__(self, path: Path, static_dims: Mapping[str, int] | None = None, *,
                 enqueue_only: bool = False) -> None:
        # The runtime's own session options, with the same static-shape overrides as the CUDA runner.
        self.session: ort.InferenceSession | None = open_session(path, ["CPUExecutionProvider"],
                                                                 free_dims=static_dims)
        self.graph = path.stem
        self.enqueue_only = enqueue_only
        self.runs = 0
        FakeRunner.opened.append(self)

    def run(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> None:
        assert self.session is not None, "run after close"
        self.runs += 1
        FakeRunner.shapes.append((self.graph, next(iter(inputs.values())).shape))
        names = list(outputs)
        results = self.session.run(names, {name: view(t) for name, t in inputs.items()})
        for name, value in zip(names, results, strict=True):
            target = view(outputs[name])
            assert target.shape == value.shape, (name, target.shape, value.shape)
            target[...] = value

    def bind(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> _Bound:
        return _Bound(self, dict(inputs), dict(outputs))

    def close(self) -> None:
        self.session = None


class _Bound:
    def __init__(self, runner: FakeRunner, inputs: dict[str, DeviceTensor], outputs: dict[str, DeviceTensor]) -> None:
        self.runner, self.inputs, self.outputs = runner, inputs, outputs

    def run(self) -> None:
        self.runner.run(self.inputs, self.outputs)


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the GPU engine's modules at the fake device."""
    FakeGraph.captured.clear()
    FakeRunner.opened.clear()
    FakeRunner.shapes.clear()
    fakes = {"DeviceBuffer": FakeBuffer, "HostBuffer": FakeBuffer, "Stream": FakeStream, "Event": FakeEvent,
             "CudaGraph": FakeGraph, "copy_async": copy_async, "copy_2d_async": copy_2d_async,
             "memset_async": memset_async, "set_device": lambda index: None}
    for module in (gpu_engine, gpu_decoder, gpu_rows, gpu_vocoder):
        for name, fake in fakes.items():
            if hasattr(module, name):
                monkeypatch.setattr(module, name, fake)
