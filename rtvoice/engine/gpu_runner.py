"""What a GPU backend plugs into the GPU engine: a runner per graph, on our device buffers.

A backend (ONNX Runtime IO binding, a TensorRT execution context) implements
:class:`GraphRunner`; :mod:`rtvoice.engine.gpu_engine` owns everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..cuda import Stream

F32 = 4
"""Bytes per float32: device buffers are sized in bytes."""


@dataclass(frozen=True)
class DeviceTensor:
    """A tensor view onto device memory we own: address, shape, numpy dtype."""

    ptr: int
    shape: tuple[int, ...]
    dtype: type[np.generic] = np.float32


class BoundRun(Protocol):
    """A graph with every input and output bound to fixed addresses: ``run()`` only executes.

    The decoder step uses two (one per ping-pong direction), so a step binds nothing.
    """

    def run(self) -> None: ...


class GraphRunner(Protocol):
    """Runs one graph on the stream it was created for, reading and writing our buffers."""

    @property
    def enqueue_only(self) -> bool:
        """Whether a run only enqueues on the stream (no host wait), so runs can be captured as a CUDA graph."""

    def run(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> None: ...

    def bind(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> BoundRun: ...

    def close(self) -> None: ...


RunnerFactory = Callable[[str, Path, Stream], GraphRunner]
"""(graph name, graph path, stream) -> runner; called once per graph at engine open."""

StepRunnerFactory = Callable[[int, int], GraphRunner]
"""(batch rows, text length) -> a decoder-step runner with those static shapes.

Called once per batch bucket, when a batch first needs it (never inside the step loop).
"""
