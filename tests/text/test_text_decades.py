"""A decade whose tens word has no "-ty" ("the '10s", "the 10s", "the '00s") is still read as a decade.

The reader made a decade by swapping the last letter of "ninety" for "ies", which turned
"ten" into "teies" and "zero" into "zeries". Found in review (2026-12-07).
"""

from __future__ import annotations

import pytest

from rtvoice.text import normalize


@pytest.mark.parametrize(("raw", "expected"), [
    ("Songs of the '10s.", "songs of the tens."),
    ("Songs of the 10s.", "songs of the tens."),
    ("Songs of the '00s.", "songs of the two thousands."),
    ("Songs of the '90s.", "songs of the nineties."),
    ("Songs of the 90s.", "songs of the nineties."),
    ("Songs of the 1910s.", "songs of the nineteen tens."),
])
def test_every_decade_reads_as_a_decade(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
