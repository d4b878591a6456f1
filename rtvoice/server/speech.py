"""The one synthesis loop every protocol uses: slot, stream, convert, measure.

:func:`speak` is the server's single "text -> PCM pieces" function. HTTP, WebSocket and
Wyoming only frame what it yields. It holds a synthesis slot for its whole life, records
time to first audio, real-time factor and the outcome, and closes the voice's stream
(``aclose()``) however it ends, so a consumer that stops iterating, is cancelled or loses
its client stops the GPU work within one chunk. It also times its consumer (the client
accepting each piece): one that falls ``send_timeout_s`` behind real time is dropped
(:class:`_Pace`), since the slot is held while it dawdles.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from ..audio import AudioChunk
from ..config import SynthesisConfig
from ..errors import SlowClientError, TextError
from ..script import Reading
from ..voice import Voice
from .audio_out import PcmConverter
from .state import ServerState


@dataclass(frozen=True)
class SpeechJob:
    """One synthesis, described the same way by every protocol."""

    text: str | Reading
    """What to say; a :class:`Reading` (made with ``voice``) is not read out again."""
    voice: Voice
    config: SynthesisConfig
    out_rate: int
    """Sample rate of the PCM to send."""
    speed: float | None = None
    """Speaking rate, by time-scaling the mel (pitch stays); ``None``: ``config.rate``."""
    protocol: str = "http"
    """Metrics label: ``http``, ``websocket`` or ``wyoming``."""
    client: str | None = None
    """The client's address: while it runs, the synthesis counts against ``max_streams_per_client``."""


@dataclass(frozen=True, eq=False)
class Piece:
    """A chunk of synthesized audio and the PCM bytes to send for it."""

    chunk: AudioChunk
    pcm: bytes


async def speak(state: ServerState, job: SpeechJob, *, since: float | None = None) -> AsyncGenerator[Piece, None]:
    """Synthesize ``job``, yielding each chunk as 16-bit mono PCM at ``job.out_rate``.

    Args:
        state: The server's admission control and metrics.
        job: What to say, with which voice and settings.
        since: ``time.perf_counter()`` when the request arrived; time to first audio is
            counted from it (default: now).

    Yields:
        One :class:`Piece` per audio chunk, in order.

    Raises:
        ApiError: 429 when ``job.client`` has ``max_streams_per_client`` syntheses running,
            503 when the synthesis queue is full (both before anything is yielded).
        TextError: the text cannot be spoken (before anything is yielded).
        SlowClientError: the consumer took the pieces too far behind real time (see :class:`_Pace`).
    """
    since = time.perf_counter() if since is None else since
    metrics = state.metrics
    async with contextlib.AsyncExitStack() as held:
        if job.client is not None:
            held.enter_context(state.admission.client(job.client))
        await held.enter_async_context(state.admission.synthesis())
        converter = PcmConverter(job.voice.sample_rate, job.out_rate)
        limits = state.config.limits
        pace = _Pace(limits.send_timeout_s, limits.min_client_speed)
        loop = asyncio.get_running_loop()
        config = job.config if job.speed is None else dataclasses.replace(job.config, rate=job.speed)
        outcome = "error"
        try:
            last: AudioChunk | None = None
            # Voice.stream is an async generator: close it when we stop.
            stream = job.voice.stream(job.text, config)
            async with contextlib.aclosing(stream) as chunks:
                async for chunk in chunks:
                    if last is None:
                        metrics.time_to_first_audio.labels(job.protocol).observe(time.perf_counter() - since)
                    last = chunk
                    pcm = converter.convert(chunk)
                    metrics.audio_seconds.labels(job.protocol).inc(len(pcm) / 2 / job.out_rate)
                    if chunk.truncated:  # the core logged it; count it too
                        metrics.truncated_sentences.labels(job.protocol).inc()
                    handed = loop.time()
                    yield Piece(chunk, pcm)
                    pace.taken(len(pcm) / 2 / job.out_rate, loop.time() - handed)
            if last is not None:
                metrics.realtime_factor.labels(job.protocol).observe(last.timing.rtf)
            outcome = "ok"
        except TextError:
            outcome = "rejected"
            raise
        except (GeneratorExit, asyncio.CancelledError, SlowClientError):
            outcome = "stopped"
            raise
        finally:
            metrics.syntheses.labels(job.protocol, outcome).inc()


class _Pace:
    """The time a consumer spends taking pieces, against the audio they hold.

    The per-send timeout alone lets a client take each chunk just before it expires: at a
    tenth of real time it would hold its synthesis slot for ten times the audio's length.
    A player takes audio as fast as it plays it, so the consumer may fall ``slack_s``
    behind ``speed`` times real time, and no further.
    """

    def __init__(self, slack_s: float, speed: float) -> None:
        self._slack_s = slack_s
        self._speed = speed
        self._audio_s = 0.0
        self._waited_s = 0.0

    def taken(self, audio_s: float, waited_s: float) -> None:
        """Count one piece of ``audio_s`` seconds that took ``waited_s`` to be taken.

        Raises:
            SlowClientError: the consumer is now more than ``slack_s`` behind.
        """
        self._audio_s += audio_s
        self._waited_s += waited_s
        if self._waited_s > self._audio_s / self._speed + self._slack_s:
            raise SlowClientError(
                f"The client took {self._waited_s:.1f} s to accept {self._audio_s:.1f} s of audio, more than "
                f"{self._slack_s:g} s behind real time; dropped, so that it holds no synthesis slot.")
