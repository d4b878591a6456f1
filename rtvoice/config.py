"""Configuration as data: the voice (static, from ``voice.json``) and each request.

Every number that matters (sample rate, hop length, chunk sizes, overlap, gate threshold,
engine profiles) lives here, in frozen dataclasses. ``SynthesisConfig`` fields that are
``None`` mean "use the voice default"; they are resolved in exactly one place,
:meth:`SynthesisConfig.resolve`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from .errors import VoiceError

FORMAT_VERSION: Final = 1
VOICE_FILE: Final = "voice.json"
GRAPH_NAMES: Final = ("encoder", "decoder_step", "postnet", "waveglow")


@dataclass(frozen=True)
class AudioConfig:
    """The audio parameters the mel spectrograms were computed with."""

    sample_rate: int = 22050
    hop_length: int = 256
    win_length: int = 1024
    filter_length: int = 1024
    n_mel_channels: int = 80
    mel_fmin: float = 0.0
    mel_fmax: float = 8000.0


@dataclass(frozen=True)
class TextConfig:
    """The symbol set and text limits."""

    symbols: tuple[str, ...] = ()
    cleaners: str = "english"
    max_chars: int = 5000
    """Longest text accepted by one request; longer text is refused, not truncated."""
    sentence_max_chars: int = 300
    """Longer sentences are split at clause boundaries before synthesis."""


@dataclass(frozen=True)
class DecoderConfig:
    """Tacotron 2 sizes the runtime allocates state for, and the stopping rule."""

    n_mel_channels: int = 80
    encoder_embedding_dim: int = 512
    attention_rnn_dim: int = 1024
    decoder_rnn_dim: int = 1024
    attention_dim: int = 128
    prenet_dim: int = 256
    prenet_dropout: float = 0.5
    """NVIDIA keeps prenet dropout on at inference; masks are drawn from the request seed."""
    frames_per_step: int = 1
    """Mel frames each decoder step makes (Tacotron 2's reduction factor r; NVIDIA's is 1).

    A step of r frames feeds the last of them back and has one gate logit per frame, so a
    sentence may end mid-step. Fewer, larger steps: r times fewer sequential runs per second
    of speech.
    """
    gate_threshold: float = 0.5
    max_decoder_steps: int = 2000
    """The most mel frames a sentence may have (frames, whatever ``frames_per_step``)."""
    gate_check_interval: int = 8
    """Steps between reads of the gate, so the host does not wait on the device every step."""
    postnet_context_frames: int = 10
    """Frames of receptive field on each side of the postnet: its exact context."""

    def __post_init__(self) -> None:
        if self.frames_per_step < 1:
            raise ValueError(f"decoder.frames_per_step must be at least 1, got {self.frames_per_step}.")

    @property
    def step_width(self) -> int:
        """Floats of one step's mel output (and of its fed-back input): r frames of n_mel."""
        return self.frames_per_step * self.n_mel_channels

    def frame_room(self, frames: int) -> int:
        """Room for ``frames`` decoded frames: whole steps, so the last step's overshoot fits."""
        r = self.frames_per_step
        return -(-frames // r) * r


@dataclass(frozen=True)
class VocoderConfig:
    """WaveGlow parameters the runtime needs."""

    n_group: int = 8
    sigma: float = 0.6


@dataclass(frozen=True)
class StreamingConfig:
    """How decoded mel is cut into chunks for the vocoder (chosen from the SNR curve in the README)."""

    first_chunk_frames: int = 16
    """Small first chunk: time to first audio."""
    chunk_frames: int = 64
    """Later chunks: throughput."""
    context_frames: int = 16
    """Mel frames of context the vocoder sees on each side of a chunk."""
    crossfade_samples: int = 256
    """Samples cross-faded across each seam."""
    queue_chunks: int = 4
    """Bound of the queue between the decoder and the vocoder."""
    sentence_pause_s: float = 0.15
    """Silence inserted between sentences."""


@dataclass(frozen=True)
class EngineProfile:
    """One dynamic dimension of a TensorRT optimization profile: min, opt, max."""

    min: int
    opt: int
    max: int


@dataclass(frozen=True)
class ProfilesConfig:
    """TensorRT optimization profiles, as data (batch, text length, mel chunk length)."""

    batch: EngineProfile = EngineProfile(1, 1, 8)
    text_length: EngineProfile = EngineProfile(1, 128, 512)
    mel_frames: EngineProfile = EngineProfile(1, 96, 512)


DEFAULT_BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class BatchingConfig:
    """How the work of concurrent streams of one voice is batched, and CUDA graphs (issue #7).

    The GPU engines keep every open sentence in one "row" of fixed-size device buffers and
    step all rows of a batch with one graph run. A step of ``n`` rows runs at the smallest
    bucket ``>= n``, so each bucket's shapes (and CUDA graphs) are fixed.
    """

    max_rows: int = 256
    """Sentences open at once per GPU engine (rows allocated at engine open)."""
    max_batch: int = 256
    """Most rows one step runs; 1 turns batching off (each sentence steps alone, as before #7)."""
    buckets: tuple[int, ...] = DEFAULT_BATCH_BUCKETS
    """Batch sizes a step runs at; those above ``max_batch`` are dropped, ``max_batch`` is added."""
    cuda_graphs: bool = True
    """Replay decoder steps as CUDA graphs (ONNX Runtime: one per step; TensorRT: one per batch of steps)."""
    vocoder_max: int = 8
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
        return _build(cls, data, "voice")

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
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VoiceError(f"{path} is not valid JSON: {exc}", path=str(path)) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise VoiceError(f"{path} is not an rtvoice voice (format {FORMAT_VERSION}).", path=str(path))
        config = cls.from_dict(data)
        if not config.text.symbols:
            raise VoiceError(f"{path} lists no symbols.", path=str(path))
        return config


T = TypeVar("T")


def _build(cls: type[T], data: Any, where: str) -> T:
    """Construct a (nested) frozen dataclass from JSON data, rejecting unknown or bad keys."""
    if not isinstance(data, dict):
        raise VoiceError(f"{where}: expected an object, got {type(data).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        raise VoiceError(f"{where}: unknown key(s) {sorted(unknown)}.")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(cls, name, None) if name in fields else None
        ftype = type(default) if dataclasses.is_dataclass(default) else None
        if ftype is not None:
            kwargs[name] = _build(ftype, value, f"{where}.{name}")
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # ValueError: a __post_init__ check
        raise VoiceError(f"{where}: {exc}") from exc


@dataclass(frozen=True)
class SynthesisConfig:
    """Per-request settings; ``None`` takes the voice's default."""

    seed: int = 0
    """Seeds the prenet dropout masks and WaveGlow noise: same seed, same audio."""
    sigma: float | None = None
    max_decoder_steps: int | None = None
    force_steps: int | None = None
    """Ignore the gate and decode exactly this many mel frames (benchmarks, random voices)."""
    first_chunk_frames: int | None = None
    chunk_frames: int | None = None
    """Mel frames per streamed chunk; also used for the first chunk when that is not set."""
    context_frames: int | None = None
    sentence_pause_s: float | None = None
    whole: bool = False
    """Vocode each sentence in one piece instead of streaming chunks."""

    def resolve(self, voice: VoiceConfig) -> ResolvedSynthesis:
        """Fill defaults from the voice and validate; the one place defaults are applied."""
        s = voice.streaming
        chunk = self.chunk_frames or s.chunk_frames
        first = self.first_chunk_frames or (self.chunk_frames or s.first_chunk_frames)
        steps = self.max_decoder_steps or voice.decoder.max_decoder_steps
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
            context_frames=s.context_frames if self.context_frames is None else self.context_frames,
            crossfade_samples=s.crossfade_samples,
            sentence_pause_s=s.sentence_pause_s if self.sentence_pause_s is None else self.sentence_pause_s,
            whole=self.whole,
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
