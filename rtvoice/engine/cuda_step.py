"""The fused decoder step as a :class:`~.gpu_runner.GraphRunner`: our kernels on our buffers.

The GPU engine's batched decoder (:mod:`.gpu_decoder`) binds one run per ring step with
the addresses of its rows; here a bound run is a ready :class:`StepParams` and the
launches that read it, and launches only enqueue, so the decoder captures a batch's
``k`` steps as one CUDA graph. Three modes (``kernels/decoder_step.cu``):

- ``phases``: seven kernel launches a step, no grid-wide barrier (the safe default);
- ``fused``: one launch a step, phases separated by a grid-wide barrier, grid at most what
  is resident at once (SMs x occupancy) so that every block runs together;
- ``persistent``: the fused kernel looping over a batch's ``k`` steps in one launch
  (:meth:`StepRunner.bind_steps`, driven by the decoder's multi-step path): the ring and
  the state parities advance on the device, and it may stop once every row's gate fired.
  Launched cooperatively by default (CUDA then guarantees the co-residency the grid
  barrier needs, next to the vocoder's kernels on the other stream, or refuses); with
  ``StepKernels.graphs`` each launch shape is replayed as a one-kernel CUDA graph after
  its first direct launch (:class:`BoundSteps`), as the GPU check's bench times it.

Weights: the packed fp16 arrays (:mod:`.step_weights`) in one device buffer, uploaded at
open. Scratch (prenet output, query, energies) per runner, allocated when a batch bucket
first needs it, never inside the step loop. Decoder thread only.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import CUDA_STEPS, CudaStep
from ..cuda import CudaGraph, DeviceBuffer, Stream, copy_async, memset_async
from ..errors import BackendError, CudaError, InternalError
from .gpu_decoder import Ring
from .gpu_runner import DeviceTensor
from .graphs import STATE_NAMES
from .step_weights import PackedStep, StepDims

log = logging.getLogger("rtvoice.gpu")
KERNEL_SOURCE = Path(__file__).parent / "kernels" / "decoder_step.cu"
PHASES = ("k_prenet", "k_att_lstm", "k_query", "k_energy", "k_context", "k_dec_lstm", "k_project")
KERNELS = (*PHASES, "k_fused")
THREADS = 256
"""Threads per block; the kernel's THREADS."""
DATA = 32
"""Floats of shared memory before a phase's data; the kernel's DATA."""
MAX_SMEM = 48 * 1024
"""Dynamic shared memory a launch may use without opting in."""
ALIGN = 256
"""Byte alignment of each packed weight array inside the weights buffer."""



@dataclass(frozen=True)
class KernelShape:
    """How the kernels split their work: compile-time constants, passed to NVRTC as ``-D`` defines.

    The field defaults are the first GPU run's shape (and the ``.cu``'s own defaults, which a
    test holds equal); the engine compiles :data:`DEFAULT_SHAPE`. The GPU check's ``sweep``
    stage times other shapes beside it; ``RTVOICE_CUDA_KERNEL`` picks one for an engine
    (:func:`parse_shape`). The defines are part of the cubin's cache key, so each shape is
    compiled and cached on its own.
    """

    tile: int = 16
    """Attention positions per energy work item (``TILE``): fewer make more, shorter items."""
    quad: int = 4
    """Consecutive positions one energy thread computes (``QUAD``; divides ``tile``)."""
    ctx_channels: int = 64
    """Encoder channels per context work item (``CTX_CH``; divides the 256 threads)."""
    warp_scan: bool = False
    """Each warp reads a row's text length from its mask alone (``WARP_SCAN``), no block barrier."""
    fused_max_registers: int | None = None
    """A register cap for ``k_fused`` (``FUSED_MAXREG``); None lets ptxas choose (128 on sm_90)."""
    lstm_unroll: int = 2
    """Weight chunks an LSTM lane loads ahead (``LSTM_UNROLL``): fewer need fewer registers."""
    inner_unroll: int = 0
    """Unroll of the prenet's and the location conv's serial loops (``INNER_UNROLL``); 0: the compiler's."""
    fold_query: bool = False
    """No query phase (``FOLD_QUERY``): each energy item computes its row's query (one launch and
    one grid barrier less a step, the query's products repeated per item)."""

    def __post_init__(self) -> None:
        problems = []
        if self.quad not in (1, 2, 4, 8) or not 1 <= self.tile <= 64 or self.tile % self.quad:
            problems.append(f"tile={self.tile} must be 1-64 and a multiple of quad={self.quad} (1, 2, 4 or 8)")
        if self.ctx_channels < 1 or THREADS % self.ctx_channels:
            problems.append(f"ctx_channels={self.ctx_channels} must divide {THREADS}")
        if self.lstm_unroll not in (1, 2, 4):
            problems.append(f"lstm_unroll={self.lstm_unroll} must be 1, 2 or 4")
        if self.inner_unroll not in (0, 1, 2, 4, 8, 16):
            problems.append(f"inner_unroll={self.inner_unroll} must be 0, 1, 2, 4, 8 or 16")
        if self.fused_max_registers is not None and not 32 <= self.fused_max_registers <= 255:
            problems.append(f"fused_max_registers={self.fused_max_registers} must be 32-255")
        if problems:
            raise BackendError(f"Kernel shape: {'; '.join(problems)}.", backend="cuda")

    def defines(self) -> tuple[str, ...]:
        """The NVRTC (and g++) options that compile this shape."""
        out = (f"-DTILE={self.tile}", f"-DQUAD={self.quad}", f"-DCTX_CH={self.ctx_channels}",
               f"-DWARP_SCAN={int(self.warp_scan)}", f"-DLSTM_UNROLL={self.lstm_unroll}",
               f"-DINNER_UNROLL={self.inner_unroll}", f"-DFOLD_QUERY={int(self.fold_query)}")
        return out if self.fused_max_registers is None else (*out, f"-DFUSED_MAXREG={self.fused_max_registers}")

    @property
    def name(self) -> str:
        """A short name for reports: ``tile16-quad4-ctx64-block`` (``-reg64`` with a register cap)."""
        reg = f"-reg{self.fused_max_registers}" if self.fused_max_registers else ""
        fold = "-foldq" if self.fold_query else ""
        unroll = f"-unroll{self.lstm_unroll}" if self.lstm_unroll != 2 else ""
        unroll += f"-inner{self.inner_unroll}" if self.inner_unroll else ""
        return (f"tile{self.tile}-quad{self.quad}-ctx{self.ctx_channels}-{'warp' if self.warp_scan else 'block'}"
                f"{fold}{unroll}{reg}")

    @property
    def phases(self) -> tuple[str, ...]:
        """The phase kernels a ``phases`` step launches, in order."""
        return tuple(k for k in PHASES if not (self.fold_query and k == "k_query"))


DEFAULT_SHAPE = KernelShape()
"""The shape the engine compiles (``RTVOICE_CUDA_KERNEL`` overrides it): the one line to change
once a GPU run's sweep has measured a better one, e.g. ``KernelShape(tile=8, warp_scan=True)``
(docs/gpu.md, "Kernel shapes")."""


def parse_shape(text: str, base: KernelShape = DEFAULT_SHAPE) -> KernelShape:
    """``"tile=8,ctx_channels=32,warp_scan=1,fused_max_registers=64"`` over ``base``; BackendError if bad."""
    fields = {f.name: f for f in dataclasses.fields(KernelShape)}
    values: dict[str, int | bool | None] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in fields or not (value.strip().isascii() and value.strip().isdigit()):  # not "²"
            raise BackendError(f"Kernel shape item {item!r}: use name=integer with names "
                               f"{', '.join(fields)}.", backend="cuda")
        number = int(value)
        if key in ("warp_scan", "fold_query"):
            values[key] = bool(number)
        else:
            values[key] = number or None if key == "fused_max_registers" else number  # 0: no cap
    return dataclasses.replace(base, **values)  # type: ignore[arg-type]


Mode = CudaStep
"""A kernel mode: the voice's ``batching.cuda_step`` values (rtvoice/config.py names them)."""
MODES = CUDA_STEPS
_P = ctypes.c_uint64
_I = ctypes.c_int64


class StepParams(ctypes.Structure):
    """The kernel's ``struct StepParams``, field for field (a test checks the C source)."""

    _fields_ = [
        *((name, _P) for name in ("pre0", "pre1", "att_w", "att_b", "query", "loc", "v", "dec_w", "dec_b",
                                  "out_w", "out_b", "frame", "mel", "gate", "drop", "memory", "processed",
                                  "mask")),
        ("state", (_P * 7) * 2),
        *((name, _P) for name in ("x_pre", "pq", "energy", "barrier", "row_done", "steps_done")),
        *((name, _I) for name in ("B", "T", "n_mel", "r", "P", "E", "Ha", "Hd", "A", "K",
                                  "steps", "frame_step", "gate_step", "drop_step", "stop_on_gate")),
        ("gate_logit", ctypes.c_double),
    ]


class Launcher(Protocol):
    """What launches the kernels: :class:`rtvoice.cuda.module.CudaModule` (a fake in CPU tests)."""

    def launch(self, kernel: str, grid: int, threads: int, smem: int, stream: int, params: ctypes.Structure,
               *, cooperative: bool = False) -> None: ...

    def max_blocks_per_sm(self, kernel: str, threads: int, smem: int) -> int: ...


def smem_bytes(dims: StepDims, text_length: int, shape: KernelShape = DEFAULT_SHAPE) -> int:
    """Dynamic shared memory of every launch: the largest phase's (see the kernel's phases)."""
    prenet = dims.n_mel + dims.prenet
    tile = shape.tile
    energy = 2 * (tile + dims.location_kernel - 1) + 2 * dims.attention + tile * dims.attention
    return 4 * (DATA + max(prenet, energy, text_length + THREADS))


def phase_grids(dims: StepDims, batch: int, text_length: int, shape: KernelShape = DEFAULT_SHAPE) -> dict[str, int]:
    """Blocks per phase kernel: one per work item (each phase loops over items if given fewer)."""
    warps = THREADS // 32
    return {
        "k_prenet": batch * math.ceil(dims.prenet / 32),
        "k_att_lstm": math.ceil(dims.attention_rnn / warps),
        "k_query": math.ceil(dims.attention / warps),
        "k_energy": batch * math.ceil(text_length / shape.tile),
        "k_context": batch * math.ceil(dims.encoder / shape.ctx_channels),
        "k_dec_lstm": math.ceil(dims.decoder_rnn / warps),
        "k_project": math.ceil(dims.outputs / warps),
    }


class DeviceWeights:
    """The packed weights in one device buffer; ``ptrs[name]`` is each array's address."""

    def __init__(self, packed: PackedStep, stream: Stream) -> None:
        if packed.att_w.dtype != np.float16:
            raise InternalError("the kernel reads fp16 weights: pack with dtype=np.float16")
        arrays = packed.arrays()
        offsets, total = {}, 0
        for name, array in arrays.items():
            offsets[name] = total
            total += -(-array.nbytes // ALIGN) * ALIGN
        self.buffer = DeviceBuffer(total)
        self.ptrs = {name: self.buffer.ptr + offset for name, offset in offsets.items()}
        for name, array in arrays.items():
            copy_async(self.ptrs[name], int(array.ctypes.data), array.nbytes, stream)
        stream.synchronize()  # the host arrays may go once the copies have run
        self.nbytes = total

    def close(self) -> None:
        self.buffer.close()


class StepKernels:
    """One engine's decoder-step kernels: the weights on the device and the launcher."""

    def __init__(self, packed: PackedStep, launcher: Launcher, stream: Stream, *, mode: Mode = "phases",
                 sm_count: int = 1, cooperative: bool = False, gate_logit: float = math.inf,
                 shape: KernelShape = DEFAULT_SHAPE, graphs: bool = False) -> None:
        """Upload the weights.

        ``shape`` must be the one ``launcher``'s kernels were compiled with (it sizes the
        grids and shared memory);
        ``cooperative`` launches the fused kernel with CUDA's residency guarantee;
        ``graphs`` lets persistent launches replay as CUDA graphs (:class:`BoundSteps`; the
        engine passes ``batching.cuda_graphs``), turned off for good if a capture fails;
        ``gate_logit``: a row's gate has fired once a logit exceeds it (the persistent
        kernel's device-side stop), rounded to fp32 so the device and numpy's fp32
        comparison of the host's gate logits always agree.
        """
        if mode not in MODES:
            raise BackendError(f"Decoder kernel mode {mode!r}; use one of {', '.join(MODES)}.", backend="cuda")
        self.dims = packed.dims
        self.launcher = launcher
        self.mode: Mode = mode
        self.sm_count = sm_count
        self.cooperative = cooperative
        self.gate_logit = float(np.float32(gate_logit))
        self.shape = shape
        self.graphs = graphs
        self.weights = DeviceWeights(packed, stream)

    def runner(self, rows: int, text_length: int, stream: Stream) -> StepRunner:
        """A runner for ``rows`` rows of ``text_length`` symbols (one per batch bucket)."""
        return StepRunner(self, rows, text_length, stream)

    def fused_grid(self, rows: int, text_length: int) -> int:
        """Blocks of a fused launch: at most what is resident at once, at most the work there is."""
        smem = smem_bytes(self.dims, text_length, self.shape)
        resident = self.sm_count * self.launcher.max_blocks_per_sm("k_fused", THREADS, smem)
        if resident < 1:
            raise BackendError("The fused decoder kernel does not fit on an SM of this GPU. "
                               "Hint: use RTVOICE_CUDA_STEP=phases.", backend="cuda")
        return max(1, min(resident, max(phase_grids(self.dims, rows, text_length, self.shape).values())))

    def close(self) -> None:
        self.weights.close()


class StepRunner:
    """A :class:`~.gpu_runner.GraphRunner` for the decoder step at ``rows`` rows."""

    enqueue_only = True
    """Launches only enqueue: the decoder may capture them as a CUDA graph."""

    def __init__(self, kernels: StepKernels, rows: int, text_length: int, stream: Stream) -> None:
        d = kernels.dims
        self.kernels, self.rows, self.text_length, self.stream = kernels, rows, text_length, stream
        self.smem = smem_bytes(d, text_length, kernels.shape)
        if self.smem > MAX_SMEM:
            raise BackendError(f"A text length of {text_length} needs {self.smem} bytes of shared memory per "
                               f"block; the decoder kernel takes at most {MAX_SMEM}. Hint: lower "
                               "profiles.text_length.max in voice.json.", backend="cuda")
        self.scratch = {name: DeviceBuffer(4 * n) for name, n in
                        (("x_pre", rows * d.prenet), ("pq", rows * d.attention), ("energy", rows * text_length),
                         ("barrier", 2), ("row_done", rows), ("steps_done", 1))}
        for buffer in self.scratch.values():
            buffer.memset(0, stream)  # the grid barrier starts at zero, and stays consistent after each launch
        self.grid = kernels.fused_grid(rows, text_length) if kernels.mode != "phases" else 0
        self.grids = phase_grids(d, rows, text_length, kernels.shape)
        self.bound_steps: list[BoundSteps] = []
        """What :meth:`bind_steps` made: their graphs go with this runner."""

    def params(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> StepParams:
        """The launch parameters of one step with these addresses (state parity 0 in, 1 out)."""
        d, w = self.kernels.dims, self.kernels.weights.ptrs
        rows, width = inputs["decoder_input"].shape
        if rows != self.rows or width != d.r * d.n_mel or inputs["memory"].shape[1] != self.text_length:
            raise InternalError(f"decoder step bound with {inputs['decoder_input'].shape} rows of "
                                f"{inputs['memory'].shape[1]} symbols; the runner has {self.rows} of "
                                f"{self.text_length}")
        p = StepParams(**{name: w[name] for name in w})
        p.frame, p.mel, p.gate = inputs["decoder_input"].ptr, outputs["mel_frame"].ptr, outputs["gate"].ptr
        p.drop, p.memory = inputs["prenet_masks"].ptr, inputs["memory"].ptr
        p.processed, p.mask = inputs["processed_memory"].ptr, inputs["mask"].ptr
        for i, name in enumerate(STATE_NAMES):
            p.state[0][i] = inputs[name].ptr
            p.state[1][i] = outputs[f"next_{name}"].ptr
        for name in ("x_pre", "pq", "energy", "barrier", "row_done", "steps_done"):
            setattr(p, name, self.scratch[name].ptr)
        p.B, p.T, p.n_mel, p.r, p.P, p.E = rows, self.text_length, d.n_mel, d.r, d.prenet, d.encoder
        p.Ha, p.Hd, p.A, p.K = d.attention_rnn, d.decoder_rnn, d.attention, d.location_kernel
        p.steps, p.stop_on_gate, p.gate_logit = 1, 0, math.inf
        return p

    def bind(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> BoundStep:
        return BoundStep(self, self.params(inputs, outputs))

    @property
    def multi_step(self) -> bool:
        """Persistent mode: the decoder binds one multi-step launch instead of one run per step."""
        return self.kernels.mode == "persistent"

    def bind_steps(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor],
                   ring: Ring) -> BoundSteps:
        """Step 0 at these addresses, step s ``s`` ring strides on, parity ``s % 2`` (see ``step_of`` in the .cu)."""
        p = self.params(inputs, outputs)
        p.frame_step, p.gate_step, p.drop_step = ring.frame_step, ring.gate_step, ring.drop_step
        p.row_done, p.steps_done, p.gate_logit = ring.row_done, ring.steps_done, self.kernels.gate_logit
        bound = BoundSteps(self, p)
        self.bound_steps.append(bound)
        return bound

    def run(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> None:
        self.bind(inputs, outputs).run()

    def launch(self, params: StepParams) -> None:
        """Enqueue one step (or ``params.steps`` fused steps) on the runner's stream."""
        k, stream = self.kernels, self.stream.handle
        if k.mode != "phases" or params.steps != 1:
            k.launcher.launch("k_fused", self.grid or k.fused_grid(self.rows, self.text_length), THREADS,
                              self.smem, stream, params, cooperative=k.cooperative)
            return
        for name in k.shape.phases:
            k.launcher.launch(name, self.grids[name], THREADS, self.smem, stream, params)

    def zero_row_done(self) -> None:
        """Before a fused launch that stops on the gate: no row has finished yet."""
        memset_async(self.scratch["row_done"].ptr, 0, 4 * self.rows, self.stream)

    def close(self) -> None:
        for bound in self.bound_steps:
            bound.close()
        self.bound_steps = []
        for buffer in self.scratch.values():
            buffer.close()
        self.scratch = {}


@dataclass
class BoundStep:
    """A step with every address fixed: ``run()`` only launches (so it can be captured)."""

    runner: StepRunner
    params: StepParams

    def run(self) -> None:
        self.runner.launch(self.params)


@dataclass
class BoundSteps:
    """Up to a ring of steps in one launch of the persistent kernel (a :class:`~.gpu_decoder.MultiStepRun`).

    Each launch shape (steps, stop_on_gate) is launched directly once, then, where the
    kernels allow graphs, captured as a one-kernel CUDA graph and replayed: the way the
    decoder runs ``phases`` and ``fused`` batches, and the way the GPU check's bench timed
    the persistent kernel (tools/gpu/kernel_harness.py). The graph holds the kernel's
    arguments as captured; every address is fixed at bind time, so only the shape varies.
    """

    runner: StepRunner
    params: StepParams
    graphs: dict[tuple[int, int], CudaGraph] = field(default_factory=dict)
    warm: set[tuple[int, int]] = field(default_factory=set)
    """Shapes launched directly once: the next launch of one captures it."""

    def run(self, steps: int, stop_on_gate: bool) -> None:
        """Enqueue the launch: its graph if captured, else the kernel (its arguments are copied at launch)."""
        if steps < 1:
            raise InternalError(f"a persistent launch of {steps} steps")
        key = (steps, int(stop_on_gate))
        graph = self.graphs.get(key)
        if graph is None and key in self.warm and self.runner.kernels.graphs:
            graph = self._capture(key)
        if graph is not None:
            graph.launch(self.runner.stream)
            return
        self.warm.add(key)
        self.params.steps, self.params.stop_on_gate = key
        self.runner.launch(self.params)

    def _capture(self, key: tuple[int, int]) -> CudaGraph | None:
        fixed = StepParams.from_buffer_copy(self.params)
        fixed.steps, fixed.stop_on_gate = key
        try:
            graph = CudaGraph.capture(self.runner.stream, lambda: self.runner.launch(fixed))
        except CudaError:
            log.warning("capturing a persistent decoder launch as a CUDA graph failed; launching it directly",
                        exc_info=True)
            self.runner.kernels.graphs = False
            return None
        self.graphs[key] = graph
        log.debug("captured a persistent launch of %d steps (stop %d) of %d rows", *key, self.runner.rows)
        return graph

    def close(self) -> None:
        """Free the graphs (after the stream's queued work: the engine synchronizes first)."""
        for graph in self.graphs.values():
            graph.close()
        self.graphs, self.warm = {}, set()
