"""A real engine passed through, for tests that watch what the synthesizer asks of it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rtvoice.engine.protocol import Engine, Utterance, VocodeItem


class TrackingEngine:
    """Forwards everything to ``inner`` and keeps the ids of the utterances opened and not yet closed.

    Subclasses change one thing (count decoder steps, hold an open back) and keep the rest real.
    """

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.config = inner.config
        self.name, self.device = inner.name, inner.device
        self.open: set[int] = set()

    def open_utterance(self, ids: Sequence[int], max_steps: int) -> Utterance:
        utterance = self.inner.open_utterance(ids, max_steps)
        self.open.add(id(utterance))
        original_close = utterance.close

        def close() -> None:
            self.open.discard(id(utterance))
            original_close()

        utterance.close = close  # type: ignore[method-assign]
        return utterance

    def decode_batch(self, items: Sequence[tuple[Utterance, np.ndarray]]) -> list[np.ndarray]:
        return [utterance.decode(masks) for utterance, masks in items]

    def vocode_batch(self, items: Sequence[VocodeItem]) -> list[np.ndarray]:
        return [item.vocode() for item in items]

    def close(self) -> None:
        pass
