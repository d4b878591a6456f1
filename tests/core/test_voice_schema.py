"""rtvoice.voice_schema: the config dataclasses as voice.json's schema (issue 23 part 4)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from rtvoice.config import SynthesisConfig, VoiceConfig
from rtvoice.errors import VoiceError
from rtvoice.voice_schema import bounded, build, check_ranges, range_of


@dataclass(frozen=True)
class Inner:
    size: int = field(default=4, metadata=bounded(1, 8))
    scale: float = field(default=0.5, metadata=bounded(0.0, 1.0))


@dataclass(frozen=True)
class Outer:
    inner: Inner = Inner()
    order: Literal["mdy", "dmy"] = "mdy"
    pairs: tuple[tuple[str, float], ...] = ()
    names: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    flag: bool = False
    maybe: int | None = None


def test_good_data_is_built_with_lists_as_tuples_and_ints_as_floats() -> None:
    built = build(Outer, {"inner": {"size": 8, "scale": 1}, "order": "dmy", "pairs": [["a", 2]], "names": ["x"],
                          "files": {"k": "v"}, "extra": {"any": [1, {"thing": None}]}, "flag": True, "maybe": None},
                  "o")
    assert built == Outer(Inner(8, 1.0), "dmy", (("a", 2.0),), ("x",), {"k": "v"}, {"any": [1, {"thing": None}]},
                          True, None)
    assert isinstance(built.inner.scale, float)


@pytest.mark.parametrize(("data", "message"), [
    ({"inner": {"size": 9}}, "o.inner.size must be from 1 to 8, got 9."),
    ({"inner": {"size": 2.0}}, "o.inner.size: expected an integer, got the number 2.0."),
    ({"inner": {"size": True}}, "o.inner.size: expected an integer, got a boolean."),
    ({"inner": {"scale": "0.5"}}, "o.inner.scale: expected a finite number, got the string '0.5'."),
    ({"inner": {"size": 10**30}}, "o.inner.size must be from 1 to 8, got a very large integer."),
    ({"inner": []}, "o.inner: expected an object, got a list."),
    ({"order": "ymd"}, "o.order: expected one of ['mdy', 'dmy'], got the string 'ymd'."),
    ({"pairs": [["a"]]}, "o.pairs[0]: expected a list of 2, got 1 items."),
    ({"names": "abc"}, "o.names: expected a list, got the string 'abc'."),
    ({"files": {"k": 1}}, "o.files.k: expected a string, got the number 1."),
    ({"flag": 1}, "o.flag: expected true or false, got the number 1."),
    ({"maybe": "x"}, "o.maybe: expected an integer, got the string 'x'."),
    ({"nope": 1}, "o: unknown key(s) ['nope']."),
])
def test_bad_data_is_one_line_naming_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(VoiceError) as caught:
        build(Outer, data, "o")
    assert str(caught.value) == message


def test_ranges_are_read_by_the_cli_and_checked_in_python() -> None:
    assert range_of(SynthesisConfig, "sigma") == (0.0, 1.0) and range_of(Outer, "flag") is None
    with pytest.raises(ValueError, match=r"SynthesisConfig.sigma must be from 0 to 1, got nan"):
        SynthesisConfig(sigma=math.nan)
    check_ranges(Inner(8, 0.0))
    with pytest.raises(ValueError, match="Inner.size"):
        check_ranges(Inner(0, 0.0))


def test_every_shipped_field_type_is_one_the_schema_knows() -> None:
    """A field type voice_schema cannot check would be a TypeError (a traceback) at load, not a VoiceError."""
    data = json.loads(json.dumps(VoiceConfig(name="x").to_dict()))  # every field, as voice.json holds it
    data["text"]["symbols"] = ["a"]
    rebuilt = VoiceConfig.from_dict(data)
    assert rebuilt.text.symbols == ("a",) and rebuilt.to_dict() == VoiceConfig.from_dict(data).to_dict()
