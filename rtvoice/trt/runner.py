"""One TensorRT plan run on one CUDA stream, reading and writing our device buffers.

:class:`TrtRunner` is the TensorRT :class:`~rtvoice.engine.gpu_runner.GraphRunner`. It owns
the runtime, the deserialized engine and its execution contexts, and follows a lifecycle
template: the public :meth:`~TrtRunner.open` / :meth:`~TrtRunner.close` check the state and
log, ``_open`` / ``_close`` do the work, and after ``close()`` the runner's attributes are
what they were before ``open()``.

Two ways to run, both checked the same way (:class:`~rtvoice.trt.context.Context`: every
TensorRT boolean checked, a shape or address set only when it changed):

- :meth:`~TrtRunner.run` (encoder, postnet, WaveGlow) uses the runner's main context.
- :meth:`~TrtRunner.bind` (the decoder step's two ping-pong bindings) gives a binding its
  own context with every shape and address set once, so that each decoder step is one
  ``execute_async_v3`` call. The runner keeps at most ``bound_contexts`` such contexts
  (they share optimization profile 0 and run one after another on the runner's one
  stream, never concurrently). When more bindings are alive than that, the oldest
  binding's context goes to the newest, and the old binding sets its addresses again on
  its next run: always correct, only slower.

Ownership and threads: the runner never allocates or frees device memory; the addresses
it is given belong to :class:`~rtvoice.engine.gpu_engine.GpuEngine`. TensorRT objects are
created and destroyed only in :meth:`~TrtRunner.open` and :meth:`~TrtRunner.close`, never
by garbage collection of a binding. Execution contexts are not thread-safe: a runner and
its bindings are used by one thread at a time (the decoder thread for the encoder and
decoder step, the vocoder thread for the postnet and WaveGlow), with the CUDA device of
its stream current.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import numpy as np

from ..cuda import Stream
from ..engine.gpu_runner import DeviceTensor
from ..engine.graphs import GRAPH_INPUTS, GRAPH_OUTPUTS
from ..errors import EngineError, InternalError
from . import _tensorrt
from .context import Context
from .profiles import ShapeRange

log = logging.getLogger("rtvoice.trt")

BOUND_CONTEXTS: Final = 4
"""Execution contexts kept for bindings: two per decoder utterance in flight (ping-pong)."""

_NUMPY_TYPES: dict[str, type[np.generic]] = {
    "FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "UINT8": np.uint8,
    "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_,
}
"""TensorRT DataType name -> numpy type of the buffers we bind (others, e.g. BF16, map to void)."""
_INPUTS = {graph: frozenset(names) for graph, names in GRAPH_INPUTS.items()}
_OUTPUTS = {graph: frozenset(names) for graph, names in GRAPH_OUTPUTS.items()}


class TrtRunner:
    """Runs one graph's TensorRT plan on the stream it was created for.

    Args:
        graph: The graph's name (``"decoder_step"``); its IO names must match the plan's.
        plan_path: The serialized plan (``<graph>.plan``).
        stream: The stream every run is enqueued on; it must outlive the runner.
        bound_contexts: How many execution contexts :meth:`bind` may keep (at least 1).

    Use ``with TrtRunner(...) as runner:`` or :meth:`open` / :meth:`close`.
    """

    def __init__(self, graph: str, plan_path: Path, stream: Stream, *, bound_contexts: int = BOUND_CONTEXTS) -> None:
        if graph not in GRAPH_INPUTS:
            raise InternalError(f"TrtRunner for unknown graph {graph!r}")
        if bound_contexts < 1:
            raise ValueError(f"bound_contexts must be at least 1, got {bound_contexts}")
        self.graph = graph
        self.plan_path = plan_path
        self._stream = stream
        self._max_bound = bound_contexts
        self._logger: _tensorrt.RecordingLogger | None = None
        self._runtime: Any = None
        self._engine: Any = None
        self._main: Context | None = None
        self._bound: list[Context] = []  # oldest first
        self._handle = 0
        self._dtypes: dict[str, np.dtype[Any]] = {}
        self._limits: dict[str, ShapeRange] = {}

    enqueue_only = True
    """Runs only enqueue ``execute_async_v3`` on the stream, so the caller may capture them as a CUDA graph."""

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` has run and :meth:`close` has not."""
        return self._main is not None

    def open(self) -> Self:
        """Deserialize the plan and create the main execution context.

        Returns:
            ``self``, so that a factory can ``return TrtRunner(...).open()``.

        Raises:
            EngineError: TensorRT missing, the plan missing, made by another TensorRT or
                for another GPU, or its IO names not those of the graph.
            InternalError: Already open.
        """
        if self.is_open:
            raise InternalError(f"TrtRunner({self.graph}) is already open.")
        try:
            self._open()
        except BaseException:
            self._close()
            raise
        log.debug("TrtRunner(%s) opened %s", self.graph, self.plan_path)
        return self

    def close(self) -> None:
        """Destroy the contexts, engine and runtime. Idempotent; never raises.

        Bindings made by :meth:`bind` die with it: running one afterwards is an error.
        """
        if not self.is_open and self._runtime is None:
            return
        self._close()
        log.debug("TrtRunner(%s) closed", self.graph)

    def _open(self) -> None:
        trt = _tensorrt.load()  # never RTX: its plans do not run on the GPUs rtvoice targets
        try:
            data = self.plan_path.read_bytes()
        except FileNotFoundError as exc:
            raise EngineError(f"TensorRT plan {self.plan_path} does not exist. Hint: build it with "
                              f"`python -m rtvoice.trt.build {self.plan_path.parent}`.", tensor=None) from exc
        self._logger = logger = _tensorrt.new_logger(trt)
        self._runtime = trt.module.Runtime(logger)
        if self._runtime is None:
            raise EngineError(_tensorrt.with_errors("trt.Runtime() failed.", logger))
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise EngineError(_tensorrt.with_errors(f"{trt.label} cannot load {self.plan_path}.", logger)
                              + f" Hint: plans only run on the TensorRT version and GPU model that built them; "
                              f"rebuild with `python -m rtvoice.trt.build {self.plan_path.parent} --force`.")
        self._read_io(trt)
        main = self._new_context()
        self._handle = self._stream.handle
        self._main = main

    def _read_io(self, trt: _tensorrt.TensorRT) -> None:
        """Check the plan's IO names against the graph's; record dtypes and input profiles."""
        engine, mode = self._engine, trt.module.TensorIOMode
        inputs: list[str] = []
        outputs: list[str] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            (inputs if engine.get_tensor_mode(name) == mode.INPUT else outputs).append(name)
            self._dtypes[name] = np.dtype(_NUMPY_TYPES.get(engine.get_tensor_dtype(name).name, np.void))
        want_in, want_out = set(GRAPH_INPUTS[self.graph]), set(GRAPH_OUTPUTS[self.graph])
        if set(inputs) != want_in or set(outputs) != want_out:
            missing = sorted((want_in - set(inputs)) | (want_out - set(outputs)))
            extra = sorted((set(inputs) - want_in) | (set(outputs) - want_out))
            raise EngineError(
                f"TensorRT plan {self.plan_path.name} does not have the IO tensors of the {self.graph} graph. "
                f"Note: missing {missing or 'none'}, unexpected {extra or 'none'}. Hint: the plan was built from "
                f"another graph; rebuild with `python -m rtvoice.trt.build {self.plan_path.parent} --force`.",
                tensor=(missing or extra)[0])
        for name in inputs:
            lo, opt, hi = engine.get_tensor_profile_shape(name, 0)
            self._limits[name] = (tuple(lo), tuple(opt), tuple(hi))

    def _new_context(self) -> Context:
        context = self._engine.create_execution_context()
        if context is None:
            raise EngineError(_tensorrt.with_errors(f"create_execution_context for {self.graph} failed.",
                                                    self._logger_()) + " Hint: is the GPU out of memory?")
        return Context(context, self.graph, self._dtypes, self._limits, self._logger_())

    def _close(self) -> None:
        # Order matters to TensorRT: contexts before engine before runtime.
        for context in (self._main, *self._bound):
            if context is not None:
                context.release()
        self._main = None
        self._bound.clear()
        self._engine = None
        self._runtime = None
        self._logger = None
        self._handle = 0
        self._dtypes.clear()
        self._limits.clear()

    def run(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> None:
        """Enqueue one run on the stream; returns without waiting for the GPU.

        Args:
            inputs: Every input of the graph, by name, on the device.
            outputs: Every output of the graph, by name; each buffer must hold the shape
                TensorRT infers from the inputs (checked).

        Raises:
            EngineError: A shape outside the plan's profile (with the profile's range and
                the ``voice.json`` field to raise), a dtype or output shape that does not
                match, or a failed TensorRT call.
            InternalError: Not open, or not every IO tensor given.
        """
        main = self._require_open()
        self._check_names(inputs, outputs)
        main.apply(inputs, outputs)
        main.execute(self._handle)

    def bind(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> TrtBinding:
        """Fix every shape and address now; the binding's ``run()`` then only enqueues.

        Args:
            inputs: Every input of the graph, by name; the buffers must stay valid as long
                as the binding is run.
            outputs: Every output of the graph, by name.

        Returns:
            A binding, valid until this runner closes.

        Raises:
            EngineError: As :meth:`run` (checked here, at bind time).
            InternalError: Not open, or not every IO tensor given.
        """
        self._require_open()
        self._check_names(inputs, outputs)
        binding = TrtBinding(self, dict(inputs), dict(outputs))
        binding._context = self._context_for(binding)
        return binding

    def _context_for(self, binding: TrtBinding) -> Context:
        """Give ``binding`` a bound context: a new one while under the limit, else the oldest."""
        if len(self._bound) < self._max_bound:
            context = self._new_context()
        else:
            context = self._bound.pop(0)
            log.debug("TrtRunner(%s): more than %d bindings alive; an older one will set its addresses again",
                      self.graph, self._max_bound)
        self._bound.append(context)
        context.owner = None  # until apply succeeds: a half-set context belongs to nobody
        context.apply(binding._inputs, binding._outputs)
        context.owner = binding
        return context

    def _run_binding(self, binding: TrtBinding) -> None:
        self._require_open()
        context = binding._context
        if context is None or context.owner is not binding or not context.alive:
            context = binding._context = self._context_for(binding)
        context.execute(self._handle)

    def _require_open(self) -> Context:
        if self._main is None:
            raise InternalError(f"TrtRunner({self.graph}) not open; use `with runner:` or open().")
        return self._main

    def _check_names(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> None:
        if inputs.keys() != _INPUTS[self.graph] or outputs.keys() != _OUTPUTS[self.graph]:
            raise InternalError(f"TrtRunner({self.graph}) needs exactly the graph's IO tensors; got inputs "
                                f"{sorted(inputs)} and outputs {sorted(outputs)}")

    def _logger_(self) -> _tensorrt.RecordingLogger:
        if self._logger is None:
            raise InternalError(f"TrtRunner({self.graph}) has no logger while open")
        return self._logger

    def __enter__(self) -> Self:
        return self if self.is_open else self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_main", None) is not None:
            # No TensorRT call here: this may run on any thread, and at interpreter exit.
            message = (f"TrtRunner({self.graph}) was garbage-collected while open; its engine is released "
                       "without an explicit close(). Hint: use `with` or call close().")
            log.warning("%s", message)
            warnings.warn(message, ResourceWarning, stacklevel=2, source=self)


class TrtBinding:
    """A graph with every input and output bound: :meth:`run` only enqueues it.

    Made by :meth:`TrtRunner.bind`; holds no TensorRT object of its own (its runner owns
    the context it runs on), so dropping it needs no cleanup. Valid until the runner closes.
    """

    def __init__(self, runner: TrtRunner, inputs: dict[str, DeviceTensor], outputs: dict[str, DeviceTensor]) -> None:
        self._runner = runner
        self._inputs = inputs
        self._outputs = outputs
        self._context: Context | None = None

    def run(self) -> None:
        """Enqueue one run on the runner's stream; returns without waiting for the GPU.

        Raises:
            EngineError: ``execute_async_v3`` failed, or re-binding after the context was
                handed to a newer binding failed.
            InternalError: The runner is closed.
        """
        self._runner._run_binding(self)
