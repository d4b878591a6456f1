"""The contract between the backend-independent synthesis code and each backend.

A backend (ONNX Runtime on the CPU or CUDA, TensorRT) implements :class:`Engine`; all of
the chunking, gate, noise and cross-fade logic lives above it, written once. The decoder
and the vocoder may call one :class:`Utterance` from two different threads: ``decode`` only
appends frames, and ``vocode`` only reads frames that ``decode`` has already returned.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..config import VoiceConfig


class Utterance(Protocol):
    """One sentence in flight: encoder output, decoder state and the mel decoded so far."""

    @property
    def frames(self) -> int:
        """Decoder frames produced so far (including any overshoot past the gate)."""

    def decode(self, prenet_masks: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Run ``k = len(prenet_masks)`` decoder steps; return their gate logits (k * r,) on the host.

        Each step makes ``r = config.decoder.frames_per_step`` frames and one gate logit per
        frame, so ``frames`` grows by ``k * r``. This is the one point per batch of steps where
        the host waits for the device.
        """

    def mel(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        """A host copy of decoder frames [start, stop) as (n_mel, stop - start) (before the postnet)."""

    def vocode(self, start: int, stop: int, limit: int, noise: npt.NDArray[np.float32],
               mel: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
        """Postnet + WaveGlow for frames [start, stop) -> audio, (stop - start) * hop samples.

        The postnet sees frames [start - c, stop + c) clipped to [0, limit), where c is its
        receptive field, so a window is exact when ``limit`` is the utterance's final length
        or ``stop + c <= limit``. ``noise`` covers exactly [start, stop). ``mel``, when
        given, replaces the utterance's own frames of that clipped span, as (frames, n_mel):
        a time-scaled sentence (:mod:`rtvoice.timescale`), whose frame numbers these are.
        """

    def close(self) -> None:
        """Give the utterance's slot back to its engine. Idempotent."""


@dataclass(frozen=True)
class VocodeItem:
    """One chunk for :meth:`Engine.vocode_batch`: the arguments of ``utterance.vocode``."""

    utterance: Utterance
    start: int
    stop: int
    limit: int
    noise: npt.NDArray[np.float32]
    mel: npt.NDArray[np.float32] | None = None
    """The postnet's input frames in place of the utterance's own (see ``Utterance.vocode``)."""

    def vocode(self) -> npt.NDArray[np.float32]:
        """This chunk alone (what a backend that cannot batch does for each item)."""
        if self.mel is None:
            return self.utterance.vocode(self.start, self.stop, self.limit, self.noise)
        return self.utterance.vocode(self.start, self.stop, self.limit, self.noise, self.mel)


K = TypeVar("K", bound=Hashable)


def group_indices(keys: Sequence[K]) -> dict[K, list[int]]:
    """Indices grouped by equal key, in order of first appearance: the runs of one batched call."""
    groups: dict[K, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return groups


class Engine(Protocol):
    """Runs the four graphs of one voice on one device."""

    name: str
    """"onnxruntime", "tensorrt"."""
    device: str
    """"cpu" or "cuda:N"."""
    config: VoiceConfig

    def open_utterance(self, ids: Sequence[int], max_steps: int) -> Utterance:
        """Run the encoder for one sentence and return its decoder state, ready to step.

        ``max_steps`` counts frames; the utterance has room for it rounded up to whole steps.
        """

    def decode_batch(
        self, items: Sequence[tuple[Utterance, npt.NDArray[np.float32]]]
    ) -> list[npt.NDArray[np.float32]]:
        """Decode several utterances at once (continuous batching); one gate array each.

        Equivalent to ``[u.decode(m) for u, m in items]``; a backend that batches runs the
        utterances' steps together, those with fewer masks dropping out as they finish.
        """

    def vocode_batch(self, items: Sequence[VocodeItem]) -> list[npt.NDArray[np.float32]]:
        """Vocode chunks of several utterances at once; one audio array each.

        Equivalent to ``[item.vocode() for item in items]``: a backend that batches must
        give every chunk the audio it would get alone, whatever else is in the batch.
        """

    def close(self) -> None:
        """Release sessions, engines and device memory. Idempotent."""


@runtime_checkable
class StopsAtGate(Protocol):
    """An optional capability of an :class:`Engine`: skip a sentence's steps after its gate fired.

    The :class:`Utterance` contract is that ``decode`` of k steps decodes all k, and some
    consumers rely on it: ``force_steps`` (the bench, :mod:`rtvoice.seams`, export parity)
    reads frames past a fired gate. The engine cannot tell its consumers apart, so the one
    that knows (the synthesizer, without ``force_steps``) says so per sentence, through this
    optional method rather than a test for one backend class: a backend that cannot stop
    early (CPU, ONNX Runtime CUDA, TensorRT) needs nothing, and a wrapping engine (the bench's
    timer) that does not forward it keeps the full contract. ``cuda``'s persistent mode stops
    on the device (:class:`~rtvoice.engine.cuda_engine.KernelEngine`).
    """

    def stop_at_gate(self, utterance: Utterance) -> None:
        """Let the engine stop decoding ``utterance`` once its gate fired (``decoder.gate_threshold``).

        Steps it skips read gate logits of +inf, and the utterance may not decode again. Call
        it right after ``open_utterance``, before the first decode.
        """
