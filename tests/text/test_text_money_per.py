"""What a price is for, after a slash, whichever side of the amount its currency is written on.

"$9.99/month" and "USD 9.99/month" were read "... a month", but "9.99 USD/month" was read
"... slash month": only two of money.py's three patterns went through its per-reading.
Found in review (2026-12-07).
"""

from __future__ import annotations

import pytest

from rtvoice.text import normalize


@pytest.mark.parametrize(("raw", "expected"), [
    ("Plans from $9.99/month.", "plans from nine dollars, ninety-nine cents a month."),
    ("Plans from USD 5/month.", "plans from five dollars a month."),
    ("Plans from 5 USD/month.", "plans from five dollars a month."),
    ("Rooms at 80 EUR/night.", "rooms at eighty euros a night."),
    ("Tickets cost 20-30 EUR/person.", "tickets cost twenty to thirty euros per person."),
    ("It costs 5 USD, then 7 USD.", "it costs five dollars, then seven dollars."),
])
def test_a_price_per_period_reads_alike_with_the_code_before_or_after(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
