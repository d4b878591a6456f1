"""What a GPU backend plugs into the GPU engine: a runner per graph, on our device buffers.

A backend (ONNX Runtime IO binding, a TensorRT execution context) implements
:class:`GraphRunner`; :mod:`rtvoice.models.gpu_engine` owns everything else.
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

    def run(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> None: ...

    def bind(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> BoundRun: ...

    def close(self) -> None: ...


RunnerFactory = Callable[[str, Path, Stream], GraphRunner]
"""(graph name, graph path, stream) -> runner; called once per graph at engine open."""
