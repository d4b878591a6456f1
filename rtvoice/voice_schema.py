"""The schema of ``voice.json`` is the config dataclasses themselves: types and ranges.

:func:`build` turns parsed JSON into a (nested) frozen dataclass, checking each value
against the field's type annotation and, where the field carries one (:func:`bounded`),
its range. :func:`check_ranges` applies the same ranges to a dataclass built in Python
(``SynthesisConfig``'s ``__post_init__``), and the CLI reads them (:func:`range_of`) to
refuse nonsense at parse time. One definition of each range, no second schema document to
drift out of date.

Why not jsonschema: the dataclasses already say every field's type and default, so a
JSON Schema would be a second copy of them; the checks below are the few rules a
voice.json needs (JSON scalars, lists, string maps, nested objects, closed ranges), with
errors that name the key path (``voice.audio.sample_rate``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, Final, TypeVar, Union

from .errors import VoiceError
from .inputs import a_json_type, json_type

RANGE_KEY: Final = "range"

T = TypeVar("T")


def bounded(low: float, high: float) -> dict[str, tuple[float, float]]:
    """Field metadata for a closed range ``[low, high]``: ``field(default=..., metadata=bounded(1, 8))``."""
    return {RANGE_KEY: (low, high)}


def range_of(cls: type[Any], name: str) -> tuple[float, float] | None:
    """The range a dataclass field declares with :func:`bounded`, or ``None``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            found = f.metadata.get(RANGE_KEY)
            return None if found is None else (found[0], found[1])
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def describe_range(low: float, high: float) -> str:
    """``from 1 to 20000`` (or ``at least 0``), written the way the numbers were declared."""
    if high == math.inf:
        return f"at least {low:g}"
    return f"from {low:g} to {high:g}" if isinstance(low, float) or isinstance(high, float) else f"from {low} to {high}"


def out_of_range(value: float, low: float, high: float) -> bool:
    """True for NaN, infinities beyond the range, and everything outside ``[low, high]``."""
    if isinstance(value, float) and math.isnan(value):
        return True
    return not low <= value <= high


def check_ranges(obj: Any, where: str | None = None) -> None:
    """Raise ValueError naming the first field of dataclass ``obj`` outside its declared range.

    ``None`` values (the "use the default" of per-request settings) are not checked.
    """
    where = where or type(obj).__name__
    for f in dataclasses.fields(obj):
        bounds = f.metadata.get(RANGE_KEY)
        value = getattr(obj, f.name)
        if bounds is None or value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if out_of_range(value, *bounds):
            raise ValueError(f"{where}.{f.name} must be {describe_range(*bounds)}, got {show(value)}.")


def build(cls: type[T], data: Any, where: str) -> T:
    """Construct dataclass ``cls`` from JSON ``data``, refusing unknown keys, wrong types and ranges.

    Raises:
        VoiceError: naming the key path (``voice.audio.sample_rate``) and what is wrong.
    """
    if not isinstance(data, dict):
        raise VoiceError(f"{where}: expected an object, got {_json_type(data)}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in set(data) - set(fields))
    if unknown:
        raise VoiceError(f"{where}: unknown key(s) {unknown}.")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _value(hints[name], value, f"{where}.{name}")
        bounds = fields[name].metadata.get(RANGE_KEY)
        if bounds is not None and kwargs[name] is not None and out_of_range(kwargs[name], *bounds):
            raise VoiceError(f"{where}.{name} must be {describe_range(*bounds)}, got {show(value)}.")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # ValueError: a __post_init__ check
        raise VoiceError(f"{where}: {exc}") from exc


def _value(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against type ``hint`` (and converted: lists to tuples, ints to floats)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _value(inner, value, where)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)  # type: ignore[arg-type]
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise VoiceError(f"{where}: expected true or false, got {_json_type(value)}.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise VoiceError(f"{where}: expected an integer, got {_json_type(value)}.")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise VoiceError(f"{where}: expected a finite number, got {_json_type(value)}.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise VoiceError(f"{where}: expected a string, got {_json_type(value)}.")
        return value
    if origin is typing.Literal:
        if value not in typing.get_args(hint) or isinstance(value, bool) != any(
                isinstance(option, bool) for option in typing.get_args(hint)):
            raise VoiceError(f"{where}: expected one of {list(typing.get_args(hint))}, got {_json_type(value)}.")
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise VoiceError(f"{where}: expected a list, got {_json_type(value)}.")
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
            return tuple(_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise VoiceError(f"{where}: expected a list of {len(args)}, got {len(value)} items.")
        return tuple(_value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        item = typing.get_args(hint)[1]
        if not isinstance(value, dict):
            raise VoiceError(f"{where}: expected an object, got {_json_type(value)}.")
        return {k: _value(item, v, f"{where}.{_key(k)}") for k, v in value.items()}
    raise TypeError(f"voice_schema cannot check {hint!r} ({where})")  # a field type this module does not know


def _key(key: str) -> str:
    """A JSON object key as an error message shows it.

    Quoted when empty or holding control characters, so a hostile key cannot break the one-line message.
    """
    return key if key and key.isprintable() else json.dumps(key)


def show(value: Any, limit: int = 40) -> str:
    """A repr for an error message, cut to ``limit`` characters; never a huge value whole (nor a 5000-digit int)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a very large integer"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _json_type(value: Any) -> str:
    """A value's JSON type for an error message.

    As :func:`~rtvoice.inputs.a_json_type`, but a number or a string with its value, an array
    as "a list" (these messages' word) and a non-JSON value by its Python type.
    """
    if isinstance(value, list):
        return "a list"
    name = json_type(value)
    if name in ("number", "string"):
        return f"the {name} {show(value)}"
    return a_json_type(value) if name in ("null", "boolean", "object") else type(value).__name__
