"""Tests of number, ordinal and currency expansion, through normalize."""

from __future__ import annotations

import pytest

from rtvoice.text import normalize


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("0", "zero"),
        ("7", "seven"),
        ("42", "forty-two"),
        ("101", "one hundred one"),
        ("1000", "one thousand"),
        ("1,000,000", "one million"),
        ("1,234", "one thousand, two hundred thirty-four"),
        ("3.5", "three point five"),
        ("3.14", "three point one four"),
        ("0.05", "zero point zero five"),
        ("-4", "minus four"),
        ("(-2.5)", "(minus two point five)"),
        ("50%", "fifty percent"),
        ("12.5 %", "twelve point five percent"),
        ("007", "zero zero seven"),
        (
            "1234567890123456",
            "one two three four five six seven eight nine zero one two three four five six",
        ),
    ],
)
def test_cardinals_and_decimals(raw: str, spoken: str) -> None:
    assert normalize(raw) == spoken


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("1st", "first"),
        ("2nd", "second"),
        ("3rd", "third"),
        ("4th", "fourth"),
        ("11th", "eleventh"),
        ("22nd", "twenty-second"),
        ("103rd", "one hundred third"),
        ("1,000th", "one thousandth"),
    ],
)
def test_ordinals(raw: str, spoken: str) -> None:
    assert normalize(raw) == spoken


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("1984", "nineteen eighty-four"),
        ("1900", "nineteen hundred"),
        ("2005", "two thousand five"),
        ("2024", "twenty twenty-four"),
    ],
)
def test_years_between_1000_and_3000_read_in_pairs(raw: str, spoken: str) -> None:
    assert normalize(raw) == spoken


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("$3.50", "three dollars, fifty cents"),
        ("$1", "one dollar"),
        ("$1.01", "one dollar, one cent"),
        ("$0.50", "fifty cents"),
        ("$.5", "fifty cents"),
        ("$0", "zero dollars"),
        ("$1,000,000", "one million dollars"),
        ("$2.5 million", "two point five million dollars"),
        ("$1.005", "one point zero zero five dollars"),
        ("-$5", "minus five dollars"),
        ("£3.50", "three pounds, fifty pence"),
        ("£0.01", "one penny"),
        ("€2.05", "two euros, five cents"),
        ("€1", "one euro"),
    ],
)
def test_currency(raw: str, spoken: str) -> None:
    assert normalize(raw) == spoken


def test_hyphen_between_numbers_is_not_a_minus() -> None:
    assert normalize("pages 3-5") == "pages three to five"


def test_numbers_inside_a_sentence() -> None:
    assert normalize("On May 1st, 1984, I paid $3.50 for 2 apples.") == (
        "on may first, nineteen eighty-four, i paid three dollars, fifty cents for two apples."
    )


def test_huge_numbers_do_not_crash() -> None:
    spoken = normalize("1" + ",000" * 40)
    assert spoken.startswith("one") and not any(char.isdigit() for char in spoken)
