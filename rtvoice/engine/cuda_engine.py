"""The ``cuda`` backend (issue 26): the decoder loop on our own fused kernels.

The decoder step runs ``kernels/decoder_step.cu`` (compiled by NVRTC for this GPU, cached
per architecture) through :mod:`.cuda_step`, inside the shared GPU engine: the same rows,
continuous batching, ring and CUDA graphs as the other GPU backends, with no framework in
the step loop. The encoder, postnet and WaveGlow run as ONNX Runtime CUDA sessions on our
buffers (``rtvoice.ort.cuda_engine``), or through whatever ``runner_factory`` is given.

The kernel mode is the voice's ``batching.cuda_step`` (``RTVOICE_CUDA_STEP`` overrides it):
``phases`` (seven launches a step, the default), ``fused`` (one launch a step with
grid-wide barriers) or ``persistent`` (one launch a batch of ``gate_check_interval``
steps, the fused kernel looping on the device; see :mod:`.gpu_decoder` for why it runs
between the host's row-management points). ``RTVOICE_CUDA_COOPERATIVE=1``/``0`` sets
cooperative launches (CUDA guarantees every block is resident, or refuses the launch);
by default only ``persistent`` launches cooperatively, since it holds its grid for many
steps. Its launches are replayed as CUDA graphs after the first of each shape, as the
other modes' batches are (``batching.cuda_graphs``). ``RTVOICE_CUDA_KERNEL`` compiles another
:class:`~.cuda_step.KernelShape` (work-item sizes, a register cap) than the default. A
persistent launch stops on the device once the gates of all its sentences fired, when
each opted in (:meth:`KernelEngine.stop_at_gate`; the synthesizer does, without
``force_steps``). The GPU check (tools/gpu/cuda_backend_check.sh) measures the three side
by side and whether cooperative launches capture into graphs, and times other shapes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config import VoiceConfig
from ..cuda import Stream, get_device_info, set_device
from ..errors import BackendError
from .cuda_step import (
    DEFAULT_SHAPE,
    KERNEL_SOURCE,
    KERNELS,
    MODES,
    KernelShape,
    Launcher,
    Mode,
    StepKernels,
    StepRunner,
    parse_shape,
)
from .gpu_engine import GpuEngine
from .gpu_runner import RunnerFactory
from .protocol import Utterance
from .step_weights import load_packed

log = logging.getLogger("rtvoice.gpu")

NVRTC_OPTIONS = ("-lineinfo",)
"""``-lineinfo`` maps profiler samples to source lines; it does not change the code."""


def step_mode(config: VoiceConfig | None = None) -> Mode:
    """The kernel mode: ``RTVOICE_CUDA_STEP`` if set, else the voice's ``batching.cuda_step``."""
    mode = os.environ.get("RTVOICE_CUDA_STEP") or (config.batching.cuda_step if config else "phases")
    if mode not in MODES:
        raise BackendError(f"RTVOICE_CUDA_STEP={mode!r}; use {', '.join(MODES)}.", backend="cuda")
    return mode


def cooperative_launch(mode: Mode) -> bool:
    """``RTVOICE_CUDA_COOPERATIVE`` (1 or 0) if set, else cooperative for ``persistent`` only."""
    value = os.environ.get("RTVOICE_CUDA_COOPERATIVE", "")
    if value not in ("", "0", "1"):
        raise BackendError(f"RTVOICE_CUDA_COOPERATIVE={value!r}; use 1 or 0.", backend="cuda")
    return value == "1" if value else mode == "persistent"


def kernel_shape() -> KernelShape:
    """``RTVOICE_CUDA_KERNEL`` (e.g. ``tile=8,warp_scan=1``) over :data:`~.cuda_step.DEFAULT_SHAPE`."""
    text = os.environ.get("RTVOICE_CUDA_KERNEL", "")
    try:
        return parse_shape(text) if text else DEFAULT_SHAPE
    except BackendError as exc:
        raise BackendError(f"RTVOICE_CUDA_KERNEL={text!r}: {exc}", backend="cuda") from exc


def load_module(device_index: int, shape: KernelShape = DEFAULT_SHAPE) -> tuple[Launcher, int]:
    """Compile (or take from the cache) and load the kernels of ``shape`` for this GPU; (launcher, SM count)."""
    from ..cuda.module import CudaModule
    from ..cuda.nvrtc import cached_cubin

    info = get_device_info(device_index)
    arch = info.compute_capability[0] * 10 + info.compute_capability[1]
    compiled = cached_cubin(KERNEL_SOURCE.read_text(), KERNEL_SOURCE.name, arch, (*NVRTC_OPTIONS, *shape.defines()))
    log.info("decoder kernels %s for sm_%d (%s, %.2f s)", shape.name, arch,
             "cached" if compiled.cached else "compiled", compiled.seconds)
    from cuda.bindings import runtime

    from ..cuda import call

    sms = int(call(runtime.cudaDeviceGetAttribute, runtime.cudaDeviceAttr.cudaDevAttrMultiProcessorCount,
                   device_index))
    return CudaModule(compiled.cubin, KERNELS), sms


def _ort_factory(device_index: int, config: VoiceConfig) -> RunnerFactory:
    from ..ort.cuda_engine import graph_runners  # onnxruntime only when no other factory was given

    return graph_runners(device_index, config)


class KernelEngine(GpuEngine):
    """Our fused decoder step; the other graphs through ``runner_factory`` (ONNX Runtime CUDA)."""

    def __init__(self, folder: Path, config: VoiceConfig, device_index: int, *,
                 runner_factory: RunnerFactory | None = None, launcher: Launcher | None = None,
                 sm_count: int | None = None, mode: Mode | None = None, shape: KernelShape | None = None) -> None:
        """Compile or load the kernels, upload the packed weights, open the other graphs.

        Args:
            folder: The voice folder.
            config: The voice.
            device_index: The CUDA device.
            runner_factory: Runners of the encoder, postnet and WaveGlow (default: ONNX
                Runtime CUDA).
            launcher: Launches the kernels (default: NVRTC-compiled module for this GPU;
                CPU tests pass an emulation).
            sm_count: SMs of the GPU (with ``launcher``; sizes the fused grid).
            mode: ``phases``, ``fused`` or ``persistent`` (default: :func:`step_mode`).
            shape: The kernels' work split (default: :func:`kernel_shape`); with
                ``launcher``, the shape it was built with.
        """
        mode = mode or step_mode(config)  # settings first: a bad one fails before anything is loaded
        cooperative = cooperative_launch(mode)
        shape = shape or kernel_shape()
        packed = load_packed(folder / config.graphs["decoder_step"])
        set_device(device_index)
        owned = launcher is None
        if launcher is None:
            launcher, sm_count = load_module(device_index, shape)
        self._module = launcher if owned else None
        self.kernels: StepKernels | None = None
        try:
            with Stream() as upload:
                self.kernels = StepKernels(packed, launcher, upload, mode=mode, sm_count=sm_count or 1,
                                           cooperative=cooperative,
                                           gate_logit=config.decoder.gate_logit, shape=shape,
                                           graphs=config.batching.cuda_graphs)
            super().__init__(folder, config, device_index, "cuda", runner_factory or _ort_factory(device_index, config),
                             self._step_runner, capture=True)
        except BaseException:
            self._close_kernels()
            raise

    def stop_at_gate(self, utterance: Utterance) -> None:
        """Let persistent launches stop on the device once this sentence's gate fired.

        :class:`~rtvoice.engine.protocol.StopsAtGate`: only for a consumer that never uses
        frames past the first fired gate. The synthesizer's ``open_sentence`` calls it for
        every sentence without ``force_steps`` (sync core and async pipeline alike). The steps
        skipped are never decoded, their gate logits read +inf, and the utterance may not
        decode again. A launch stops only when every sentence in it opted in; ``phases`` and
        ``fused`` ignore it (their batches are captured graphs of ``k`` steps).
        """
        self._own(utterance, "stop_at_gate").member.stop_at_gate = True

    def _step_runner(self, rows: int, text_length: int) -> StepRunner:
        if self.kernels is None:
            raise BackendError("engine used after close()", backend="cuda")
        return self.kernels.runner(rows, text_length, self.stream_a)

    def _close_kernels(self) -> None:
        if self.kernels is not None:
            self.kernels.close()
            self.kernels = None
        module, self._module = self._module, None
        if module is not None:
            close = getattr(module, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        """Idempotent: the shared engine first (it waits for the streams), then weights and module."""
        super().close()
        self._close_kernels()


__all__ = ["KernelEngine", "cooperative_launch", "kernel_shape", "load_module", "step_mode"]
