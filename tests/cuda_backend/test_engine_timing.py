"""tools/gpu/engine_timing.py gives back every sentence it opened, also when an open fails.

decoder_us_per_step opens B sentences on the engine under test; when the k-th open failed
(say the engine's rows ran out), the ones before it stayed open: rows of a GPU engine the
rest of the check then ran without. Found in review (2026-12-07).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from rtvoice import Voice
from rtvoice.engine.protocol import Utterance
from rtvoice.errors import BackendError

sys.path.insert(0, str(Path(__file__).parents[2] / "tools" / "gpu"))
from engine_timing import decoder_us_per_step  # noqa: E402  # tools/gpu/engine_timing.py


class _Event:
    def close(self) -> None:
        pass


def test_sentences_opened_before_a_failing_open_are_closed(tiny_voice: Voice) -> None:
    inner = tiny_voice.engine
    open_ids: set[int] = set()

    class FailsOnThird:
        config = inner.config

        def open_utterance(self, ids: Sequence[int], max_steps: int) -> Utterance:
            if len(open_ids) == 2:
                raise BackendError("no row left", backend="test")
            utterance = inner.open_utterance(ids, max_steps)
            open_ids.add(id(utterance))
            close = utterance.close

            def closing() -> None:
                open_ids.discard(id(utterance))
                close()

            utterance.close = closing  # type: ignore[method-assign]
            return utterance

    assert inner.config.batching.max_rows >= 3
    with pytest.raises(BackendError, match="no row left"):
        decoder_us_per_step(FailsOnThird(), (3,), 1, _Event, time.monotonic() + 60)
    assert not open_ids, "sentences opened before the failing open stayed open"
