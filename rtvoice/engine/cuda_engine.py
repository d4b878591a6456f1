"""The ``cuda`` backend (issue 26): the decoder loop on our own fused kernels.

The decoder step runs ``kernels/decoder_step.cu`` (compiled by NVRTC for this GPU, cached
per architecture) through :mod:`.cuda_step`, inside the shared GPU engine: the same rows,
continuous batching, ring and CUDA graphs as the other GPU backends, with no framework in
the step loop. The encoder, postnet and WaveGlow run as ONNX Runtime CUDA sessions on our
buffers (``rtvoice.ort.cuda_engine``), or through whatever ``runner_factory`` is given.

``RTVOICE_CUDA_STEP`` picks the kernel mode: ``phases`` (seven launches a step, the
default) or ``fused`` (one launch a step with grid-wide barriers); with ``fused``,
``RTVOICE_CUDA_COOPERATIVE=1`` launches it cooperatively (CUDA guarantees every block is
resident, or refuses the launch). The GPU check (tools/gpu/cuda_backend_check.sh) measures
which is fastest and whether cooperative launches capture into CUDA graphs there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import cast

from ..config import VoiceConfig
from ..cuda import Stream, get_device_info, set_device
from ..errors import BackendError
from .cuda_step import KERNEL_SOURCE, KERNELS, Launcher, Mode, StepKernels, StepRunner
from .gpu_engine import GpuEngine
from .gpu_runner import RunnerFactory
from .step_weights import load_packed

log = logging.getLogger("rtvoice.gpu")

NVRTC_OPTIONS = ("-lineinfo",)
"""``-lineinfo`` maps profiler samples to source lines; it does not change the code."""


def step_mode() -> Mode:
    """The kernel mode from ``RTVOICE_CUDA_STEP`` (``phases`` or ``fused``)."""
    mode = os.environ.get("RTVOICE_CUDA_STEP", "phases")
    if mode not in ("phases", "fused"):
        raise BackendError(f"RTVOICE_CUDA_STEP={mode!r}; use phases or fused.", backend="cuda")
    return cast(Mode, mode)


def load_module(device_index: int) -> tuple[Launcher, int]:
    """Compile (or take from the cache) and load the kernels for this GPU; (launcher, SM count)."""
    from ..cuda.module import CudaModule
    from ..cuda.nvrtc import cached_cubin

    info = get_device_info(device_index)
    arch = info.compute_capability[0] * 10 + info.compute_capability[1]
    compiled = cached_cubin(KERNEL_SOURCE.read_text(), KERNEL_SOURCE.name, arch, NVRTC_OPTIONS)
    log.info("decoder kernels for sm_%d (%s, %.2f s)", arch, "cached" if compiled.cached else "compiled",
             compiled.seconds)
    from cuda.bindings import runtime

    from ..cuda import call

    sms = int(call(runtime.cudaDeviceGetAttribute, runtime.cudaDeviceAttr.cudaDevAttrMultiProcessorCount,
                   device_index))
    return CudaModule(compiled.cubin, KERNELS), sms


def _ort_factory(device_index: int) -> RunnerFactory:
    import onnxruntime as ort

    from ..ort.cuda_engine import OrtCudaRunner

    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()  # onnxruntime-gpu finds the CUDA libraries of the nvidia-* wheels this way
    return lambda graph, path, stream: OrtCudaRunner(path, device_index, stream)


class KernelEngine(GpuEngine):
    """Our fused decoder step; the other graphs through ``runner_factory`` (ONNX Runtime CUDA)."""

    def __init__(self, folder: Path, config: VoiceConfig, device_index: int, *,
                 runner_factory: RunnerFactory | None = None, launcher: Launcher | None = None,
                 sm_count: int | None = None, mode: Mode | None = None) -> None:
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
            mode: ``phases`` or ``fused`` (default: :func:`step_mode`).
        """
        packed = load_packed(folder / config.graphs["decoder_step"])
        set_device(device_index)
        owned = launcher is None
        if launcher is None:
            launcher, sm_count = load_module(device_index)
        self._module = launcher if owned else None
        cooperative = os.environ.get("RTVOICE_CUDA_COOPERATIVE", "0") == "1"
        with Stream() as upload:
            self.kernels: StepKernels | None = StepKernels(packed, launcher, upload, mode=mode or step_mode(),
                                                           sm_count=sm_count or 1, cooperative=cooperative)
        try:
            super().__init__(folder, config, device_index, "cuda", runner_factory or _ort_factory(device_index),
                             self._step_runner, capture=True)
        except BaseException:
            self._close_kernels()
            raise

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


__all__ = ["KernelEngine", "load_module", "step_mode"]
