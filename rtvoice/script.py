"""A request's text as the synthesizer speaks it: sentences, each with its prosody.

Plain text is planned as :func:`rtvoice.synthesizer.plan` plans it, and every
sentence gets the request's rate and volume. SSML (explicitly, or text starting with
``<speak``) is parsed into segments (:mod:`rtvoice.ssml`); each text segment is planned
the same way, its rate and volume multiply the request's (kept within the configured
ranges), and breaks become the silence between the sentences around them.

Reading out (normalizing) is the first step of both, and :func:`read` does it alone: a
caller that must count a text's spoken length before it is spoken (the WebSocket queue,
against ``max_spoken_chars``) hands the :class:`Reading` to :func:`prepare` later, so each
text is normalized once, and what was counted is what is said.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import RATE_RANGE, VOLUME_RANGE, ResolvedSynthesis, VoiceConfig
from .errors import TextError
from .prosody import Prosody
from .ssml import Break, Segment, is_ssml, parse
from .synthesizer import Sentence, check_text, plan_read_out, read_out, spoken_too_long


@dataclass(frozen=True)
class Script:
    """The sentences of one request, in order, and how each is delivered (same length)."""

    sentences: list[Sentence]
    prosody: list[Prosody]


@dataclass(frozen=True)
class Reading:
    """A request's text validated and read out (normalized) by one voice, not yet planned."""

    text: str
    """As sent."""
    said: tuple[str | None, ...]
    """Each segment as read out (``None``: a break, or blank); plain text is one segment."""
    segments: tuple[Segment, ...] | None
    """SSML's parsed segments, ``said``'s length; ``None`` for plain text."""

    @property
    def length(self) -> int:
        """Characters as read out: what ``max_spoken_chars`` counts."""
        return sum(len(said) for said in self.said if said is not None)


def wants_ssml(text: str, ssml: bool | None) -> bool:
    """``ssml`` if given, else whether ``text`` starts with ``<speak``."""
    return ssml if ssml is not None else isinstance(text, str) and is_ssml(text)


def read(text: str, voice: VoiceConfig, ssml: bool | None = None) -> Reading:
    """Validate ``text`` and read it out as ``voice`` does, once; :func:`prepare` plans the result.

    Args:
        text: Plain text, or SSML (``ssml``, or text starting with ``<speak``).
        voice: Whose reading rules (date order, letter names) and character limit apply.
        ssml: As :attr:`rtvoice.config.SynthesisConfig.ssml`.

    Raises:
        TextError: not a string, too long as sent, or empty (SsmlError: malformed SSML).
    """
    if not wants_ssml(text, ssml):
        check_text(text, voice)
        return Reading(text, (read_out(text, voice),), None)
    check_text(text, voice, what="SSML", blank_ok=True)
    segments = tuple(parse(text))
    said = tuple(None if isinstance(segment, Break) or not segment.text.strip() else read_out(segment.text, voice)
                 for segment in segments)
    return Reading(text, said, segments)


def prepare(text: str | Reading, voice: VoiceConfig, settings: ResolvedSynthesis) -> Script:
    """Validate ``text`` and plan it; raises TextError (SsmlError for bad SSML) before any audio.

    A :class:`Reading` (made by :func:`read` with this ``voice``) is planned as it is, not
    read out again; ``settings.ssml`` then no longer applies.
    """
    reading = text if isinstance(text, Reading) else read(text, voice, settings.ssml)
    what = "Text" if reading.segments is None else "SSML"
    if reading.length > settings.max_spoken_chars:
        raise spoken_too_long(what, len(reading.text), reading.length, settings.max_spoken_chars)
    if reading.segments is None:
        said = reading.said[0]
        assert said is not None
        sentences = plan_read_out(said, voice, len(reading.text))
        return Script(sentences, [Prosody(settings.rate, settings.volume)] * len(sentences))
    return _from_ssml(reading, voice, settings)


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def _from_ssml(reading: Reading, voice: VoiceConfig, settings: ResolvedSynthesis) -> Script:
    assert reading.segments is not None
    sentences: list[Sentence] = []
    prosody: list[Prosody] = []
    lead = 0.0
    explicit: float | None = None  # <break>s since the last sentence
    soft: float | None = None  # a paragraph's end since the last sentence
    # Each text segment was read out once (read()): counted against max_spoken_chars as a whole, now planned.
    for segment, said in zip(reading.segments, reading.said, strict=True):
        if isinstance(segment, Break):
            if segment.explicit:
                explicit = (explicit or 0.0) + segment.seconds
            else:
                soft = max(soft or 0.0, segment.seconds)
            continue
        if said is None:
            continue  # blank: nothing to say
        try:
            planned = plan_read_out(said, voice, len(segment.text))
        except TextError:
            continue  # only punctuation (e.g. "." after a </prosody>): nothing to say, nothing lost
        delivery = Prosody(_clamp(settings.rate * segment.rate, RATE_RANGE),
                           _clamp(settings.volume * segment.volume, VOLUME_RANGE))
        for i, sentence in enumerate(planned):
            if sentences:
                gap = explicit if explicit is not None else soft
                if gap is None and i == 0 and segment.continues:
                    gap = 0.0  # the same sentence goes on at another rate or volume
                prosody[-1] = dataclasses.replace(prosody[-1], pause_after_s=gap)
            else:
                lead = explicit or 0.0
            explicit = soft = None
            sentences.append(Sentence(len(sentences), sentence.text, sentence.ids))
            prosody.append(delivery)
    if not sentences:
        raise TextError("SSML has nothing speakable.", length=len(reading.text))
    if explicit:
        prosody[-1] = dataclasses.replace(prosody[-1], pause_after_s=explicit)
    if lead:
        prosody[0] = dataclasses.replace(prosody[0], pause_before_s=lead)
    return Script(sentences, prosody)
