"""One TensorRT execution context, and the shapes and addresses last set on it.

:class:`Context` hands an input shape or a tensor address to TensorRT only when it differs
from the one last set on that context, checks every boolean TensorRT returns, and checks
that each output buffer has the shape TensorRT infers. :mod:`rtvoice.trt.runner` owns the
contexts; nothing else touches them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..engine.gpu_runner import DeviceTensor
from ..engine.graphs import GRAPH_OUTPUTS
from ..errors import EngineError, InternalError
from ._tensorrt import RecordingLogger, with_errors
from .profiles import Shape, ShapeRange, explain_shape


class Context:
    """An ``IExecutionContext`` of one graph's engine, with what was last set on it.

    Args:
        context: The TensorRT execution context (owned from here on).
        graph: The graph's name, for messages.
        dtypes: Every IO tensor's numpy dtype, as the plan declares it.
        limits: Every input's (min, opt, max) from the plan's profile 0.
        logger: The runtime's logger, whose recorded errors are quoted on failure.
    """

    def __init__(self, context: Any, graph: str, dtypes: Mapping[str, np.dtype[Any]],
                 limits: Mapping[str, ShapeRange], logger: RecordingLogger) -> None:
        self._context = context
        self._graph = graph
        self._dtypes = dtypes
        self._limits = limits
        self._logger = logger
        self._shapes: dict[str, Shape] = {}
        self._addresses: dict[str, int] = {}
        self._output_shapes: dict[str, Shape] = {}
        self.owner: object | None = None
        """The binding whose addresses are set on this context (None: plain ``run`` calls)."""

    @property
    def alive(self) -> bool:
        """Whether :meth:`release` has not run."""
        return self._context is not None

    def release(self) -> None:
        """Drop the TensorRT context (TensorRT frees it when the last reference goes)."""
        self._context = None
        self.owner = None

    def apply(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> None:
        """Set the shapes and addresses that changed since the last call, checking each.

        Raises:
            EngineError: A shape outside the profile, a dtype or output shape that does
                not match the plan, or a refused address.
        """
        context = self._live()
        changed = False
        for name, t in inputs.items():
            if self._shapes.get(name) != t.shape:
                self._check_dtype(name, t)
                if not context.set_input_shape(name, t.shape):
                    self._shapes.clear()  # other inputs may be set already: set them all again next time
                    self._logger.take_errors()  # the note below is more precise than TensorRT's
                    raise EngineError(f"set_input_shape({name!r}, {t.shape}) failed for {self._graph}. "
                                      + explain_shape(self._graph, name, t.shape, self._limits[name]), tensor=name)
                self._shapes[name] = t.shape
                changed = True
        if changed:
            self._infer_output_shapes(context)
        for name, t in inputs.items():
            self._set_address(context, name, t)
        for name, t in outputs.items():
            if changed:
                self._check_dtype(name, t)
            expected = self._output_shapes.get(name)
            if expected != t.shape:
                raise EngineError(f"Output {name!r} of {self._graph} has shape {expected} for these inputs, but its "
                                  f"buffer is {t.shape}. Note: the inputs are {self._shapes}.", tensor=name)
            self._set_address(context, name, t)

    def execute(self, stream_handle: int) -> None:
        """Enqueue the graph on ``stream_handle`` with what is set; returns without waiting.

        Raises:
            EngineError: ``execute_async_v3`` returned False (with TensorRT's logged errors).
        """
        if not self._live().execute_async_v3(stream_handle):
            raise EngineError(with_errors(f"execute_async_v3 for {self._graph} failed.", self._logger))

    def _live(self) -> Any:
        if self._context is None:
            raise InternalError(f"execution context of {self._graph} used after release")
        return self._context

    def _set_address(self, context: Any, name: str, t: DeviceTensor) -> None:
        if self._addresses.get(name) == t.ptr:
            return
        if not context.set_tensor_address(name, t.ptr):
            self._addresses.pop(name, None)
            raise EngineError(with_errors(f"set_tensor_address({name!r}, 0x{t.ptr:x}) failed for {self._graph}.",
                                          self._logger)
                              + " Hint: TensorRT needs a non-null device address, aligned to 256 bytes.", tensor=name)
        self._addresses[name] = t.ptr

    def _check_dtype(self, name: str, t: DeviceTensor) -> None:
        # Checked when the input shapes change (about once per sentence), not per decoder step.
        if np.dtype(t.dtype) != self._dtypes[name]:
            self._shapes.clear()  # check again next time
            raise EngineError(f"Tensor {name!r} of {self._graph} is {np.dtype(t.dtype)} but the plan wants "
                              f"{self._dtypes[name]}. Hint: the plan was built from another graph; rebuild it.",
                              tensor=name)

    def _infer_output_shapes(self, context: Any) -> None:
        self._output_shapes.clear()
        for name in GRAPH_OUTPUTS[self._graph]:
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                inputs = dict(self._shapes)
                self._shapes.clear()  # infer again next time
                raise EngineError(with_errors(f"TensorRT cannot infer the shape of output {name!r} of {self._graph} "
                                              f"from inputs {inputs}.", self._logger), tensor=name)
            self._output_shapes[name] = shape
