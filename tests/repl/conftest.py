"""Fixtures for the prompt's tests: the fake sound card of tests/playback, and a terminal.

The helpers live in tests/playback (alsa_fake_card.py, fake_portaudio.py); tests/ has no
``__init__.py``, so that folder is put on ``sys.path`` here, explicitly, for ``pytest tests/repl``
to work on its own too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "playback"))

from alsa_fake_card import MakeCard, card_maker  # noqa: E402


@pytest.fixture
def make_card(tmp_path: Path) -> Iterator[MakeCard]:
    """``make_card(Sink(...), ..., no_devices=False)``: see :func:`alsa_fake_card.card_maker`."""
    yield from card_maker(tmp_path)
