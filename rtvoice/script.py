"""A request's text as the synthesizer speaks it: sentences, each with its prosody.

Plain text is planned as it always was (:func:`rtvoice.synthesizer.plan`) and every
sentence gets the request's rate and volume. SSML (explicitly, or text starting with
``<speak``) is parsed into segments (:mod:`rtvoice.ssml`); each text segment is planned
the same way, its rate and volume multiply the request's (kept within the configured
ranges), and breaks become the silence between the sentences around them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import RATE_RANGE, VOLUME_RANGE, ResolvedSynthesis, VoiceConfig
from .errors import TextError
from .prosody import Prosody
from .ssml import Break, is_ssml, parse
from .synthesizer import Sentence, plan, plan_read_out, read_out, spoken_too_long


@dataclass(frozen=True)
class Script:
    """The sentences of one request, in order, and how each is delivered (same length)."""

    sentences: list[Sentence]
    prosody: list[Prosody]


def wants_ssml(text: str, ssml: bool | None) -> bool:
    """``ssml`` if given, else whether ``text`` starts with ``<speak``."""
    return ssml if ssml is not None else isinstance(text, str) and is_ssml(text)


def prepare(text: str, voice: VoiceConfig, settings: ResolvedSynthesis) -> Script:
    """Validate ``text`` and plan it; raises TextError (SsmlError for bad SSML) before any audio."""
    if not wants_ssml(text, settings.ssml):
        sentences = plan(text, voice, settings.max_spoken_chars)
        return Script(sentences, [Prosody(settings.rate, settings.volume)] * len(sentences))
    return _from_ssml(text, voice, settings)


def read_out_length(text: str, voice: VoiceConfig, ssml: bool | None = None) -> int:
    """Characters of ``text`` as read out, as :func:`prepare` counts them against ``max_spoken_chars``.

    For text arriving in pieces (a WebSocket) that is counted before it is spoken; SSML
    (``ssml``, or text starting with ``<speak``) counts its text segments.

    Raises:
        SsmlError: malformed or unsupported SSML.
    """
    if not wants_ssml(text, ssml):
        return len(read_out(text, voice))
    return sum(len(read_out(segment.text, voice)) for segment in parse(text)
               if not isinstance(segment, Break) and segment.text.strip())


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def _from_ssml(text: str, voice: VoiceConfig, settings: ResolvedSynthesis) -> Script:
    if not isinstance(text, str):
        raise TextError(f"text must be str, not {type(text).__name__}")
    limit = voice.text.max_chars
    if len(text) > limit:  # bounds the parser's work, before it starts
        raise TextError(f"SSML has {len(text)} characters; the limit is {limit}.", length=len(text), limit=limit)
    sentences: list[Sentence] = []
    prosody: list[Prosody] = []
    lead = 0.0
    explicit: float | None = None  # <break>s since the last sentence
    soft: float | None = None  # a paragraph's end since the last sentence
    segments = parse(text)
    # Each text segment read out once: counted against max_spoken_chars as a whole, then planned.
    said = [None if isinstance(segment, Break) or not segment.text.strip() else read_out(segment.text, voice)
            for segment in segments]
    spoken = sum(len(s) for s in said if s is not None)
    if spoken > settings.max_spoken_chars:
        raise spoken_too_long("SSML", len(text), spoken, settings.max_spoken_chars)
    for segment, read in zip(segments, said, strict=True):
        if isinstance(segment, Break):
            if segment.explicit:
                explicit = (explicit or 0.0) + segment.seconds
            else:
                soft = max(soft or 0.0, segment.seconds)
            continue
        if read is None:
            continue  # blank: nothing to say
        try:
            planned = plan_read_out(read, voice, len(segment.text))
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
        raise TextError("SSML has nothing speakable.", length=len(text))
    if explicit:
        prosody[-1] = dataclasses.replace(prosody[-1], pause_after_s=explicit)
    if lead:
        prosody[0] = dataclasses.replace(prosody[0], pause_before_s=lead)
    return Script(sentences, prosody)
