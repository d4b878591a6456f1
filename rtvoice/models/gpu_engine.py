"""The GPU engine every GPU backend shares: device buffers, two streams, events.

A backend only supplies a :class:`GraphRunner` per graph (ONNX Runtime IO binding, or a
TensorRT execution context); this module owns everything else, so buffers, streams,
events, ping-pong state and cancellation behave the same on every backend.

Memory: per utterance *slot*, device buffers for the encoder output, two decoder state
sets (ping-pong: step i reads set i%2 and writes the other), the mel frames and gate
logits; slots are pooled and reused, allocated when a request needs one more (at
utterance open, never inside the decoder loop), and grow only. The vocoder's buffers are
per engine (one vocoder thread). All is freed by :meth:`GpuEngine.close`.

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
from ..cuda import DeviceBuffer, Event, HostBuffer, Stream, copy_async, set_device
from ..errors import InternalError
from .engine import Utterance, VocodeItem
from .gpu_runner import F32, BoundRun, DeviceTensor, GraphRunner, RunnerFactory
from .gpu_vocoder import Vocoder, VocoderJob
from .graphs import STATE_NAMES, state_shapes

log = logging.getLogger("rtvoice.gpu")


class _Slot:
    """Device buffers for one sentence in flight (decoder side)."""

    def __init__(self) -> None:
        self.text = DeviceBuffer()
        self.text_host = HostBuffer()
        self.memory = DeviceBuffer()
        self.processed = DeviceBuffer()
        self.mask = DeviceBuffer()
        self.states = [{name: DeviceBuffer() for name in STATE_NAMES} for _ in range(2)]
        self.mel = DeviceBuffer()
        self.gates = DeviceBuffer()
        self.gates_host = HostBuffer()
        self.masks = DeviceBuffer()
        self.masks_host = HostBuffer()
        self.zero_frame = DeviceBuffer()
        self.frames = [DeviceBuffer(), DeviceBuffer()]
        self.gate_out = DeviceBuffer()
        self.mask_in = DeviceBuffer()

    def buffers(self) -> list[DeviceBuffer | HostBuffer]:
        states = [b for s in self.states for b in s.values()]
        return [self.text, self.text_host, self.memory, self.processed, self.mask, *states, self.mel,
                self.gates, self.gates_host, self.masks, self.masks_host, self.zero_frame, *self.frames,
                self.gate_out, self.mask_in]

    def close(self) -> None:
        for buffer in self.buffers():
            buffer.close()


class GpuUtterance:
    """One sentence on the GPU.

    ``decode`` runs on the decoder thread (stream A), ``vocode`` on the vocoder thread
    (stream B); see the module docstring.
    """

    def __init__(self, engine: GpuEngine, slot: _Slot, ids: Sequence[int], max_steps: int) -> None:
        self._engine = engine
        self._slot: _Slot | None = slot
        c = engine.config
        self._n = n = len(ids)
        self._mel_dim = c.decoder.n_mel_channels
        self._max_steps = max_steps
        self._frames = 0
        self._cur = 0
        d = c.decoder
        shapes = state_shapes(c, 1, n)
        self._shapes = shapes
        # Grow-only allocation happens here, before the decoder loop, never inside it.
        s = slot
        s.text.ensure(8 * n)
        s.text_host.ensure(8 * (n + 1))
        s.memory.ensure(F32 * n * d.encoder_embedding_dim)
        s.processed.ensure(F32 * n * d.attention_dim)
        s.mask.ensure(n)
        for states in s.states:
            for name, shape in shapes.items():
                states[name].ensure(F32 * int(np.prod(shape)))
        s.mel.ensure(F32 * max_steps * self._mel_dim)
        s.gates.ensure(F32 * max_steps)
        s.gates_host.ensure(F32 * max_steps)
        s.zero_frame.ensure(F32 * self._mel_dim)
        interval = max(c.decoder.gate_check_interval, 1)
        s.masks.ensure(F32 * interval * 2 * d.prenet_dim)
        s.masks_host.ensure(F32 * interval * 2 * d.prenet_dim)
        for frame in s.frames:
            frame.ensure(F32 * self._mel_dim)
        s.gate_out.ensure(F32)
        s.mask_in.ensure(F32 * 2 * d.prenet_dim)
        self._encode(ids)
        self._steps = [self._bind_step(0), self._bind_step(1)]

    @property
    def frames(self) -> int:
        return self._frames

    def _live(self) -> _Slot:
        if self._slot is None:
            raise InternalError("utterance used after close()")
        return self._slot

    def _encode(self, ids: Sequence[int]) -> None:
        e, s, n = self._engine, self._live(), self._n
        set_device(e.device_index)
        staged = s.text_host.array(np.int64, (n + 1,))
        staged[:n] = ids
        staged[n] = n
        copy_async(s.text.ptr, s.text_host.ptr, 8 * n, e.stream_a)
        lengths = s.text_host.ptr + 8 * n
        length_dev = e.scratch_length
        copy_async(length_dev.ptr, lengths, 8, e.stream_a)
        d = e.config.decoder
        e.runners["encoder"].run(
            {"text": DeviceTensor(s.text.ptr, (1, n), np.int64),
             "text_lengths": DeviceTensor(length_dev.ptr, (1,), np.int64)},
            {"memory": DeviceTensor(s.memory.ptr, (1, n, d.encoder_embedding_dim)),
             "processed_memory": DeviceTensor(s.processed.ptr, (1, n, d.attention_dim)),
             "mask": DeviceTensor(s.mask.ptr, (1, n), np.bool_)})
        for buffer in s.states[0].values():
            buffer.memset(0, e.stream_a)
        s.zero_frame.memset(0, e.stream_a)
        s.frames[0].memset(0, e.stream_a)  # the "go" frame
        # The staged ids must not be overwritten before the copy ran: wait here, once per sentence.
        e.decoded.record(e.stream_a)
        e.decoded.synchronize()

    def _bind_step(self, cur: int) -> BoundRun:
        """Step with state set ``cur`` in and the other out; frames ping-pong the same way.

        Every address is fixed for the utterance, so a step binds nothing: the prenet mask
        is copied into ``mask_in`` before it, and the new frame and gate are copied out of
        ``frames``/``gate_out`` into the mel and gate buffers after it.
        """
        e, s, n = self._engine, self._live(), self._n
        d = e.config.decoder
        src, dst = s.states[cur], s.states[1 - cur]
        return e.runners["decoder_step"].bind(
            {"decoder_input": DeviceTensor(s.frames[cur].ptr, (1, self._mel_dim)),
             **{name: DeviceTensor(src[name].ptr, self._shapes[name]) for name in STATE_NAMES},
             "memory": DeviceTensor(s.memory.ptr, (1, n, d.encoder_embedding_dim)),
             "processed_memory": DeviceTensor(s.processed.ptr, (1, n, d.attention_dim)),
             "mask": DeviceTensor(s.mask.ptr, (1, n), np.bool_),
             "prenet_masks": DeviceTensor(s.mask_in.ptr, (1, 2, d.prenet_dim))},
            {"mel_frame": DeviceTensor(s.frames[1 - cur].ptr, (1, self._mel_dim)),
             "gate": DeviceTensor(s.gate_out.ptr, (1, 1)),
             **{f"next_{name}": DeviceTensor(dst[name].ptr, self._shapes[name]) for name in STATE_NAMES}})

    def decode(self, prenet_masks: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        e, s = self._engine, self._live()
        k = len(prenet_masks)
        f0 = self._frames
        if f0 + k > self._max_steps:
            raise InternalError(f"decode past max steps ({f0}+{k} > {self._max_steps})")
        set_device(e.device_index)
        p = e.config.decoder.prenet_dim
        s.masks.ensure(F32 * k * 2 * p)
        s.masks_host.ensure(F32 * k * 2 * p)
        s.masks_host.array(np.float32, (k, 2 * p))[:] = prenet_masks.reshape(k, 2 * p)
        copy_async(s.masks.ptr, s.masks_host.ptr, F32 * k * 2 * p, e.stream_a)
        m = self._mel_dim
        for i in range(k):
            f = f0 + i
            copy_async(s.mask_in.ptr, s.masks.ptr + F32 * 2 * p * i, F32 * 2 * p, e.stream_a)
            self._steps[self._cur].run()
            out = s.frames[1 - self._cur]
            copy_async(s.mel.ptr + F32 * m * f, out.ptr, F32 * m, e.stream_a)
            copy_async(s.gates.ptr + F32 * f, s.gate_out.ptr, F32, e.stream_a)
            self._cur = 1 - self._cur
        copy_async(s.gates_host.ptr + F32 * f0, s.gates.ptr + F32 * f0, F32 * k, e.stream_a)
        e.decoded.record(e.stream_a)
        e.decoded.synchronize()  # the one host wait per batch: the gate logits
        self._frames = f0 + k
        return s.gates_host.array(np.float32, (f0 + k,))[f0:].copy()

    def mel(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        s = self._live()
        out = np.empty((stop - start, self._mel_dim), np.float32)
        with Stream() as stream:
            copy_async(int(out.ctypes.data), s.mel.ptr + F32 * self._mel_dim * start, out.nbytes, stream)
            stream.synchronize()
        return np.ascontiguousarray(out.T)

    def vocode(self, start: int, stop: int, limit: int, noise: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._engine.vocoder is None:
            raise InternalError("engine closed while an utterance was in flight")
        return self._engine.vocoder.vocode(self._live(), start, stop, limit, noise)

    def close(self) -> None:
        if self._slot is not None:
            self._engine.release(self._slot)
            self._slot = None


class GpuEngine:
    """A voice's four graphs on one GPU, run by ``runner_factory``'s runners."""

    def __init__(self, folder: Path, config: VoiceConfig, device_index: int, name: str,
                 runner_factory: RunnerFactory) -> None:
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
        try:
            for graph in ("encoder", "decoder_step"):
                self.runners[graph] = runner_factory(graph, folder / config.graphs[graph], self.stream_a)
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

    def decode_batch(self, items: Sequence[tuple[Utterance, npt.NDArray[np.float32]]]
                     ) -> list[npt.NDArray[np.float32]]:
        """One utterance after another: the GPU engine does not batch decoder steps yet."""
        return [utterance.decode(masks) for utterance, masks in items]

    def vocode_batch(self, items: Sequence[VocodeItem]) -> list[npt.NDArray[np.float32]]:
        """Chunks of several utterances in batched runs: see :class:`Vocoder` (vocoder thread)."""
        if self.vocoder is None:
            raise InternalError("engine used after close()")
        jobs = []
        for item in items:
            if not isinstance(item.utterance, GpuUtterance):
                raise InternalError("vocode_batch() got an utterance of another engine")
            jobs.append(VocoderJob(item.utterance._live(), item.start, item.stop, item.limit, item.noise))
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
        if self.vocoder is not None:
            self.vocoder.close()
            self.vocoder = None
        for slot in self._slots:
            slot.close()
        self._slots, self._free = [], []
        for owned in (self.scratch_length, self.decoded, self.stream_a, self.stream_b):
            owned.close()
