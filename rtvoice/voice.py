"""The public model object: a loaded voice that synthesizes, synchronously or streaming."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from types import TracebackType

from . import pipeline
from .audio import AudioChunk
from .backends import Choice, choose, open_engine
from .config import BatchingConfig, SynthesisConfig, VoiceConfig
from .engine.protocol import Engine
from .errors import EngineError, VoiceError
from .script import Reading, prepare
from .synthesizer import synthesize

log = logging.getLogger("rtvoice")

DEFAULT_VOICE = Path(__file__).parent / "voices" / "default"


def default_voice_path() -> Path:
    """The voice shipped inside the package, used when no voice is named."""
    if not (DEFAULT_VOICE / "voice.json").is_file():
        raise VoiceError(
            "No voice given and no default voice is installed. "
            "Hint: pass --voice DIR (build one with: python build_engines.py --random tiny --out engines/tiny).",
            path=str(DEFAULT_VOICE),
        )
    return DEFAULT_VOICE


class Voice:
    """A voice loaded on a backend. Use as a context manager; ``close()`` is idempotent.

    Example::

        with Voice.load("engines/tiny") as voice:
            for chunk in voice.synthesize("Hello there."):
                play(chunk.samples)

    Both :meth:`synthesize` and :meth:`stream` may be used by many callers at once; their
    work interleaves on the voice's decoder and vocoder threads (async) or runs in the
    caller's thread (sync).
    """

    def __init__(self, folder: Path, config: VoiceConfig, engine: Engine, choice: Choice) -> None:
        self.folder = folder
        self.config = config
        self.choice = choice
        self._engine: Engine | None = engine
        self._workers: pipeline.Workers | None = None

    @classmethod
    def load(cls, path: str | Path | None = None, *, backend: str = "auto", device: str = "auto",
             batching: BatchingConfig | None = None) -> Voice:
        """Open a voice folder (``voice.json`` + ONNX graphs [+ TensorRT engines]).

        Args:
            path: the voice folder; ``None`` takes the default voice shipped with rtvoice.
            backend: ``auto`` (TensorRT engines if present, then ONNX Runtime), ``tensorrt``
                or ``onnxruntime``.
            device: ``auto`` (a CUDA GPU when usable, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
            batching: Replaces ``voice.json``'s batching settings (GPU engines: rows,
                buckets, CUDA graphs), e.g. to measure what each buys.

        Raises:
            VoiceError: the folder is missing, incomplete or corrupt.
            BackendError: the requested backend or device cannot be used here.
        """
        folder = Path(path) if path is not None else default_voice_path()
        config = VoiceConfig.load(folder)
        if batching is not None:
            config = dataclasses.replace(config, batching=batching)
        choice = choose(folder, backend, device)
        try:
            engine = open_engine(folder, config, choice)
        except EngineError as exc:
            if backend != "auto":
                raise
            # auto never fails on a stale or foreign TensorRT plan: it says so and moves on.
            log.warning("TensorRT engines unusable (%s); falling back to ONNX Runtime", exc)
            choice = choose(folder, "onnxruntime", device)
            choice = Choice(choice.backend, choice.device, f"TensorRT engines unusable: {exc}")
            engine = open_engine(folder, config, choice)
        log.info("voice %s: %s on %s (%s)", config.name, choice.backend, choice.device, choice.reason)
        return cls(folder, config, engine, choice)

    def validate(self, text: str, config: SynthesisConfig | None = None) -> None:
        """Check ``text`` and ``config`` as synthesis would, without synthesizing.

        Raises:
            TextError: empty, too long, or nothing speakable.
            ValueError: an invalid setting in ``config``.
        """
        settings = (config or SynthesisConfig()).resolve(self.config)
        prepare(text, self.config, settings)

    @property
    def sample_rate(self) -> int:
        return self.config.audio.sample_rate

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise VoiceError("Voice is closed; use it inside `with Voice.load(...) as voice:`.")
        return self._engine

    def synthesize(self, text: str, config: SynthesisConfig | None = None) -> Iterator[AudioChunk]:
        """Speak ``text`` in the calling thread, yielding audio chunks as they are made.

        The text is validated eagerly (TextError before anything is returned); the audio
        is made lazily, one chunk per ``next()``. Stop early by closing the generator.
        """
        return synthesize(self.engine, text, config)

    def stream(self, text: str | Reading, config: SynthesisConfig | None = None) -> AsyncGenerator[AudioChunk, None]:
        """Speak ``text`` asynchronously.

        The decoder runs ahead on its own thread while the vocoder turns finished mel chunks
        into audio on another. ``text`` may be a :class:`rtvoice.script.Reading` this voice
        made (:func:`rtvoice.script.read`) of text counted before it is spoken: it is not read
        out again.

        Use ``async with contextlib.aclosing(voice.stream(text)) as chunks:`` (or cancel the
        task) to stop early: GPU work stops within one chunk and everything is released.
        """
        if self._workers is None:
            self._workers = pipeline.Workers(self.config.name, self.config.batching)
        return pipeline.stream(self.engine, self._workers, text, config)

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()
            self._workers = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> Voice:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
