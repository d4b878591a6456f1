"""Fixtures for playback tests: a fake sound card (see alsa_fake_card.py).

Everything that opens a real PortAudio stream runs in a child process; the card, and every
check of what it received, stays in the test process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alsa_fake_card import MakeCard, card_maker


@pytest.fixture
def make_card(tmp_path: Path) -> Iterator[MakeCard]:
    """``make_card(Sink(...), ..., no_devices=False)``: see :func:`alsa_fake_card.card_maker`."""
    yield from card_maker(tmp_path)
