"""The one door to TensorRT: the imported module, its version, and a logger that keeps errors.

Every other module of :mod:`rtvoice.trt` gets TensorRT from :func:`load`; nothing else in
rtvoice imports it. Importing *this* module imports no TensorRT, so the pure parts of the
package (profiles, cache keys) work where TensorRT is not installed.

The TensorRT-RTX fallback, and why it is here at all
----------------------------------------------------
rtvoice targets full TensorRT (10.x or 11.x, ``import tensorrt``). That cannot be installed
on the machines this project is developed and tested on, but TensorRT-RTX
(``tensorrt-rtx-cu13-bindings``, imported as ``tensorrt_rtx_bindings``) can, and its ONNX
parser and builder run without a GPU. So ``load(allow_rtx=True)`` — and only that — falls
back to TensorRT-RTX, which lets the test suite check on a CPU that our four ONNX graphs
and their optimization profiles are accepted by a TensorRT parser and builder.

RTX is not a drop-in TensorRT; the differences that matter here, checked on 1.7.1.116:

- no ``BuilderFlag.FP16`` (as in TensorRT 11, precision lives in the graph's types), so an
  FP16 request builds as TF32 (see :func:`rtvoice.trt.build.effective_precision`);
- timing-cache calls are deprecated no-ops that emit a ``DeprecationWarning``: the build
  skips the timing cache on RTX;
- its plans run only on compute capability 8.0, 8.6, 8.9 and 12.x (not on the H100), and
  the runtime of this package refuses them: :func:`load` is called without ``allow_rtx``
  there.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any, Final

from ..errors import EngineError

log = logging.getLogger("rtvoice.trt")

FULL: Final = "tensorrt"
"""Flavor name of NVIDIA TensorRT (``import tensorrt``)."""
RTX: Final = "tensorrt-rtx"
"""Flavor name of TensorRT for RTX (``import tensorrt_rtx_bindings``), build checks only."""
RTX_MODULE: Final = "tensorrt_rtx_bindings"
INSTALL_HINT: Final = "Hint: pip install 'rtvoice[tensorrt]' (or 'tensorrt-cu13'), or use NVIDIA's TensorRT container."


@dataclass(frozen=True)
class TensorRT:
    """An imported TensorRT module and what it is."""

    module: Any
    """The module: ``tensorrt``, or ``tensorrt_rtx_bindings`` when :attr:`flavor` is RTX."""
    flavor: str
    """:data:`FULL` or :data:`RTX`."""
    version: str
    """The module's ``__version__``, for example ``"10.13.3.9"``."""

    @property
    def label(self) -> str:
        """Flavor and version, as written into the cache key: ``"tensorrt 10.13.3.9"``."""
        return f"{self.flavor} {self.version}"

    def has_builder_flag(self, name: str) -> bool:
        """Whether ``BuilderFlag.<name>`` exists (``FP16`` is gone in TensorRT 11 and RTX)."""
        return hasattr(self.module.BuilderFlag, name)


def is_installed(*, allow_rtx: bool = False) -> bool:
    """Return whether :func:`load` would find a TensorRT module, without importing it."""
    if importlib.util.find_spec("tensorrt") is not None:
        return True
    return allow_rtx and importlib.util.find_spec(RTX_MODULE) is not None


def load(*, allow_rtx: bool = False) -> TensorRT:
    """Import TensorRT.

    Args:
        allow_rtx: Fall back to TensorRT-RTX when ``tensorrt`` is missing. Only for the
            build check (see the module docstring); never for running engines.

    Returns:
        The module and its flavor and version.

    Raises:
        EngineError: Neither module can be imported.
    """
    try:
        module = importlib.import_module("tensorrt")
    except ImportError as exc:
        if not allow_rtx:
            raise EngineError(f"TensorRT is not installed ({exc}). {INSTALL_HINT}") from exc
        try:
            module = importlib.import_module(RTX_MODULE)
        except ImportError as rtx_exc:
            raise EngineError(
                f"Neither TensorRT nor TensorRT-RTX can be imported ({exc}; {rtx_exc}). {INSTALL_HINT}"
            ) from rtx_exc
        return TensorRT(module, RTX, str(module.__version__))
    return TensorRT(module, FULL, str(module.__version__))


class RecordingLogger:
    """The interface of the logger :func:`new_logger` returns (a ``trt.ILogger`` subclass).

    TensorRT reports the reason for most failures only to its logger, while the call
    itself returns ``None`` or ``False``. This logger keeps the error messages, so the
    :class:`~rtvoice.errors.EngineError` raised for the failed call can quote them;
    warnings go to Python logging at WARNING, info at DEBUG, verbose nowhere.
    """

    errors: list[str]

    def take_errors(self) -> list[str]:
        """Return the errors recorded since the last call, and forget them."""
        raise NotImplementedError


@functools.cache
def _logger_class(module: Any) -> type[RecordingLogger]:
    severity = module.ILogger.Severity
    errors = {severity.INTERNAL_ERROR, severity.ERROR}

    class _Logger(module.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            module.ILogger.__init__(self)  # pybind11 needs the base initialized explicitly
            self.errors: list[str] = []

        def log(self, sev: Any, msg: str) -> None:
            # Called by TensorRT on the calling thread, possibly many times per build.
            if sev in errors:
                self.errors.append(msg)
                log.debug("TensorRT error: %s", msg)  # quoted by the EngineError of the failed call
            elif sev == severity.WARNING:
                log.warning("TensorRT: %s", msg)
            elif sev == severity.INFO:
                log.debug("TensorRT: %s", msg)

        def take_errors(self) -> list[str]:
            taken, self.errors = self.errors, []
            return taken

    return _Logger


def new_logger(trt: TensorRT) -> RecordingLogger:
    """Return a fresh logger for one builder or runtime of ``trt``."""
    return _logger_class(trt.module)()


def with_errors(message: str, logger: RecordingLogger) -> str:
    """Append the logger's recorded errors (taken) to ``message``, as a ``Note:``."""
    errors = logger.take_errors()
    if not errors:
        return message
    shown = "; ".join(e.strip().replace("\n", " ") for e in errors[-5:])
    more = f" ({len(errors) - 5} earlier errors not shown)" if len(errors) > 5 else ""
    return f"{message} Note: TensorRT said: {shown}{more}."
