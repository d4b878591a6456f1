"""The decoder-step kernels on a real GPU, outside the engine: upload a case, run k steps, read back.

Used by cuda_backend_check.py. Buffers are laid out as the engine's rows and ring
(rtvoice/engine/gpu_rows.py): frames ring[k + 1][B][r * n_mel], gates[k][B][r],
masks[k][B][2][P], two parities of state; step i reads ring[i] and parity i % 2. Modes:
``phases`` (seven launches a step), ``fused`` (one launch a step), ``persistent`` (one
launch for all k steps, ``steps = k``), and ``persistent_coop`` (the same, launched
cooperatively: CUDA guarantees every block is resident, or refuses the launch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rtvoice.config import threshold_logit
from rtvoice.cuda import CudaGraph, DeviceBuffer, Event, Stream, copy_async
from rtvoice.engine.cuda_step import DEFAULT_SHAPE, KernelShape, StepKernels, StepParams
from rtvoice.engine.gpu_runner import DeviceTensor
from rtvoice.engine.graphs import STATE_NAMES
from rtvoice.engine.step_weights import PackedStep

F32 = 4


class Harness:
    """B rows of T symbols, room for k steps, on one stream."""

    def __init__(self, packed: PackedStep, launcher: Any, sms: int, B: int, T: int, k: int, mode: str,
                 shape: KernelShape = DEFAULT_SHAPE) -> None:
        """``launcher``'s kernels must be compiled for ``shape`` (it sizes grids and shared memory)."""
        d = packed.dims
        self.d, self.B, self.T, self.k, self.mode = d, B, T, k, mode
        self.width = d.r * d.n_mel
        self.stream = Stream()
        self.kernels = StepKernels(packed, launcher, self.stream, mode="phases" if mode == "phases" else "fused",
                                   sm_count=sms, cooperative=mode.endswith("_coop"), shape=shape)
        self.runner = self.kernels.runner(B, T, self.stream)
        self.dims = {"attention_hidden": d.attention_rnn, "attention_cell": d.attention_rnn,
                     "decoder_hidden": d.decoder_rnn, "decoder_cell": d.decoder_rnn,
                     "attention_weights": T, "attention_weights_cum": T, "attention_context": d.encoder}
        self.bufs: list[DeviceBuffer] = []
        self.ring = self._buf((k + 1) * B * self.width)
        self.gates = self._buf(k * B * d.r)
        self.masks = self._buf(k * B * 2 * d.prenet)
        self.states = [{n: self._buf(B * e) for n, e in self.dims.items()} for _ in range(2)]
        self.memory = self._buf(B * T * d.encoder)
        self.processed = self._buf(B * T * d.attention)
        self.mask = DeviceBuffer(B * T)
        self.bufs.append(self.mask)
        self.graph: CudaGraph | None = None

    def _buf(self, floats: int) -> DeviceBuffer:
        buffer = DeviceBuffer(F32 * floats)
        buffer.memset(0, self.stream)
        self.bufs.append(buffer)
        return buffer

    def _put(self, ptr: int, array: np.ndarray) -> None:
        a = np.ascontiguousarray(array)
        copy_async(ptr, int(a.ctypes.data), a.nbytes, self.stream)
        self.stream.synchronize()

    def _get(self, ptr: int, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        out = np.empty(shape, dtype)
        copy_async(int(out.ctypes.data), ptr, out.nbytes, self.stream)
        self.stream.synchronize()
        return out

    def load(self, inputs: dict[str, np.ndarray], masks: np.ndarray) -> None:
        """A step case's inputs as step 0, and ``masks`` (k, B, 2, P) for the k steps."""
        self._put(self.ring.ptr, inputs["decoder_input"].astype(np.float32))
        for name in STATE_NAMES:
            self._put(self.states[0][name].ptr, inputs[name].astype(np.float32))
        self._put(self.memory.ptr, inputs["memory"].astype(np.float32))
        self._put(self.processed.ptr, inputs["processed_memory"].astype(np.float32))
        self._put(self.mask.ptr, inputs["mask"].astype(np.uint8))
        self._put(self.masks.ptr, masks.astype(np.float32))

    def params(self, i: int) -> StepParams:
        """Step i's launch parameters (ring[i] in, ring[i + 1] out, parity i % 2 in)."""
        d, B, T = self.d, self.B, self.T
        src, dst = self.states[i % 2], self.states[1 - i % 2]
        inputs = {"decoder_input": DeviceTensor(self.ring.ptr + F32 * i * B * self.width, (B, self.width)),
                  **{n: DeviceTensor(src[n].ptr, (B, e)) for n, e in self.dims.items()},
                  "memory": DeviceTensor(self.memory.ptr, (B, T, d.encoder)),
                  "processed_memory": DeviceTensor(self.processed.ptr, (B, T, d.attention)),
                  "mask": DeviceTensor(self.mask.ptr, (B, T), np.bool_),
                  "prenet_masks": DeviceTensor(self.masks.ptr + F32 * i * B * 2 * d.prenet, (B, 2, d.prenet))}
        outputs = {"mel_frame": DeviceTensor(self.ring.ptr + F32 * (i + 1) * B * self.width, (B, self.width)),
                   "gate": DeviceTensor(self.gates.ptr + F32 * i * B * d.r, (B, d.r)),
                   **{f"next_{n}": DeviceTensor(dst[n].ptr, (B, e)) for n, e in self.dims.items()}}
        return self.runner.params(inputs, outputs)

    def enqueue(self, steps: int, stop_on_gate: float | None = None) -> None:
        """Queue ``steps`` steps in this harness's mode (no host wait)."""
        if self.mode.startswith("persistent"):
            p = self.params(0)
            p.steps, p.frame_step, p.gate_step = steps, self.B * self.width, self.B * self.d.r
            p.drop_step = self.B * 2 * self.d.prenet
            if stop_on_gate is not None:
                self.runner.zero_row_done()
                p.stop_on_gate, p.gate_logit = 1, threshold_logit(stop_on_gate)
            self.runner.launch(p)
            return
        for i in range(steps):
            self.runner.launch(self.params(i))

    def capture(self, steps: int) -> None:
        """Capture ``steps`` steps as one CUDA graph (after one ordinary run)."""
        self.enqueue(steps)
        self.stream.synchronize()
        self.graph = CudaGraph.capture(self.stream, lambda: self.enqueue(steps))

    def time_us_per_step(self, steps: int, repeats: int, graph: bool) -> float:
        """Median µs per step over ``repeats`` runs of ``steps`` steps, by CUDA events."""
        captured = self.graph if graph else None
        if captured is not None:
            return self._median_us(lambda: captured.launch(self.stream), repeats, steps)
        return self._median_us(lambda: self.enqueue(steps), repeats, steps)

    def _median_us(self, launch: Callable[[], None], repeats: int, per: int) -> float:
        """Median µs of ``launch()`` on the stream, divided by ``per``, over ``repeats`` runs timed by CUDA events."""
        start, end = Event(timing=True), Event(timing=True)
        times = []
        try:
            for _ in range(repeats):
                start.record(self.stream)
                launch()
                end.record(self.stream)
                end.synchronize()
                times.append(start.elapsed_ms(end) * 1000.0 / per)
        finally:
            start.close()
            end.close()
        return float(np.median(times))

    def phase_us(self, kernel: str, repeats: int = 64) -> float:
        """µs of one launch of a phase kernel, as ``repeats`` launches in a CUDA graph (events).

        Each launch reads step 0's inputs and writes its outputs again, so repeating one phase
        is idempotent; the sum over phases is the phases mode's step, less launch overlap.
        """
        params = self.params(0)
        grid, threads, smem = self.runner.grids[kernel], 256, self.runner.smem
        stream = self.stream.handle

        def enqueue() -> None:
            for _ in range(repeats):
                self.kernels.launcher.launch(kernel, grid, threads, smem, stream, params)

        enqueue()
        self.stream.synchronize()
        graph = CudaGraph.capture(self.stream, enqueue)
        try:
            graph.launch(self.stream)
            return self._median_us(lambda: graph.launch(self.stream), 5, repeats)
        finally:
            graph.close()

    def read(self, steps: int) -> dict[str, np.ndarray]:
        """Frames (steps, B, r * n_mel), gates (steps, B, r) and the state after ``steps`` steps."""
        B, d = self.B, self.d
        out = {"mel": self._get(self.ring.ptr + F32 * B * self.width, (steps, B, self.width)),
               "gate": self._get(self.gates.ptr, (steps, B, d.r))}
        final = self.states[steps % 2]
        for n, e in self.dims.items():
            out[f"next_{n}"] = self._get(final[n].ptr, (B, e))
        out["steps_done"] = self._get(self.runner.scratch["steps_done"].ptr, (1,), np.int32)
        return out

    def close(self) -> None:
        self.stream.synchronize()
        if self.graph is not None:
            self.graph.close()
        self.runner.close()
        self.kernels.close()
        for b in self.bufs:
            b.close()
        self.stream.close()
