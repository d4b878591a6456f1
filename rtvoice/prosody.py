"""How one sentence of a request is delivered: its rate, its gain and the silence around it.

Plain text gives every sentence the request's rate and volume and the voice's sentence
pause; SSML (:mod:`rtvoice.ssml`) sets them per sentence. :class:`~rtvoice.synthesizer.ChunkVocoder`
reads them when it cuts, time-scales and finishes the sentence's chunks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prosody:
    """The delivery of one sentence."""

    rate: float = 1.0
    """Speaking rate: the sentence's mel is time-scaled by it (:mod:`rtvoice.timescale`)."""
    gain: float = 1.0
    """Multiplies the sentence's samples."""
    pause_before_s: float = 0.0
    """Silence before the sentence (an SSML break before the first words)."""
    pause_after_s: float | None = None
    """Silence after it; ``None``: the request's sentence pause at this rate, none after the last."""
