"""The GPU engine every GPU backend shares: device buffers, two streams, events.

A backend only supplies a :class:`GraphRunner` per graph (ONNX Runtime IO binding, or a
TensorRT execution context); this module owns everything else, so buffers, streams,
events, ping-pong state and cancellation behave the same on every backend.

Memory: the decoder's state lives in the rows of :class:`~.gpu_decoder.BatchedDecoder`
(allocated at engine open for ``batching.max_rows`` sentences), so concurrent sentences
step together. Per utterance *slot*: the staged ids and the mel frames the vocoder reads;
slots are pooled and reused, allocated at utterance open (never inside the decoder loop),
and grow only. The vocoder's buffers are per engine (one vocoder thread). All is freed by
:meth:`GpuEngine.close`.

Streams and threads: the decoder thread enqueues on stream A, the vocoder thread on
stream B. Stream B waits on an event recorded on A after each batch of decoder steps, so
the GPU orders the two without the host in between; the host waits once per batch (for
the gate logits) and once per chunk (for the audio), on blocking-sync events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..config import VoiceConfig
from ..cuda import DeviceBuffer, Event, HostBuffer, Stream, capture_guard, copy_async, set_device
from ..errors import InternalError
from .gpu_decoder import BatchedDecoder, Request
from .gpu_runner import F32, DeviceTensor, GraphRunner, RunnerFactory, StepRunnerFactory
from .gpu_vocoder import Vocoder, VocoderJob
from .protocol import Utterance, VocodeItem

log = logging.getLogger("rtvoice.gpu")


class _Slot:
    """Per-sentence device buffers outside the batch rows: staged ids and the mel the vocoder reads."""

    def __init__(self) -> None:
        self.text = DeviceBuffer()
        self.text_host = HostBuffer()
        self.mel = DeviceBuffer()

    def close(self) -> None:
        for buffer in (self.text, self.text_host, self.mel):
            buffer.close()


class GpuUtterance:
    """One sentence on the GPU: a row of the engine's batched decoder, and its own mel buffer.

    ``decode`` runs on the decoder thread (stream A), ``vocode`` on the vocoder thread
    (stream B); see the module docstring. ``decode`` is a batch of one.
    """

    def __init__(self, engine: GpuEngine, slot: _Slot, ids: Sequence[int], max_steps: int) -> None:
        self._engine = engine
        self._slot: _Slot | None = slot
        self._n = n = len(ids)
        d = engine.config.decoder
        self._mel_dim = d.n_mel_channels
        self._r = d.frames_per_step
        self._room = d.frame_room(max_steps)  # whole steps: the last one may overshoot max_steps
        self._frames = 0
        # Grow-only allocation happens here, before the decoder loop, never inside it.
        slot.text.ensure(8 * n)
        slot.text_host.ensure(8 * (n + 1))
        slot.mel.ensure(F32 * self._room * self._mel_dim)
        self.member = engine.decoder.join(n)
        try:
            self._encode(ids)
        except BaseException:
            engine.decoder.leave(self.member)
            raise

    @property
    def frames(self) -> int:
        return self._frames

    def _live(self) -> _Slot:
        if self._slot is None:
            raise InternalError("utterance used after close()")
        return self._slot

    def _encode(self, ids: Sequence[int]) -> None:
        """The encoder (batch 1) writes straight into this sentence's row of the decoder."""
        e, s, n = self._engine, self._live(), self._n
        set_device(e.device_index)
        staged = s.text_host.array(np.int64, (n + 1,))
        staged[:n] = ids
        staged[n] = n
        copy_async(s.text.ptr, s.text_host.ptr, 8 * n, e.stream_a)
        length_dev = e.scratch_length
        copy_async(length_dev.ptr, s.text_host.ptr + 8 * n, 8, e.stream_a)
        e.runners["encoder"].run(
            {"text": DeviceTensor(s.text.ptr, (1, n), np.int64),
             "text_lengths": DeviceTensor(length_dev.ptr, (1,), np.int64)},
            e.decoder.static_tensors(self.member))
        # The staged ids must not be overwritten before the copy ran: wait here, once per sentence.
        e.decoded.record(e.stream_a)
        e.decoded.synchronize()

    def request(self, prenet_masks: npt.NDArray[np.float32]) -> Request:
        """This sentence's part of a batch: check room, say where its frames go."""
        k = len(prenet_masks)
        if self._frames + k * self._r > self._room:
            raise InternalError(f"decode past max steps ({self._frames}+{k}x{self._r} > {self._room})")
        return Request(self.member, prenet_masks, self._live().mel.ptr, self._frames)

    def advance(self, steps: int) -> None:
        """Count the frames of ``steps`` steps as decoded (after the batch that made them)."""
        self._frames += steps * self._r

    def decode(self, prenet_masks: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return self._engine.decode_batch([(self, prenet_masks)])[0]

    def mel(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        s = self._live()
        out = np.empty((stop - start, self._mel_dim), np.float32)
        with capture_guard.shared(), Stream() as stream:
            copy_async(int(out.ctypes.data), s.mel.ptr + F32 * self._mel_dim * start, out.nbytes, stream)
            stream.synchronize()
        return np.ascontiguousarray(out.T)

    def vocode(self, start: int, stop: int, limit: int, noise: npt.NDArray[np.float32],
               mel: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
        if self._engine.vocoder is None:
            raise InternalError("engine closed while an utterance was in flight")
        with capture_guard.shared():
            return self._engine.vocoder.vocode(self._live(), start, stop, limit, noise, mel)

    def close(self) -> None:
        """Give the row and slot back; any thread (the pipeline closes on the vocoder thread)."""
        if self._slot is not None:
            self._engine.decoder.leave(self.member)
            self._engine.release(self._slot)
            self._slot = None


class GpuEngine:
    """A voice's four graphs on one GPU, run by ``runner_factory``'s runners."""

    def __init__(self, folder: Path, config: VoiceConfig, device_index: int, name: str,
                 runner_factory: RunnerFactory, step_factory: StepRunnerFactory | None = None, *,
                 max_batch: int | None = None, capture: bool = False) -> None:
        """Open the graphs and allocate the decoder rows.

        Args:
            folder: The voice folder.
            config: The voice; ``config.batching`` sizes the rows and buckets.
            device_index: The CUDA device.
            name: The backend's name.
            runner_factory: Makes the encoder, postnet and WaveGlow runners.
            step_factory: Makes a decoder-step runner per batch bucket (static shapes);
                default: ``runner_factory`` on the decoder-step graph.
            max_batch: The most rows a backend's decoder step accepts (TensorRT's profile).
            capture: Capture batches of decoder steps as CUDA graphs where the step
                runner only enqueues (``config.batching.cuda_graphs`` must be on too).
        """
        self.name = name
        self.folder = folder
        self.factory = runner_factory
        self.device = f"cuda:{device_index}"
        self.device_index = device_index
        self.config = config
        self._lock = threading.Lock()
        self._free: list[_Slot] = []
        self._slots: list[_Slot] = []
        set_device(device_index)
        self.stream_a, self.stream_b = Stream(), Stream()
        self.decoded = Event()
        self.scratch_length = DeviceBuffer(8)
        self.runners: dict[str, GraphRunner] = {}
        self.vocoder: Vocoder | None = None
        self.decoder: BatchedDecoder = None  # type: ignore[assignment]  # set below; close() copes
        step_path = folder / config.graphs["decoder_step"]
        steps = step_factory or (lambda _rows, _length: runner_factory("decoder_step", step_path, self.stream_a))
        try:
            self.runners["encoder"] = runner_factory("encoder", folder / config.graphs["encoder"], self.stream_a)
            self.decoder = BatchedDecoder(config, self.stream_a, self.decoded, steps,
                                          max_batch=config.batching.max_batch if max_batch is None else max_batch,
                                          text_length=config.profiles.text_length.max,
                                          capture=capture and config.batching.cuda_graphs)
            self.vocoder = Vocoder(self)
        except BaseException:
            self.close()
            raise

    @property
    def slots_allocated(self) -> int:
        return len(self._slots)

    def open_utterance(self, ids: Sequence[int], max_steps: int) -> GpuUtterance:
        with self._lock:
            slot = self._free.pop() if self._free else None
            if slot is None:
                slot = _Slot()
                self._slots.append(slot)
        try:
            return GpuUtterance(self, slot, ids, max_steps)
        except BaseException:
            self.release(slot)
            raise

    def _own(self, utterance: Utterance, caller: str) -> GpuUtterance:
        if not (isinstance(utterance, GpuUtterance) and utterance._engine is self):
            raise InternalError(f"{caller}() got an utterance of another engine")
        return utterance

    def decode_batch(self, items: Sequence[tuple[Utterance, npt.NDArray[np.float32]]]
                     ) -> list[npt.NDArray[np.float32]]:
        """All items' steps together, one graph run per step (see :mod:`.gpu_decoder`)."""
        ours = [self._own(u, "decode_batch") for u, _ in items]
        requests = [u.request(masks) for u, (_, masks) in zip(ours, items, strict=True)]
        set_device(self.device_index)
        gates = self.decoder.decode(requests)
        for u, (_, masks) in zip(ours, items, strict=True):
            u.advance(len(masks))
        return gates

    def vocode_batch(self, items: Sequence[VocodeItem]) -> list[npt.NDArray[np.float32]]:
        """Chunks of several utterances in batched runs: see :class:`Vocoder` (vocoder thread)."""
        if self.vocoder is None:
            raise InternalError("engine used after close()")
        jobs = [VocoderJob(self._own(i.utterance, "vocode_batch")._live(), i.start, i.stop, i.limit, i.noise, i.mel)
                for i in items]
        with capture_guard.shared():  # our copies and waits on stream B, too
            return self.vocoder.vocode_batch(jobs)

    def release(self, slot: _Slot) -> None:
        with self._lock:
            self._free.append(slot)

    def close(self) -> None:
        """Idempotent. Waits for queued GPU work, then frees runners before the streams they run on."""
        for stream in (self.stream_a, self.stream_b):
            if not stream.closed:
                try:
                    stream.synchronize()
                except Exception:  # keep releasing; the error is logged, not hidden
                    log.exception("synchronizing %r before close failed", stream)
        for runner in self.runners.values():
            runner.close()
        self.runners = {}
        if self.decoder is not None:
            self.decoder.close()
        if self.vocoder is not None:
            self.vocoder.close()
            self.vocoder = None
        for slot in self._slots:
            slot.close()
        self._slots, self._free = [], []
        for owned in (self.scratch_length, self.decoded, self.stream_a, self.stream_b):
            owned.close()
