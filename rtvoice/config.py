"""Configuration as data: the voice (static, from ``voice.json``) and each request.

Every number that matters (sample rate, hop length, chunk sizes, overlap, gate threshold,
engine profiles) lives here, in frozen dataclasses. ``SynthesisConfig`` fields that are
``None`` mean "use the voice default"; they are resolved in exactly one place,
:meth:`SynthesisConfig.resolve`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Final, Literal

from .errors import VoiceError
from .voice_schema import bounded, build, check_ranges

FORMAT_VERSION: Final = 1
VOICE_FILE: Final = "voice.json"
GRAPH_NAMES: Final = ("encoder", "decoder_step", "postnet", "waveglow")

SEED_RANGE: Final = (0, 2**32 - 1)
"""Seeds of the prenet dropout masks and WaveGlow noise (NumPy's 32-bit seed space)."""
SIGMA_RANGE: Final = (0.0, 1.0)
"""WaveGlow noise scale: 0 is silent-ish and deterministic, 1.0 what WaveGlow was trained at;
more is out of distribution (1e10 was full-scale noise, a blast with --play)."""
CHUNK_FRAMES_RANGE: Final = (1, 1024)
"""Mel frames per streamed chunk; TensorRT profiles stop at a few hundred frames anyway."""
MAX_DECODER_STEPS_RANGE: Final = (1, 20_000)
"""Mel frames one sentence may have: 20,000 frames is ~230 s at 22.05 kHz and hop 256, and
bounds the per-sentence buffers (100,000,000 asked for a 29.8 GiB allocation)."""
SENTENCE_PAUSE_RANGE: Final = (0.0, 10.0)
CONTEXT_FRAMES_RANGE: Final = (0, 512)
RATE_RANGE: Final = (0.5, 2.0)
"""Speaking rate (1.0 the voice's own tempo): the mel is time-scaled before WaveGlow, so
pitch stays; beyond 2x or below 0.5x phonemes lose frames or smear (issue 24)."""
VOLUME_RANGE: Final = (0.0, 2.0)
"""Gain applied to the synthesized samples (before the [-1, 1] clip of 16-bit output)."""
MAX_SPOKEN_CHARS: Final = 32_768
"""Default of :attr:`SynthesisConfig.max_spoken_chars`: 8 times the servers' 4096-character
input limit (6.5 times a voice's default ``text.max_chars``). Measured, read out, ordinary
English is 1.0 times as long as written, 373 assistant and announcement sentences (prices,
dates, versions) 1.57 times (3.5 at most, one sentence), 4096 digits 5 times; ``½`` is 9
times and a transliterated ``ﷺ`` 28 times (115k characters, about 2 h of speech)."""
SPOKEN_CHARS_RANGE: Final = (1, 100_000_000)


@dataclass(frozen=True)
class AudioConfig:
    """The audio parameters the mel spectrograms were computed with."""

    sample_rate: int = field(default=22050, metadata=bounded(8000, 192_000))
    hop_length: int = field(default=256, metadata=bounded(1, 4096))
    win_length: int = field(default=1024, metadata=bounded(1, 16384))
    filter_length: int = field(default=1024, metadata=bounded(1, 16384))
    n_mel_channels: int = field(default=80, metadata=bounded(1, 512))
    mel_fmin: float = field(default=0.0, metadata=bounded(0.0, 96_000.0))
    mel_fmax: float = field(default=8000.0, metadata=bounded(0.0, 96_000.0))


@dataclass(frozen=True)
class TextConfig:
    """The symbol set and text limits."""

    symbols: tuple[str, ...] = ()
    cleaners: str = "english"
    max_chars: int = field(default=5000, metadata=bounded(1, 1_000_000))
    """Longest text accepted by one request; longer text is refused, not truncated."""
    sentence_max_chars: int = field(default=300, metadata=bounded(1, 100_000))
    """Longer sentences are split at clause boundaries, then between words (characters of
    normalized text: "1234567" counts as the 56 characters it is spoken as)."""
    frames_per_char: float = field(default=8.0, metadata=bounded(0.5, 100.0))
    """A generous estimate of the mel frames one normalized character takes to say, so that
    every piece fits the decoder's step limit: pieces get at most max_decoder_steps /
    frames_per_char characters. The default voice takes 4.1-5.5; 8 leaves ~45% headroom."""
    date_order: str = "mdy"
    """How ambiguous numeric dates read: ``mdy`` ("04/05/2026" is April 5th, as in the US) or
    ``dmy`` (May 4th, as in Europe). "25/12/2026" and "12.06.2026" read right either way."""
    letter_names: bool = True
    """Speak letters read one by one by their names ("BBC" -> "bee bee see", "PM" -> "pee em"):
    a character-based voice says a lone "b" badly (see :mod:`rtvoice.text.letters`)."""

    def __post_init__(self) -> None:
        if self.date_order not in ("mdy", "dmy"):
            raise ValueError(f"text.date_order must be 'mdy' or 'dmy', got {self.date_order!r}.")


def threshold_logit(threshold: float) -> float:
    """sigmoid(g) > t  <=>  g > logit(t): comparing logits skips a sigmoid per frame (the cuda kernel too)."""
    if threshold <= 0.0:
        return -math.inf
    if threshold >= 1.0:
        return math.inf
    return math.log(threshold / (1.0 - threshold))


@dataclass(frozen=True)
class DecoderConfig:
    """Tacotron 2 sizes the runtime allocates state for, and the stopping rule."""

    n_mel_channels: int = field(default=80, metadata=bounded(1, 512))
    encoder_embedding_dim: int = field(default=512, metadata=bounded(1, 8192))
    attention_rnn_dim: int = field(default=1024, metadata=bounded(1, 8192))
    decoder_rnn_dim: int = field(default=1024, metadata=bounded(1, 8192))
    attention_dim: int = field(default=128, metadata=bounded(1, 8192))
    prenet_dim: int = field(default=256, metadata=bounded(1, 8192))
    prenet_dropout: float = field(default=0.5, metadata=bounded(0.0, 0.9))
    """NVIDIA keeps prenet dropout on at inference; masks are drawn from the request seed."""
    frames_per_step: int = field(default=1, metadata=bounded(1, 16))
    """Mel frames each decoder step makes (Tacotron 2's reduction factor r; NVIDIA's is 1).

    A step of r frames feeds the last of them back and has one gate logit per frame, so a
    sentence may end mid-step. Fewer, larger steps: r times fewer sequential runs per second
    of speech.
    """
    gate_threshold: float = field(default=0.5, metadata=bounded(0.0, 1.0))
    """A sentence ends at the first frame whose sigmoid(gate logit) exceeds it."""
    max_decoder_steps: int = field(default=2000, metadata=bounded(*MAX_DECODER_STEPS_RANGE))
    """The most mel frames a sentence may have (frames, whatever ``frames_per_step``)."""
    gate_check_interval: int = field(default=8, metadata=bounded(1, 1024))
    """Steps between reads of the gate, so the host does not wait on the device every step."""
    postnet_context_frames: int = field(default=10, metadata=bounded(0, 1024))
    """Frames of receptive field on each side of the postnet: its exact context."""

    def __post_init__(self) -> None:
        if self.frames_per_step < 1:
            raise ValueError(f"decoder.frames_per_step must be at least 1, got {self.frames_per_step}.")

    @property
    def step_width(self) -> int:
        """Floats of one step's mel output (and of its fed-back input): r frames of n_mel."""
        return self.frames_per_step * self.n_mel_channels

    @property
    def gate_logit(self) -> float:
        """``gate_threshold`` as a logit, which the synthesizer and the cuda kernel compare gates against."""
        return threshold_logit(self.gate_threshold)

    def frame_room(self, frames: int) -> int:
        """Room for ``frames`` decoded frames: whole steps, so the last step's overshoot fits."""
        r = self.frames_per_step
        return -(-frames // r) * r


@dataclass(frozen=True)
class VocoderConfig:
    """WaveGlow parameters the runtime needs."""

    n_group: int = field(default=8, metadata=bounded(1, 4096))
    sigma: float = field(default=0.6, metadata=bounded(*SIGMA_RANGE))


@dataclass(frozen=True)
class StreamingConfig:
    """How decoded mel is cut into chunks for the vocoder (chosen from the SNR curve in docs/benchmarks.md)."""

    first_chunk_frames: int = field(default=16, metadata=bounded(*CHUNK_FRAMES_RANGE))
    """Small first chunk: time to first audio."""
    chunk_frames: int = field(default=64, metadata=bounded(*CHUNK_FRAMES_RANGE))
    """Later chunks: throughput."""
    max_chunk_frames: int = field(default=256, metadata=bounded(*CHUNK_FRAMES_RANGE))
    """Later chunks double from ``chunk_frames`` up to this: each chunk's context is vocoded
    twice, so fewer, longer chunks cut that repeated work (issue 26; docs/design.md)."""
    context_frames: int = field(default=16, metadata=bounded(*CONTEXT_FRAMES_RANGE))
    """Mel frames of context the vocoder sees on each side of a chunk."""
    crossfade_samples: int = field(default=256, metadata=bounded(0, 65_536))
    """Samples cross-faded across each seam."""
    queue_chunks: int = field(default=4, metadata=bounded(1, 1024))
    """Bound of the queue between the decoder and the vocoder."""
    sentence_pause_s: float = field(default=0.15, metadata=bounded(*SENTENCE_PAUSE_RANGE))
    """Silence inserted between sentences."""


@dataclass(frozen=True)
class ProsodyConfig:
    """The voice's own speaking defaults (``voice.json``'s optional ``prosody`` section)."""

    rate: float = field(default=1.0, metadata=bounded(*RATE_RANGE))
    """Speaking rate when a request names none: 1.0 keeps the tempo the voice was trained at."""


@dataclass(frozen=True)
class SsmlConfig:
    """Numbers of the SSML subset (:mod:`rtvoice.ssml`): break lengths and limits."""

    break_strengths_s: tuple[tuple[str, float], ...] = (
        ("none", 0.0), ("x-weak", 0.1), ("weak", 0.2), ("medium", 0.4), ("strong", 0.7), ("x-strong", 1.2))
    """Silence of ``<break strength="...">``; a bare ``<break/>`` is ``medium``."""
    paragraph_pause_s: float = 0.5
    """Silence after each ``<p>`` (sentences inside one get the voice's sentence pause)."""
    max_break_s: float = 10.0
    """Longest single ``<break time>``; longer is refused, not shortened."""
    max_breaks_s: float = 60.0
    """Most silence one document may ask for in all."""
    max_depth: int = 32
    """Deepest element nesting accepted (a document is small; deep nesting is an attack)."""
    rate_names: tuple[tuple[str, float], ...] = (
        ("x-slow", 0.5), ("slow", 0.75), ("medium", 1.0), ("default", 1.0), ("fast", 1.3), ("x-fast", 1.7))
    """``<prosody rate>`` words, as factors of the request's rate."""
    volume_names: tuple[tuple[str, float], ...] = (
        ("silent", 0.0), ("x-soft", 0.3), ("soft", 0.6), ("medium", 1.0), ("default", 1.0), ("loud", 1.4),
        ("x-loud", 2.0))
    """``<prosody volume>`` words, as gains on the request's volume."""


SSML: Final = SsmlConfig()


@dataclass(frozen=True)
class EngineProfile:
    """One dynamic dimension of a TensorRT optimization profile: min, opt, max."""

    min: int = field(metadata=bounded(1, 1 << 20))
    opt: int = field(metadata=bounded(1, 1 << 20))
    max: int = field(metadata=bounded(1, 1 << 20))


@dataclass(frozen=True)
class ProfilesConfig:
    """TensorRT optimization profiles, as data (batch, text length, mel chunk length)."""

    batch: EngineProfile = EngineProfile(1, 1, 8)
    text_length: EngineProfile = EngineProfile(1, 128, 512)
    mel_frames: EngineProfile = EngineProfile(1, 96, 512)


DEFAULT_BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256)


CudaStep = Literal["phases", "fused", "persistent"]
"""The cuda backend's decoder kernel modes (``batching.cuda_step``); the one place they are named."""
CUDA_STEPS: Final[tuple[CudaStep, ...]] = typing.get_args(CudaStep)


@dataclass(frozen=True)
class BatchingConfig:
    """How the work of concurrent streams of one voice is batched, and CUDA graphs (issue #7).

    The GPU engines keep every open sentence in one "row" of fixed-size device buffers and
    step all rows of a batch with one graph run. A step of ``n`` rows runs at the smallest
    bucket ``>= n``, so each bucket's shapes (and CUDA graphs) are fixed.
    """

    max_rows: int = field(default=256, metadata=bounded(1, 4096))
    """Sentences open at once per GPU engine (rows allocated at engine open)."""
    max_batch: int = field(default=256, metadata=bounded(1, 4096))
    """Most rows one step runs; 1 turns batching off (each sentence steps alone, as before #7)."""
    buckets: tuple[int, ...] = DEFAULT_BATCH_BUCKETS
    """Batch sizes a step runs at; those above ``max_batch`` are dropped, ``max_batch`` is added."""
    cuda_graphs: bool = True
    """Replay decoder steps as CUDA graphs (ONNX Runtime: one per step; TensorRT: one per batch of steps)."""
    cuda_step: CudaStep = "phases"
    """The cuda backend's decoder kernels: 7 launches a step, 1 a step, or 1 persistent launch a batch
    of ``decoder.gate_check_interval`` steps (docs/gpu.md); ``RTVOICE_CUDA_STEP`` overrides it."""
    vocoder_max: int = field(default=8, metadata=bounded(1, 1024))
    """Most chunks, from any streams, vocoded in one call; 1 turns vocoder batching off.

    Only chunks that are ready at the same moment are batched, so a lone stream never
    waits. The GPU backends pad a batch to a power of two no larger than this (nor than
    ``profiles.batch.max``, the batch range TensorRT plans are built for).
    """

    def __post_init__(self) -> None:
        if self.vocoder_max < 1:
            raise ValueError(f"batching.vocoder_max must be at least 1, got {self.vocoder_max}.")

    def effective_buckets(self) -> tuple[int, ...]:
        """The buckets in use: sorted, none above ``min(max_batch, max_rows)``, which is included."""
        if self.max_rows < 1 or self.max_batch < 1:
            raise ValueError(f"batching.max_rows and max_batch must be at least 1, got {self.max_rows}, "
                             f"{self.max_batch}.")
        top = min(self.max_batch, self.max_rows)
        return tuple(sorted({b for b in self.buckets if 1 <= b < top} | {top}))


@dataclass(frozen=True)
class VoiceConfig:
    """Everything the runtime knows about a voice; ``voice.json`` is its serialised form."""

    name: str
    audio: AudioConfig = AudioConfig()
    text: TextConfig = TextConfig()
    decoder: DecoderConfig = DecoderConfig()
    vocoder: VocoderConfig = VocoderConfig()
    streaming: StreamingConfig = StreamingConfig()
    profiles: ProfilesConfig = ProfilesConfig()
    batching: BatchingConfig = BatchingConfig()
    prosody: ProsodyConfig = ProsodyConfig()
    graphs: dict[str, str] = field(default_factory=lambda: {n: f"{n}.onnx" for n in GRAPH_NAMES})
    source: dict[str, Any] = field(default_factory=dict)
    """Where the weights came from (checkpoint paths, random seed): provenance only."""
    format: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / VOICE_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VoiceConfig:
        """Build from parsed JSON, checking every type and range (see :mod:`rtvoice.voice_schema`)."""
        config = build(cls, data, "voice")
        config.check_graph_paths()
        return config

    def check_graph_paths(self) -> None:
        """Refuse graph paths that could name a file outside the voice folder.

        A voice folder may come from anywhere; ``graphs.encoder: "../../../../etc/passwd"``
        must not make rtvoice read (or show parts of) files beside it.
        """
        missing = [n for n in GRAPH_NAMES if n not in self.graphs]
        unknown = sorted(set(self.graphs) - set(GRAPH_NAMES))
        if missing or unknown:
            raise VoiceError(f"voice.graphs must name exactly {', '.join(GRAPH_NAMES)}; "
                             f"missing {missing}, unknown {unknown}.")
        for name, value in self.graphs.items():
            path = PurePosixPath(value)
            if (not value or "\\" in value or "\0" in value or path.is_absolute() or ".." in path.parts
                    or PureWindowsPath(value).drive):
                raise VoiceError(f"voice.graphs.{name} is {value[:80]!r}: a graph must be a relative path inside "
                                 "the voice folder, without '..'.")

    @classmethod
    def load(cls, folder: str | Path) -> VoiceConfig:
        """Read and validate ``folder/voice.json``; a clear VoiceError for anything wrong."""
        folder = Path(folder)
        path = folder / VOICE_FILE
        if not folder.is_dir():
            raise VoiceError(f"Voice folder {folder} does not exist.", path=str(folder))
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise VoiceError(f"Voice folder {folder} has no {VOICE_FILE}.", path=str(path)) from exc
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8, bad JSON, huge ints
            raise VoiceError(f"{path} is not valid JSON: {exc}", path=str(path)) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise VoiceError(f"{path} is not an rtvoice voice (format {FORMAT_VERSION}).", path=str(path))
        try:
            config = cls.from_dict(data)
        except VoiceError as exc:
            raise VoiceError(f"{path}: {exc}", path=str(path)) from exc
        if not config.text.symbols:
            raise VoiceError(f"{path} lists no symbols.", path=str(path))
        return config


@dataclass(frozen=True)
class SynthesisConfig:
    """Per-request settings; ``None`` takes the voice's default."""

    seed: int = field(default=0, metadata=bounded(*SEED_RANGE))
    """Seeds the prenet dropout masks and WaveGlow noise: same seed, same audio."""
    sigma: float | None = field(default=None, metadata=bounded(*SIGMA_RANGE))
    max_decoder_steps: int | None = field(default=None, metadata=bounded(*MAX_DECODER_STEPS_RANGE))
    force_steps: int | None = field(default=None, metadata=bounded(*MAX_DECODER_STEPS_RANGE))
    """Ignore the gate and decode exactly this many mel frames (benchmarks, random voices)."""
    first_chunk_frames: int | None = field(default=None, metadata=bounded(*CHUNK_FRAMES_RANGE))
    chunk_frames: int | None = field(default=None, metadata=bounded(*CHUNK_FRAMES_RANGE))
    """Mel frames per streamed chunk; also used for the first chunk when that is not set."""
    context_frames: int | None = field(default=None, metadata=bounded(*CONTEXT_FRAMES_RANGE))
    sentence_pause_s: float | None = field(default=None, metadata=bounded(*SENTENCE_PAUSE_RANGE))
    whole: bool = False
    """Vocode each sentence in one piece instead of streaming chunks."""
    rate: float | None = field(default=None, metadata=bounded(*RATE_RANGE))
    """Speaking rate: 2.0 says it in half the time at the same pitch (the mel is time-scaled)."""
    volume: float = field(default=1.0, metadata=bounded(*VOLUME_RANGE))
    """Gain on the samples every output gets (files, streams, playback)."""
    ssml: bool | None = None
    """Read the text as SSML (:mod:`rtvoice.ssml`); ``None``: when it starts with ``<speak``."""
    max_spoken_chars: int = field(default=MAX_SPOKEN_CHARS, metadata=bounded(*SPOKEN_CHARS_RANGE))
    """Longest text of one request *as read out* (normalized: "½" is " one half", 9 characters).
    Input limits count characters as sent, and reading expands some many times, so this bounds
    the speech (and compute) one request can ask for; longer text is refused before any audio."""

    def __post_init__(self) -> None:
        """Refuse settings outside their ranges (NaN included), whoever builds the config.

        Raises:
            ValueError: naming the field, its range and the value.
        """
        check_ranges(self, "SynthesisConfig")

    def resolve(self, voice: VoiceConfig) -> ResolvedSynthesis:
        """Fill defaults from the voice and validate; the one place defaults are applied."""
        s = voice.streaming
        chunk = s.chunk_frames if self.chunk_frames is None else self.chunk_frames
        first = self.first_chunk_frames or (self.chunk_frames or s.first_chunk_frames)
        steps = voice.decoder.max_decoder_steps if self.max_decoder_steps is None else self.max_decoder_steps
        for name, value in (("chunk_frames", chunk), ("first_chunk_frames", first), ("max_decoder_steps", steps)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        if self.force_steps is not None and self.force_steps < 1:
            raise ValueError(f"force_steps must be at least 1, got {self.force_steps}.")
        return ResolvedSynthesis(
            seed=self.seed,
            sigma=voice.vocoder.sigma if self.sigma is None else self.sigma,
            max_decoder_steps=self.force_steps or steps,
            force_steps=self.force_steps is not None,
            first_chunk_frames=first,
            chunk_frames=chunk,
            # A request's own chunk size is kept as is (no doubling): what it asked for.
            max_chunk_frames=max(chunk, s.max_chunk_frames) if self.chunk_frames is None else chunk,
            context_frames=s.context_frames if self.context_frames is None else self.context_frames,
            crossfade_samples=s.crossfade_samples,
            sentence_pause_s=s.sentence_pause_s if self.sentence_pause_s is None else self.sentence_pause_s,
            whole=self.whole,
            rate=voice.prosody.rate if self.rate is None else self.rate,
            volume=self.volume,
            ssml=self.ssml,
            max_spoken_chars=self.max_spoken_chars,
        )


@dataclass(frozen=True)
class ResolvedSynthesis:
    """A SynthesisConfig with every default applied; what the synthesizer reads."""

    seed: int
    sigma: float
    max_decoder_steps: int
    force_steps: bool
    first_chunk_frames: int
    chunk_frames: int
    context_frames: int
    crossfade_samples: int
    sentence_pause_s: float
    whole: bool
    rate: float = 1.0
    volume: float = 1.0
    ssml: bool | None = None
    max_chunk_frames: int = 0
    """Later chunks double from ``chunk_frames`` up to this (0, or at most ``chunk_frames``: no doubling)."""
    max_spoken_chars: int = MAX_SPOKEN_CHARS
    """Longest text as read out (see :attr:`SynthesisConfig.max_spoken_chars`)."""
