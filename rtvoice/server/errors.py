"""The one error a request can be refused with, and its OpenAI-style JSON body.

:class:`ApiError` carries what every protocol needs: an HTTP status, a machine-readable
``code`` and a message. HTTP renders it as OpenAI's ``{"error": {...}}``; the WebSocket
and Wyoming handlers send ``code`` and ``message`` in their own error events.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request the server refuses; the client can act on ``status``, ``code`` and ``param``."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None,
                 type: str = "invalid_request_error", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """Build an OpenAI-style error body.

    Args:
        message: What went wrong, for people.
        type: OpenAI's error class, e.g. ``invalid_request_error`` or ``server_error``.
        param: The request field at fault, if one is.
        code: A stable machine-readable code, e.g. ``voice_not_found``.

    Returns:
        ``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``.
    """
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def invalid(message: str, *, param: str | None, code: str = "invalid_value") -> ApiError:
    """A 400 for a field the client got wrong."""
    return ApiError(400, message, code=code, param=param)
