"""The synchronous synthesis core: text -> sentences -> decoder steps -> mel chunks -> audio.

Three small stages, each usable alone (the async pipeline runs the same stages on two
threads):

- :func:`plan` validates the text and turns it into symbol ids per sentence (eager).
- :func:`decode_sentence` steps the decoder in batches and reports how many frames are
  ready, reading the gate once per batch and trimming the overshoot.
- :class:`ChunkVocoder` cuts ready frames into chunks (small first, larger later), vocodes
  each with context on both sides, and cross-fades the seams. At a rate other than 1 it
  cuts the sentence's time-scaled frames instead (:mod:`rtvoice.timescale`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .audio import AudioChunk, Float32Array, Timing
from .chunking import next_chunk
from .config import ResolvedSynthesis, SynthesisConfig, VoiceConfig
from .engine.protocol import Engine, StopsAtGate, Utterance, VocodeItem
from .engine.randomness import PrenetMasks, noise
from .errors import TextError
from .prosody import Prosody
from .text import split_sentences, text_to_ids
from .text.pieces import normalize_keeping_arpabet, piece_budget
from .timescale import TimeScale

_log = logging.getLogger("rtvoice.synthesis")


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str
    ids: tuple[int, ...]


def spoken_too_long(what: str, sent: int, spoken: int, limit: int) -> TextError:
    """The one error for text longer than ``max_spoken_chars`` read out, whatever the protocol."""
    return TextError(f"{what} has {sent} characters, {spoken} when read out; the limit is {limit} read out. "
                     "Note: numbers and symbols are read as words, and some characters as many letters. "
                     "Hint: send less text at a time.", length=sent, limit=limit)


def read_out(text: str, voice: VoiceConfig) -> str:
    """``text`` normalized as synthesis reads it (ARPAbet groups kept): what ``max_spoken_chars`` counts."""
    return normalize_keeping_arpabet(text, day_first=voice.text.date_order == "dmy",
                                     letter_names=voice.text.letter_names)


def check_text(text: str, voice: VoiceConfig, *, what: str = "Text", blank_ok: bool = False) -> None:
    """Refuse what is no text to read out: not a string, longer than ``text.max_chars`` as sent, or blank.

    Args:
        text: The request's text as sent.
        voice: Whose ``text.max_chars`` applies.
        what: The word the length message starts with ("Text", or "SSML" for markup).
        blank_ok: Skip the blank check: blank SSML is refused later, once parsed, as
            having nothing speakable.
    """
    if not isinstance(text, str):
        raise TextError(f"text must be str, not {type(text).__name__}")
    limit = voice.text.max_chars
    if len(text) > limit:  # also bounds the SSML parser's work, before it starts
        raise TextError(f"{what} has {len(text)} characters; the limit is {limit}.", length=len(text), limit=limit)
    if not blank_ok and not text.strip():
        raise TextError("Text is empty: there is nothing to say.", length=len(text))


def plan(text: str, voice: VoiceConfig, max_spoken_chars: int | None = None) -> list[Sentence]:
    """Validate ``text``, normalize it, and split it into pieces of symbol ids; raises TextError.

    Split after normalization, into pieces the decoder's step limit can say whole
    (:mod:`rtvoice.text.pieces`): numbers grow when spoken, and a piece cut short by the
    limit would lose its end. Text longer than ``max_spoken_chars`` once normalized is
    refused before it is split.
    """
    check_text(text, voice)
    spoken = read_out(text, voice)
    if max_spoken_chars is not None and len(spoken) > max_spoken_chars:
        raise spoken_too_long("Text", len(text), len(spoken), max_spoken_chars)
    return plan_read_out(spoken, voice, len(text))


def plan_read_out(spoken: str, voice: VoiceConfig, length: int) -> list[Sentence]:
    """:func:`plan` of text already normalized by :func:`read_out` (``length``: its characters as sent)."""
    sentences: list[Sentence] = []
    budget = piece_budget(voice.decoder.max_decoder_steps, voice.text.frames_per_char, voice.text.sentence_max_chars)
    for piece in split_sentences(spoken, budget):
        try:
            ids = text_to_ids(piece, voice.text.symbols, normalized=True)
        except TextError:
            continue  # a piece with nothing speakable (e.g. "...") is skipped, not fatal
        sentences.append(Sentence(len(sentences), piece, tuple(ids)))
    if not sentences:
        raise TextError("Text has nothing speakable after cleaning.", length=length)
    return sentences


@dataclass(frozen=True)
class Progress:
    """Decoder frames of one sentence ready for the vocoder."""

    sentence: Sentence
    utterance: Utterance
    ready: int
    """Frames [0, ready) are decoded and final."""
    final: bool
    """True once the gate fired or the step limit was reached; ``ready`` is then the length."""
    truncated: bool = False
    """True when the step limit, not the gate, ended the sentence (never with ``force_steps``)."""


def _preview(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


class SentenceDecoder:
    """The decoding plan of one sentence: which masks to step with, what the gates mean.

    It never touches the engine itself, so the same plan serves the sync core (one
    utterance at a time) and the async pipeline (whose batcher steps many at once). The
    gate is read once per ``gate_check_interval`` steps; frames decoded past the frame where
    it fired (the rest of that batch, or of a step of several frames) are never handed on.
    Limits count frames: a step of r frames may overshoot ``max_decoder_steps``, and the
    overshoot is dropped too.
    """

    def __init__(self, utterance: Utterance, sentence: Sentence, voice: VoiceConfig,
                 settings: ResolvedSynthesis) -> None:
        self.utterance = utterance
        self.sentence = sentence
        self._interval = voice.decoder.gate_check_interval
        self._r = voice.decoder.frames_per_step
        self._masks = PrenetMasks(settings.seed, sentence.index, voice.decoder.prenet_dim,
                                  voice.decoder.prenet_dropout)
        self._logit = voice.decoder.gate_logit
        self._settings = settings
        self._before = 0
        self.done = False

    def next_masks(self) -> npt.NDArray[np.float32] | None:
        """Masks for the next batch of steps, or None once the sentence is decoded."""
        if self.done:
            return None
        self._before = self.utterance.frames
        left = -(-(self._settings.max_decoder_steps - self._before) // self._r)  # steps, the last maybe partial
        return self._masks.take(min(self._interval, left))

    def accept(self, gates: npt.NDArray[np.float32]) -> Progress:
        """Read the per-frame gate logits of the batch just decoded; says how far the frames are final."""
        limit = self._settings.max_decoder_steps
        gates = gates[: limit - self._before]  # a last step of r frames may reach past the limit
        fired = np.flatnonzero(gates > self._logit) if not self._settings.force_steps else np.empty(0)
        if fired.size:
            self.done = True
            return Progress(self.sentence, self.utterance, self._before + int(fired[0]) + 1, True)
        frames = min(self.utterance.frames, limit)
        self.done = frames >= limit
        truncated = self.done and not self._settings.force_steps
        if truncated:
            _log.warning("Sentence %d reached the decoder's step limit (%d frames) before its end, which may be "
                         "unspoken: %r. Hint: raise --max-steps, or the voice's text.frames_per_char so that pieces "
                         "are shorter.", self.sentence.index + 1, limit,
                         _preview(self.sentence.text))
        return Progress(self.sentence, self.utterance, frames, self.done, truncated)


def open_sentence(engine: Engine, sentence: Sentence, settings: ResolvedSynthesis) -> Utterance:
    """``engine.open_utterance`` for ``sentence``, letting the engine stop at its gate unless ``force_steps``.

    :class:`SentenceDecoder` never hands on a frame past the first fired gate, so an engine
    that can stop there (:class:`~rtvoice.engine.protocol.StopsAtGate`) may skip the rest of
    that batch; with ``force_steps`` every step is decoded and used, so it must not. It asks
    through that optional protocol capability, not by testing for one backend's class, so
    this module stays backend-independent and an engine wrapper that does not forward the
    method keeps the full contract. The sync core and the async pipeline both open sentences
    here. The caller owns the utterance.
    """
    utterance = engine.open_utterance(sentence.ids, settings.max_decoder_steps)
    if not settings.force_steps and isinstance(engine, StopsAtGate):
        try:
            engine.stop_at_gate(utterance)
        except BaseException:
            utterance.close()
            raise
    return utterance


def decode_sentence(utterance: Utterance, sentence: Sentence, voice: VoiceConfig,
                    settings: ResolvedSynthesis) -> Iterator[Progress]:
    """Step the decoder of one sentence's ``utterance``; yields after each batch of steps.

    The caller owns (and closes) the utterance.
    """
    plan_ = SentenceDecoder(utterance, sentence, voice, settings)
    while (masks := plan_.next_masks()) is not None:
        yield plan_.accept(utterance.decode(masks))


class Clock:
    """Timing of one request, from its start."""

    def __init__(self, sample_rate: int) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.samples = 0
        self.sample_rate = sample_rate

    def stamp(self, n_samples: int) -> Timing:
        now = time.perf_counter() - self.start
        if self.first is None:
            self.first = now
        self.samples += n_samples
        return Timing(self.first, now, self.samples / self.sample_rate)


@dataclass(frozen=True)
class Window:
    """One chunk of a sentence: frames [a, b), vocoded over [lo, hi) (its context around it).

    Frame numbers count the sentence's frames at its rate (the decoder's own at rate 1);
    ``limit`` is how many of those were ready when the window was cut.
    """

    progress: Progress
    a: int
    b: int
    lo: int
    hi: int
    last_of_sentence: bool
    limit: int = 0


class ChunkVocoder:
    """Turns decoder progress into cross-faded audio chunks, one sentence at a time.

    A chunk of frames [a, b) is vocoded over the window [a - ctx, b + ctx) with the noise of
    exactly those absolute positions, so it equals whole-utterance audio up to WaveGlow's
    (long, decaying) receptive field; ``crossfade_samples`` of the previous chunk's right
    context are blended into the next chunk's head.

    Each sentence's :class:`~rtvoice.prosody.Prosody` (default: the request's rate and
    volume) sets its time scale, its gain and the silence around it.
    """

    def __init__(self, voice: VoiceConfig, settings: ResolvedSynthesis, n_sentences: int, clock: Clock,
                 prosody: list[Prosody] | None = None) -> None:
        self._voice = voice
        self._s = settings
        self._n_sentences = n_sentences
        self._clock = clock
        self._prosody = prosody or [Prosody(settings.rate, settings.volume)] * n_sentences
        self._hop = voice.audio.hop_length
        self._group = voice.vocoder.n_group
        self._offset = 0  # samples emitted for the whole request
        self._start = 0  # next frame to emit in the current sentence
        self._tail: Float32Array | None = None
        self._sentence = -1
        self._size = settings.chunk_frames  # the next later chunk's frames: doubles up to max_chunk_frames

    def _chunk_end(self, start: int) -> int:
        if self._s.whole:
            return 1 << 62
        return start + (self._s.first_chunk_frames if start == 0 else self._size)

    def feed(self, progress: Progress) -> Iterator[AudioChunk]:
        """Emit every chunk that ``progress`` makes ready (none, one, or several)."""
        for window in self.windows(progress):
            yield self.finish(window, self.item(window).vocode())

    def windows(self, progress: Progress) -> list[Window]:
        """The chunks that ``progress`` makes ready, in order; each must then be finished.

        Cheap: the noise is drawn later by :meth:`item`, so the async pipeline can plan on
        the event loop and draw on the vocoder thread.
        """
        if progress.sentence.index != self._sentence:
            self._sentence, self._start, self._tail = progress.sentence.index, 0, None
            self._size = self._s.chunk_frames
        ctx = self._s.context_frames
        need = ctx + self._voice.decoder.postnet_context_frames
        frames = self._scale(progress).frames(progress.ready, progress.final)
        ready: list[Window] = []
        while self._start < frames:
            end = self._chunk_end(self._start)
            if progress.final:
                end = min(end, frames)
            elif end + need > frames:
                break
            last_of_sentence = progress.final and end >= frames
            lo, hi = max(0, self._start - ctx), min(frames, end + ctx)
            ready.append(Window(progress, self._start, end, lo, hi, last_of_sentence, frames))
            if self._start > 0:
                self._size = next_chunk(self._size, self._s.max_chunk_frames)
            self._start = end
        return ready

    def _scale(self, progress: Progress) -> TimeScale:
        return TimeScale(self._prosody[progress.sentence.index].rate)

    def _scaled_mel(self, window: Window) -> npt.NDArray[np.float32] | None:
        """The postnet's input frames of ``window`` at its sentence's rate; None at rate 1 (the engine's own)."""
        scale = self._scale(window.progress)
        if scale.identity:
            return None
        c = self._voice.decoder.postnet_context_frames
        start, stop = max(0, window.lo - c), min(window.limit, window.hi + c)
        p = window.progress
        s0, s1 = scale.source_span(start, stop, p.ready)
        return scale.scale(np.ascontiguousarray(p.utterance.mel(s0, s1).T), s0, start, stop, p.ready)

    def item(self, window: Window) -> VocodeItem:
        """The vocoder's input for ``window``, with its noise (reads only settings: any thread)."""
        cols = self._hop // self._group
        p = window.progress
        z = noise(self._s.seed, p.sentence.index, self._group, window.lo * cols, window.hi * cols, self._s.sigma)
        return VocodeItem(p.utterance, window.lo, window.hi, window.limit or p.ready, z, self._scaled_mel(window))

    def finish(self, window: Window, audio: Float32Array) -> AudioChunk:
        """Cut ``window``'s audio to its chunk and cross-fade the seam; call in window order."""
        a, b, lo, progress = window.a, window.b, window.lo, window.progress
        head = (a - lo) * self._hop
        body = audio[head : head + (b - a) * self._hop].copy()
        fade = min(self._s.crossfade_samples, len(body))
        if self._tail is not None and fade:
            ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
            tail = self._tail[:fade]
            body[: len(tail)] = tail * (1 - ramp[: len(tail)]) + body[: len(tail)] * ramp[: len(tail)]
        self._tail = audio[head + (b - a) * self._hop : head + (b - a) * self._hop + self._s.crossfade_samples]
        is_last = window.last_of_sentence and progress.sentence.index == self._n_sentences - 1
        prosody = self._prosody[progress.sentence.index]
        if prosody.gain != 1.0:
            body *= np.float32(prosody.gain)
        sr = self._voice.audio.sample_rate
        if a == 0 and prosody.pause_before_s > 0:
            body = np.concatenate((np.zeros(int(prosody.pause_before_s * sr), np.float32), body))
        if window.last_of_sentence:
            after = prosody.pause_after_s
            if after is None:  # the voice's pause between sentences, as quick as the speech around it
                after = 0.0 if is_last else self._s.sentence_pause_s / prosody.rate
            if after > 0:
                body = np.concatenate((body, np.zeros(int(after * sr), np.float32)))
        chunk = AudioChunk(body, self._voice.audio.sample_rate, progress.sentence.index, self._offset, is_last,
                           self._clock.stamp(len(body)), window.last_of_sentence and progress.truncated)
        self._offset += len(body)
        return chunk


def synthesize(engine: Engine, text: str, config: SynthesisConfig | None = None) -> Iterator[AudioChunk]:
    """Speak ``text`` with ``engine``: validates eagerly, then yields chunks lazily.

    Raises TextError (before the first chunk) for empty, too long or unspeakable text, and
    SsmlError for bad SSML (``config.ssml``, or text starting with ``<speak``).
    """
    from .script import prepare  # it plans with plan_read_out() above

    settings = (config or SynthesisConfig()).resolve(engine.config)
    script = prepare(text, engine.config, settings)
    return _run(engine, script.sentences, settings, script.prosody)


def _run(engine: Engine, sentences: list[Sentence], settings: ResolvedSynthesis,
         prosody: list[Prosody] | None = None) -> Iterator[AudioChunk]:
    clock = Clock(engine.config.audio.sample_rate)
    vocoder = ChunkVocoder(engine.config, settings, len(sentences), clock, prosody)
    for sentence in sentences:
        utterance = open_sentence(engine, sentence, settings)
        try:
            for progress in decode_sentence(utterance, sentence, engine.config, settings):
                yield from vocoder.feed(progress)
        finally:
            utterance.close()
