"""An amount in inches before a noun takes the singular, like every other unit ("a ten kilometer run").

"a 5 in. pipe" read "a five inches pipe": the "in." reader, added for "Add 15 in.", did not
ask measures' before-a-noun rule that "a 10 km run" and "a $20 bill" do. Found in review (2026-12-07).
"""

from __future__ import annotations

import pytest

from rtvoice.text import normalize


@pytest.mark.parametrize(("raw", "expected"), [
    ("Fit a 5 in. pipe here.", "fit a five inch pipe here."),
    ("Use an 8 in. plate.", "use an eight inch plate."),
    ("Add 15 in. of water.", "add fifteen inches of water."),
    ("It is a 10 km run.", "it is a ten kilometer run."),
])
def test_an_amount_in_inches_before_a_noun_is_singular(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
