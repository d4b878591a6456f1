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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..config import GRAPH_NAMES, VoiceConfig
from ..cuda import DeviceBuffer, Event, HostBuffer, Stream, copy_2d_async, copy_async, set_device
from ..errors import InternalError

log = logging.getLogger("rtvoice.gpu")

STATE_NAMES = ("attention_hidden", "attention_cell", "decoder_hidden", "decoder_cell",
               "attention_weights", "attention_weights_cum", "attention_context")
F32 = 4


@dataclass(frozen=True)
class DeviceTensor:
    """A tensor view onto device memory we own: address, shape, numpy dtype."""

    ptr: int
    shape: tuple[int, ...]
    dtype: type[np.generic] = np.float32


class GraphRunner(Protocol):
    """Runs one graph on the stream it was created for, reading and writing our buffers."""

    def run(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> None: ...

    def close(self) -> None: ...


RunnerFactory = Callable[[str, Path, Stream], GraphRunner]
"""(graph name, graph path, stream) -> runner; called once per graph at engine open."""


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

    def buffers(self) -> list[DeviceBuffer | HostBuffer]:
        states = [b for s in self.states for b in s.values()]
        return [self.text, self.text_host, self.memory, self.processed, self.mask, *states, self.mel,
                self.gates, self.gates_host, self.masks, self.masks_host, self.zero_frame]

    def close(self) -> None:
        for buffer in self.buffers():
            buffer.close()


class GpuUtterance:
    """One sentence on the GPU. ``decode`` runs on the decoder thread (stream A), ``vocode``
    on the vocoder thread (stream B); see the module docstring."""

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
        shapes = {"attention_hidden": (1, d.attention_rnn_dim), "attention_cell": (1, d.attention_rnn_dim),
                  "decoder_hidden": (1, d.decoder_rnn_dim), "decoder_cell": (1, d.decoder_rnn_dim),
                  "attention_weights": (1, n), "attention_weights_cum": (1, n),
                  "attention_context": (1, d.encoder_embedding_dim)}
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
        self._encode(ids)

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
        # The staged ids must not be overwritten before the copy ran: wait here, once per sentence.
        e.decoded.record(e.stream_a)
        e.decoded.synchronize()

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
        n, m = self._n, self._mel_dim
        d = e.config.decoder
        static = {"memory": DeviceTensor(s.memory.ptr, (1, n, d.encoder_embedding_dim)),
                  "processed_memory": DeviceTensor(s.processed.ptr, (1, n, d.attention_dim)),
                  "mask": DeviceTensor(s.mask.ptr, (1, n), np.bool_)}
        step = e.runners["decoder_step"]
        for i in range(k):
            f = f0 + i
            src, dst = s.states[self._cur], s.states[1 - self._cur]
            frame_in = s.zero_frame.ptr if f == 0 else s.mel.ptr + F32 * m * (f - 1)
            inputs = {"decoder_input": DeviceTensor(frame_in, (1, m)),
                      **{name: DeviceTensor(src[name].ptr, self._shapes[name]) for name in STATE_NAMES},
                      **static,
                      "prenet_masks": DeviceTensor(s.masks.ptr + F32 * 2 * p * i, (1, 2, p))}
            outputs = {"mel_frame": DeviceTensor(s.mel.ptr + F32 * m * f, (1, m)),
                       "gate": DeviceTensor(s.gates.ptr + F32 * f, (1, 1)),
                       **{f"next_{name}": DeviceTensor(dst[name].ptr, self._shapes[name]) for name in STATE_NAMES}}
            step.run(inputs, outputs)
            self._cur = 1 - self._cur
        copy_async(s.gates_host.ptr + F32 * f0, s.gates.ptr + F32 * f0, F32 * k, e.stream_a)
        e.decoded.record(e.stream_a)
        e.decoded.synchronize()  # the one host wait per batch: the gate logits
        self._frames = f0 + k
        return s.gates_host.array(np.float32, (f0 + k,))[f0:].copy()

    def mel(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        e, s = self._engine, self._live()
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


class _Vocoder:
    """Postnet + WaveGlow on stream B, with the engine's vocoder buffers (vocoder thread only)."""

    def __init__(self, engine: GpuEngine) -> None:
        self.e = engine
        self.postnet_out = DeviceBuffer()
        self.window = DeviceBuffer()
        self.noise = DeviceBuffer()
        self.noise_host = HostBuffer()
        self.audio = DeviceBuffer()
        self.audio_host = HostBuffer()
        self.done = Event()

    def vocode(self, slot: _Slot, start: int, stop: int, limit: int,
               noise: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        e = self.e
        c = e.config
        m, hop = c.decoder.n_mel_channels, c.audio.hop_length
        ctx = c.decoder.postnet_context_frames
        lo, hi = max(0, start - ctx), min(limit, stop + ctx)
        t, w = hi - lo, stop - start
        set_device(e.device_index)
        self.postnet_out.ensure(F32 * m * t)
        self.window.ensure(F32 * m * w)
        self.noise.ensure(noise.nbytes)
        self.noise_host.ensure(noise.nbytes)
        self.audio.ensure(F32 * w * hop)
        self.audio_host.ensure(F32 * w * hop)
        b = e.stream_b
        b.wait(e.decoded)  # order after the decoder's writes of these frames, on the GPU
        e.runners["postnet"].run({"mel_frames": DeviceTensor(slot.mel.ptr + F32 * m * lo, (1, t, m))},
                                 {"mel_postnet": DeviceTensor(self.postnet_out.ptr, (1, m, t))})
        copy_2d_async(self.window.ptr, F32 * w, self.postnet_out.ptr + F32 * (start - lo), F32 * t, F32 * w, m, b)
        self.noise_host.array(np.float32, noise.shape)[:] = noise
        copy_async(self.noise.ptr, self.noise_host.ptr, noise.nbytes, b)
        e.runners["waveglow"].run({"mel": DeviceTensor(self.window.ptr, (1, m, w)),
                                   "noise": DeviceTensor(self.noise.ptr, noise.shape)},
                                  {"audio": DeviceTensor(self.audio.ptr, (1, w * hop))})
        copy_async(self.audio_host.ptr, self.audio.ptr, F32 * w * hop, b)
        self.done.record(b)
        self.done.synchronize()  # the one host wait per chunk: the audio
        return self.audio_host.array(np.float32, (w * hop,)).copy()

    def close(self) -> None:
        for owned in (self.postnet_out, self.window, self.noise, self.noise_host, self.audio, self.audio_host,
                      self.done):
            owned.close()


class GpuEngine:
    """A voice's four graphs on one GPU, run by ``runner_factory``'s runners."""

    def __init__(self, folder: Path, config: VoiceConfig, device_index: int, name: str,
                 runner_factory: RunnerFactory) -> None:
        self.name = name
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
        self.vocoder: _Vocoder | None = None
        try:
            for graph in GRAPH_NAMES:
                stream = self.stream_a if graph in ("encoder", "decoder_step") else self.stream_b
                self.runners[graph] = runner_factory(graph, folder / config.graphs[graph], stream)
            self.vocoder = _Vocoder(self)
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
