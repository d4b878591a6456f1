"""Errors of the MQTT announcer, and the reason codes its ``failed`` events carry.

Both classes derive from :class:`rtvoice.errors.RtvoiceError`, so the CLI reports them as
one line. (They belong in ``rtvoice/errors.py`` once the announcer is merged.)
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from ..errors import RtvoiceError

if TYPE_CHECKING:
    from .messages import HermesRequest


class Reason(StrEnum):
    """Why an announcement failed: the ``reason`` field of a ``failed`` event (a stable API)."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    INVALID_FIELD = "invalid_field"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    INVALID_TEXT = "invalid_text"
    UNKNOWN_VOICE = "unknown_voice"
    QUEUE_FULL = "queue_full"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    SHUTDOWN = "shutdown"
    SYNTHESIS_ERROR = "synthesis_error"
    PLAYBACK_ERROR = "playback_error"
    INTERNAL_ERROR = "internal_error"


class MessageError(RtvoiceError, ValueError):
    """A message cannot be accepted; ``reason`` is the code published in the ``failed`` event.

    ``id`` is the announcement id when the message got far enough to name one, and
    ``hermes`` the Hermes request it answers, so that the caller can still be told.
    """

    def __init__(self, reason: Reason, message: str, *, id: str | None = None,
                 hermes: HermesRequest | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.id = id
        self.hermes = hermes


class ConfigError(RtvoiceError, ValueError):
    """The announcer's settings are unusable (a bad broker URL, prefix or group name)."""

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option
