"""CUDA graphs: capture work enqueued on a stream once, replay it with one launch.

Why: a decoder step is dozens of tiny kernels, and at small batches the host's launch
overhead, not the GPU, sets the pace. A captured run of steps costs one
``cudaGraphLaunch``. The graph bakes in every address and shape it saw, so it is only
valid while those buffers live and are not reallocated.

Ownership and threads: a :class:`CudaGraph` owns its executable graph until
:meth:`~rtvoice.cuda._check.Owned.close`, and is used on the thread that captured it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtvoice.cuda._check import Owned, call, cudart
from rtvoice.cuda.stream import Stream

__all__ = ["CudaGraph"]


class CudaGraph(Owned):
    """An instantiated CUDA graph (``cudaGraphExec_t``), made by :meth:`capture`."""

    def __init__(self, exec_graph: Any) -> None:
        self._exec: Any = exec_graph
        self._closed = False

    @classmethod
    def capture(cls, stream: Stream, enqueue: Callable[[], None]) -> CudaGraph:
        """Capture what ``enqueue`` queues on ``stream`` (nothing runs) and instantiate it.

        Thread-local capture mode: the other GPU thread (the vocoder on its own stream)
        may go on allocating and synchronizing meanwhile. ``enqueue`` must only enqueue on
        ``stream``: a host wait or an allocation on this thread ends the capture with an
        error. Libraries such as TensorRT want one ordinary enqueue after any shape or
        address change before they are captured; the caller does that warm-up.

        Raises:
            CudaError: The capture or instantiation failed (the partial graph is freed).
        """
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        call(cudart.cudaStreamBeginCapture, stream.handle, mode)
        try:
            enqueue()
        except BaseException:
            failed = cudart.cudaStreamEndCapture(stream.handle)  # leave capture mode; the error wins
            if failed[0] == cudart.cudaError_t.cudaSuccess and failed[1] is not None:
                call(cudart.cudaGraphDestroy, failed[1])
            raise
        graph = call(cudart.cudaStreamEndCapture, stream.handle)
        try:
            return cls(call(cudart.cudaGraphInstantiate, graph, 0))
        finally:
            call(cudart.cudaGraphDestroy, graph)  # the executable graph does not need it

    def launch(self, stream: Stream) -> None:
        """Enqueue one replay of the graph on ``stream``; returns without waiting."""
        self._require_open()
        call(cudart.cudaGraphLaunch, self._exec, stream.handle)

    def _release(self) -> None:
        exec_graph, self._exec = self._exec, None
        if exec_graph is not None:
            call(cudart.cudaGraphExecDestroy, exec_graph)

    def __repr__(self) -> str:
        """Makes no CUDA call (``__del__`` uses it)."""
        return f"CudaGraph({'closed' if self._closed else 'open'})"
