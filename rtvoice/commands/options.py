"""Validated option types shared by every command: numbers in range, voices, output files.

Each function here is an argparse ``type=``: a bad value is a usage error at parse time
(one line on stderr, exit status 2), never a traceback or a silent "not set". Ranges are
not written here: :func:`config_number` reads them from the config dataclasses
(``field(metadata=bounded(lo, hi))``), so the CLI, the library and voice.json agree.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ..voice_schema import describe_range, out_of_range, range_of, show

PORT_RANGE: Final = (1, 65535)
"""TCP ports one can listen on by number (0 would pick a random one nobody could find)."""


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` says each option's default, where it has one worth saying.

    Unlike argparse's ArgumentDefaultsHelpFormatter: no "(default: None)", nothing added to
    a help text that already speaks of its default, and so never the value of a default
    read from the environment (``--token`` from ``$RTVOICE_TOKEN`` would print the secret).
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (not action.option_strings or "default" in text.lower()
                or action.default in (None, False, [], argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


def config_number(cls: type[Any], name: str, kind: type[int] | type[float] = int) -> Callable[[str], Any]:
    """An argparse type for dataclass field ``cls.name``, checked as the dataclass checks it.

    A field that declares its range (``metadata=bounded(lo, hi)``) is checked against it;
    otherwise the dataclass is built with just this field set, so its ``__post_init__``
    (``LimitsConfig``'s "must be at least 1", say) refuses the value at parse time.
    """
    bounds = range_of(cls, name)
    if bounds is not None:
        return number(kind, *bounds)
    unbounded = number(kind, -math.inf, math.inf)

    def parse(text: str) -> int | float:
        value: int | float = unbounded(text)
        try:
            cls(**{name: value})
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parse.__name__ = kind.__name__
    return parse


def number(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: an ``int`` or finite ``float`` from ``low`` to ``high`` (both included)."""

    def parse(text: str) -> int | float:
        try:
            value: int | float = int(text, 10) if kind is int else float(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {_show(text)}") from None
        finite = not isinstance(value, float) or math.isfinite(value)
        if not finite and not (math.isfinite(low) and math.isfinite(high)):  # no range worth quoting
            raise argparse.ArgumentTypeError(f"expected a finite number, got {_show(text)}")
        if not finite or out_of_range(value, low, high):
            raise argparse.ArgumentTypeError(f"must be {describe_range(low, high)}, got {_show(text)}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def port(text: str) -> int:
    """A TCP port to listen on, 1-65535."""
    value: int = number(int, *PORT_RANGE)(text)
    return value


def voice(text: str) -> Path:
    """``--voice``: an installed voice's name (``rtvoice voices``) or a voice folder's path."""
    from ..errors import VoiceError
    from ..voices_dir import resolve_voice

    try:
        return resolve_voice(text)
    except VoiceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def output_file(text: str) -> Path:
    """``--out``: a file we can create, in a format we can write, checked before any synthesis.

    Refused here: an empty name, a folder, a missing parent folder. The format (from the
    extension or ``--format``) is checked by the command, and whether the disk takes the
    bytes by :class:`rtvoice.output.AtomicOutput`, which opens the file before synthesis starts.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("the file name is empty")
    if "\0" in text:
        raise argparse.ArgumentTypeError("the file name holds a NUL character")
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{_show(text)} is a folder; give a file name such as {path / 'out.wav'}")
    parent = path.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {_show(str(parent))} does not exist")
    return path


def _show(text: str) -> str:
    """A value as typed, shortened, for one line of error."""
    return show(text, 60)
