"""Tests of normalize (NVIDIA english_cleaners) and decode_utf8."""

from __future__ import annotations

import pytest

from rtvoice.errors import TextError
from rtvoice.text import decode_utf8, normalize


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Hello,   World!\n", "hello, world!"),
        ("Dr. Smith and Mrs. Jones", "doctor smith and misess jones"),
        (
            "Mr. Lt. Sgt. Capt. Col. Gen. Maj. Rev.",
            "mister lieutenant sergeant captain colonel general major reverend",
        ),
        (
            "St. Louis, Ft. Worth, Acme Co. Ltd., John Jr., Esq.",
            "saint louis, fort worth, acme company limited, john junior, esquire.",
        ),
        ("Drs. Hon.", "doctors honorable"),
        ("café naïve Ærø", "cafe naive aero"),
        ("\u201cquoted\u201d \u2018single\u2019", "quoted 'single'"),
        ("wait\u2026 \u2014 then", "wait..., then"),
        ("salt & pepper [sic]", "salt and pepper (sic)"),
    ],
)
def test_normalize(raw: str, clean: str) -> None:
    assert normalize(raw) == clean


def test_control_characters_are_removed() -> None:
    assert normalize("a\x00b\x1b[mc\u200bd\ufeffe\x7f") == "ab(mcde"
    assert normalize("tab\there\r\nnew\x0bline") == "tab here new line"


def test_emoji_are_dropped_not_named() -> None:
    # anyascii alone would give ":grinning:".
    assert normalize("Great \U0001f600 news \U0001f44d\U0001f3fd!") == "great news!"


def test_money_is_spelled_before_transliteration() -> None:
    # anyascii would turn these signs into "GBP" and "EUR".
    assert normalize("£5 and €2") == "five pounds and two euros"


def test_normalize_is_idempotent() -> None:
    once = normalize("Dr. Who paid $3.50 on the 1st of May 1984, 50% off.")
    assert normalize(once) == once


def test_output_is_lowercase_ascii_without_digits() -> None:
    out = normalize("ÉCOLE No. 42 costs €1,234.56 — ÜBER 3.5%")
    assert out.isascii() and out == out.lower()
    assert not any(char.isdigit() for char in out)


def test_decode_utf8_accepts_valid_text() -> None:
    assert decode_utf8("héllo €".encode()) == "héllo €"


@pytest.mark.parametrize(
    ("data", "byte", "offset"),
    [(b"ab\xffcd", 0xFF, 2), ("h\u00e9".encode()[:2], 0xC3, 1), (b"\x80", 0x80, 0)],
)
def test_decode_utf8_rejects_invalid_bytes(data: bytes, byte: int, offset: int) -> None:
    with pytest.raises(
        TextError, match=rf"not valid UTF-8 \(byte 0x{byte:02x} at offset {offset}\)"
    ) as info:
        decode_utf8(data)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)
    assert info.value.length == len(data)


def test_a_colon_glued_between_words_is_a_word_break() -> None:
    # LJSpeech writes times as "one:twenty-two"; a voice reading the colon says "colon".
    assert normalize("at one:twenty-two p.m.") == "at one twenty-two p m"
    assert normalize("Note: this stays.") == "note: this stays."
