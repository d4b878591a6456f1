"""The one door to cuda-python: the ``cudart`` module, :func:`call`, :func:`check`.

Every cuda-python call returns a tuple ``(err, *values)``. :func:`check` unpacks it in
one place and raises :class:`~rtvoice.errors.CudaError` on failure, so no call site ever
tests ``err`` itself. Call sites read::

    ptr = call(cudart.cudaMalloc, nbytes)

:func:`call` takes the function's name from the function itself; :func:`check` takes
the name explicitly, for the rare result that is not produced by a direct call.

Importing this module never fails: without cuda-python, ``cudart`` is a stand-in that
raises :class:`~rtvoice.errors.BackendError` (with an install hint) on first use, and
:data:`IMPORT_ERROR` says why. :func:`rtvoice.cuda.is_available` reads it.

:class:`Owned` is the lifecycle shared by every wrapper that holds a CUDA handle.
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn, Self

from rtvoice.errors import BackendError, CudaError, InternalError

_log = logging.getLogger(__name__)

__all__ = ["IMPORT_ERROR", "INSTALL_HINT", "Owned", "call", "check", "cudart"]

INSTALL_HINT = "Hint: pip install 'rtvoice[gpu]' (or 'cuda-python>=13,<14')."


class _MissingCudart:
    """Stands in for ``cuda.bindings.runtime`` when cuda-python cannot be imported."""

    def __init__(self, error: ImportError) -> None:
        self._error = error

    def __getattr__(self, name: str) -> NoReturn:
        raise BackendError(
            f"CUDA is unavailable: cuda-python could not be imported ({self._error}). "
            f"Note: rtvoice needed cudart.{name}. {INSTALL_HINT}",
            backend="cuda",
        ) from self._error


IMPORT_ERROR: ImportError | None
try:
    # Importing the runtime bindings loads no driver: cudart is linked into the module and
    # opens libcuda lazily, so on a machine without a driver the import succeeds and the
    # first call returns cudaErrorInsufficientDriver (checked with cuda-bindings 13.3.1).
    from cuda.bindings import runtime as cudart  # type: ignore[import-untyped, unused-ignore]
except ImportError as exc:
    IMPORT_ERROR = exc
    cudart = _MissingCudart(exc)
else:
    IMPORT_ERROR = None


def check(result: tuple[Any, ...], function: str) -> Any:
    """Unpack a cuda-python result tuple, raising on failure.

    Args:
        result: The ``(err, *values)`` tuple a cuda-python function returned.
        function: The name of that function, for the error message (``"cudaMalloc"``).

    Returns:
        ``None`` when the call returns no value, the value itself when it returns one,
        and the tuple of values when it returns several.

    Raises:
        CudaError: ``err`` is not ``cudaSuccess``; ``code`` is the enum name (for example
            ``"cudaErrorMemoryAllocation"``) and ``function`` is ``function``.
    """
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        code = getattr(err, "name", str(err))
        raise CudaError(f"{function} failed with {code}: {_describe(err)}", code=code, function=function)
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return tuple(values)


def call(fn: Callable[..., tuple[Any, ...]], *args: Any) -> Any:
    """Call a cuda-python function and :func:`check` its result under the function's name.

    Args:
        fn: A function of ``cuda.bindings.runtime`` (or ``driver``), e.g. ``cudart.cudaFree``.
        *args: Its arguments.

    Returns:
        What :func:`check` returns for the result.

    Raises:
        CudaError: The call failed.
    """
    return check(fn(*args), fn.__name__)


def _describe(err: Any) -> str:
    """Return CUDA's one-line description of a runtime error code (no driver needed)."""
    if not isinstance(err, cudart.cudaError_t):
        return "no description (not a CUDA runtime error code)"
    status, text = cudart.cudaGetErrorString(err)
    if status != cudart.cudaError_t.cudaSuccess or text is None:
        return "no description"
    return bytes(text).decode(errors="replace")


class Owned(ABC):
    """Lifecycle of a wrapper that owns one CUDA handle.

    ``close()`` is idempotent and releases the handle once; ``with`` calls it on exit;
    ``__del__`` only warns about a leak, because the garbage collector may run it on any
    thread, and CUDA objects are used only on the thread that owns them (the pipeline's
    GPU worker). Subclasses set ``self._closed = False`` once they hold a handle and
    implement :meth:`_release`, which frees the handle and clears the attribute it tested.
    """

    _closed: bool = True  # Class default: a constructor that failed holds nothing.

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run (or the constructor never got a handle)."""
        return self._closed

    def close(self) -> None:
        """Release the handle. Safe to call twice; errors are logged, not raised.

        Cleanup does not raise, so that ``__exit__`` never hides the error that ended the
        ``with`` block; a failure here usually follows an earlier, sticky CUDA error.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._release()
        except BackendError:
            _log.exception("Releasing %s failed; the handle is dropped", type(self).__name__)

    @abstractmethod
    def _release(self) -> None:
        """Free the handle and clear the attribute that holds it (called once)."""

    def _require_open(self) -> None:
        if self._closed:
            raise InternalError(f"{type(self).__name__} is closed. Hint: use it inside its `with` block.")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._closed:
            # No CUDA call here: this may run on any thread, and at interpreter exit.
            message = (
                f"{self!r} was garbage-collected without close(); any CUDA memory or "
                "handle it holds leaks. Hint: use `with` or call close()."
            )
            _log.warning("%s", message)
            warnings.warn(message, ResourceWarning, stacklevel=2, source=self)
