"""The one error hierarchy of rtvoice.

Every error a caller can act on derives from :class:`RtvoiceError` and carries the
attributes needed to act on it. Bugs in rtvoice itself raise :class:`InternalError`,
which deliberately is *not* an :class:`RtvoiceError`, so that ``except RtvoiceError``
never hides one.
"""

from __future__ import annotations


class RtvoiceError(Exception):
    """Base class of every error rtvoice reports to its users."""


class TextError(RtvoiceError, ValueError):
    """The text cannot be spoken: empty after cleaning, too long, or not decodable."""

    def __init__(self, message: str, *, length: int | None = None, limit: int | None = None) -> None:
        super().__init__(message)
        self.length = length
        self.limit = limit


class SsmlError(TextError):
    """SSML that is malformed, unsafe (a DTD, entities) or outside the supported subset."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class InputError(RtvoiceError, ValueError):
    """A message from a client is malformed: not JSON, nested too deeply, or the wrong shape."""


class VoiceError(RtvoiceError):
    """A voice folder is missing, incomplete or corrupt."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class CheckpointError(RtvoiceError):
    """A checkpoint does not match the model architecture (names the tensor and shapes)."""

    def __init__(
        self,
        message: str,
        *,
        tensor: str | None = None,
        expected: tuple[int, ...] | None = None,
        found: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(message)
        self.tensor = tensor
        self.expected = expected
        self.found = found


class BackendError(RtvoiceError):
    """A backend (ONNX Runtime, TensorRT, CUDA) is unavailable or failed."""

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend


class CudaError(BackendError):
    """A CUDA runtime/driver call failed; ``code`` is the enum name, ``function`` the call."""

    def __init__(self, message: str, *, code: str, function: str) -> None:
        super().__init__(message, backend="cuda")
        self.code = code
        self.function = function


class EngineError(BackendError):
    """A TensorRT engine could not be built, loaded or run; ``tensor`` names the culprit."""

    def __init__(self, message: str, *, tensor: str | None = None) -> None:
        super().__init__(message, backend="tensorrt")
        self.tensor = tensor


class AudioDeviceError(RtvoiceError):
    """An audio output device is missing, vanished, or refused the stream's format."""


class SlowClientError(RtvoiceError, TimeoutError):
    """A client accepted streamed audio too far behind real time; it was dropped so it holds no synthesis slot."""


class CancelledError(RtvoiceError):
    """A synthesis was cancelled before it finished (barge-in, client gone, shutdown)."""


class InternalError(Exception):
    """A broken invariant inside rtvoice: a bug, please report it. Not an RtvoiceError."""
