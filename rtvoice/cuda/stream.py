"""CUDA streams and events.

Ownership and threads: a :class:`Stream` or :class:`Event` belongs to whoever created it
and is used only on the thread that created it, which in rtvoice is the pipeline's GPU
worker thread (all CUDA calls run there). Neither is thread-safe. Closing a stream with
work still queued is allowed: CUDA releases it once that work is done.
"""

from __future__ import annotations

from typing import Any

from rtvoice.cuda._check import Owned, call, check, cudart


class Stream(Owned):
    """A non-blocking CUDA stream.

    Created with ``cudaStreamNonBlocking``, so it never synchronizes implicitly with the
    legacy default stream (stream 0), which libraries may use behind our back.

    Use :attr:`handle` wherever a raw ``cudaStream_t`` is wanted: TensorRT's
    ``execute_async_v3(handle)``, or ONNX Runtime's CUDA provider option
    ``{"user_compute_stream": str(handle)}``. The handle is valid until :meth:`close`;
    whoever is given it must not destroy it.
    """

    def __init__(self) -> None:
        """Create the stream on the calling thread's current device."""
        self._stream: Any = call(cudart.cudaStreamCreateWithFlags, cudart.cudaStreamNonBlocking)
        self._handle = int(self._stream)
        self._closed = False

    @property
    def handle(self) -> int:
        """The ``cudaStream_t`` as an integer address."""
        self._require_open()
        return self._handle

    def synchronize(self) -> None:
        """Block the calling thread until all work queued on this stream is done.

        How the thread waits (spin or sleep) follows the device's schedule flags; to be
        sure it sleeps, record an :class:`Event` and call :meth:`Event.synchronize`.
        """
        self._require_open()
        call(cudart.cudaStreamSynchronize, self._stream)

    def wait(self, event: Event) -> None:
        """Make work queued on this stream after this call wait until ``event`` completes.

        The host does not block. An event never recorded counts as done: no wait.
        """
        self._require_open()
        event._require_open()
        call(cudart.cudaStreamWaitEvent, self._stream, event._event, cudart.cudaEventWaitDefault)

    def _release(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            call(cudart.cudaStreamDestroy, stream)

    def __repr__(self) -> str:
        """Show the handle; makes no CUDA call (``__del__`` uses it)."""
        state = "closed" if self._closed else f"handle=0x{self._handle:x}"
        return f"Stream({state})"


class Event(Owned):
    """A CUDA event, for ordering work across streams and for waiting on the host.

    The event is created with ``cudaEventBlockingSync``: :meth:`synchronize` then puts
    the waiting thread to sleep until the GPU signals, instead of spinning a CPU core at
    100% (cuda-python's ``cuda.core`` documents that its ``Event.sync()`` busy-waits
    otherwise). The GPU thread shares the CPU with the asyncio loop and the audio
    callback, so a spinning wait would steal their time; the price is a few tens of
    microseconds of wake-up latency.

    Args:
        timing: Record timestamps, so that :meth:`elapsed_ms` works. Off by default:
            events without timing are cheaper to record and to wait on
            (``cudaEventDisableTiming``).
    """

    def __init__(self, *, timing: bool = False) -> None:
        """Create the event on the calling thread's current device."""
        flags = cudart.cudaEventBlockingSync
        if not timing:
            flags |= cudart.cudaEventDisableTiming
        self._timing = timing
        self._event: Any = call(cudart.cudaEventCreateWithFlags, flags)
        self._closed = False

    @property
    def timing(self) -> bool:
        """Whether this event records timestamps (``Event(timing=True)``)."""
        return self._timing

    def record(self, stream: Stream) -> None:
        """Capture the work queued on ``stream`` so far; the event completes after it."""
        self._require_open()
        stream._require_open()  # A closed stream's None would mean the legacy default stream.
        call(cudart.cudaEventRecord, self._event, stream._stream)

    def synchronize(self) -> None:
        """Block (sleeping) until the work captured by the last :meth:`record` is done."""
        self._require_open()
        call(cudart.cudaEventSynchronize, self._event)

    def query(self) -> bool:
        """Return whether the captured work is done, without blocking.

        An event that was never recorded counts as done.
        """
        self._require_open()
        result = cudart.cudaEventQuery(self._event)
        if result[0] == cudart.cudaError_t.cudaErrorNotReady:
            return False
        check(result, "cudaEventQuery")  # Raises for any error other than "not ready".
        return True

    def elapsed_ms(self, end: Event) -> float:
        """Return the milliseconds of GPU time from this event to ``end``.

        Both events must have been created with ``timing=True`` and have completed.

        Raises:
            ValueError: One of the events does not record timestamps.
            CudaError: ``cudaErrorNotReady`` if one has not completed yet.
        """
        self._require_open()
        end._require_open()
        if not (self._timing and end._timing):
            raise ValueError("elapsed_ms() needs two events created with Event(timing=True).")
        return float(call(cudart.cudaEventElapsedTime, self._event, end._event))

    def _release(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            call(cudart.cudaEventDestroy, event)

    def __repr__(self) -> str:
        """Show the flags; makes no CUDA call (``__del__`` uses it)."""
        state = "closed" if self._closed else f"timing={self._timing}"
        return f"Event({state})"
