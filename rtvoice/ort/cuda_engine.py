"""ONNX Runtime on CUDA: the shared GPU engine, with IO binding onto our device buffers.

Each graph gets its own session whose CUDA execution provider runs on the stream we
created for it (``user_compute_stream``): the encoder and decoder step on stream A, the
postnet and WaveGlow on stream B. Inputs and outputs are bound to our buffers by address,
so no tensor crosses to the host except the gate logits and the audio.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import onnxruntime as ort

from ..config import VoiceConfig
from ..cuda import Stream
from ..errors import BackendError
from ..models.gpu_engine import GpuEngine
from ..models.gpu_runner import DeviceTensor
from .sessions import check_inputs, open_session


class OrtCudaRunner:
    """One graph as an ONNX Runtime CUDA session with an IO binding reused for every run."""

    def __init__(self, path: Path, device_index: int, stream: Stream) -> None:
        options = {"device_id": str(device_index), "cudnn_conv_algo_search": "HEURISTIC",
                   # measured on an H200: WaveGlow's 1-D convolutions run ~25% faster padded to NC1D
                   "cudnn_conv1d_pad_to_nc1d": "1",
                   **json.loads(os.environ.get("RTVOICE_ORT_CUDA_OPTIONS", "{}"))}
        self._user_stream = os.environ.get("RTVOICE_ORT_USER_STREAM", "0") == "1"
        self._stream = stream
        if self._user_stream:
            options["user_compute_stream"] = str(stream.handle)
        self._session: ort.InferenceSession | None = open_session(path, [("CUDAExecutionProvider", options)])
        if "CUDAExecutionProvider" not in self._session.get_providers():
            raise BackendError(f"ONNX Runtime could not put {path.name} on CUDA.", backend="onnxruntime")
        check_inputs(self._session, path.stem, path)
        self._device = device_index
        self._binding = self._session.io_binding()
        self._run_options = ort.RunOptions()
        if self._user_stream:
            # On our stream, ORT need not synchronize after each run (the host would wait on
            # the GPU after every decoder step); we synchronize on our own events instead.
            self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")

    def run(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> None:
        self._fill(self._binding, inputs, outputs)
        self._execute(self._binding)

    def bind(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> _OrtBoundRun:
        """A separate IO binding with these addresses, for runs that rebind nothing."""
        if self._session is None:
            raise BackendError("runner used after close()", backend="onnxruntime")
        binding = self._session.io_binding()
        self._fill(binding, inputs, outputs)
        return _OrtBoundRun(self, binding)

    def _fill(self, binding: ort.IOBinding, inputs: Mapping[str, DeviceTensor],
              outputs: Mapping[str, DeviceTensor]) -> None:
        for name, t in inputs.items():
            binding.bind_input(name, "cuda", self._device, t.dtype, list(t.shape), t.ptr)
        for name, t in outputs.items():
            binding.bind_output(name, "cuda", self._device, t.dtype, list(t.shape), t.ptr)

    def _execute(self, binding: ort.IOBinding) -> None:
        if self._session is None:
            raise BackendError("runner used after close()", backend="onnxruntime")
        if not self._user_stream:
            # ORT runs on its own stream here: our copies on our stream must have landed, and
            # ORT synchronizes its stream at the end of the run.
            self._stream.synchronize()
        self._session.run_with_iobinding(binding, self._run_options)

    def close(self) -> None:
        """Destroy the session now (the IO binding keeps it alive otherwise).

        It must be gone before the engine destroys the CUDA stream the session runs on.
        """
        if self._session is not None:
            self._binding.clear_binding_inputs()
            self._binding.clear_binding_outputs()
            self._binding = None
            self._session = None


class _OrtBoundRun:
    def __init__(self, runner: OrtCudaRunner, binding: ort.IOBinding) -> None:
        self._runner, self._binding = runner, binding

    def run(self) -> None:
        self._runner._execute(self._binding)


class CudaEngine(GpuEngine):
    """ONNX Runtime CUDAExecutionProvider over a voice folder's four graphs."""

    def __init__(self, folder: Path, config: VoiceConfig, device_index: int) -> None:
        # onnxruntime-gpu finds the CUDA/cuDNN libraries of the nvidia-* wheels this way.
        preload = getattr(ort, "preload_dlls", None)
        if preload is not None:
            preload()
        super().__init__(folder, config, device_index, "onnxruntime",
                         lambda graph, path, stream: OrtCudaRunner(path, device_index, stream))


__all__ = ["CudaEngine", "OrtCudaRunner"]
