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
from ..cuda import Stream, capture_guard
from ..engine.gpu_engine import GpuEngine
from ..engine.gpu_runner import DeviceTensor, RunnerFactory
from ..errors import BackendError
from .sessions import check_inputs, open_session


CONV_OPTIONS: dict[str, str] = {
    "cudnn_conv_algo_search": "HEURISTIC",
    # measured on an H200: WaveGlow's 1-D convolutions run ~25% faster padded to NC1D
    "cudnn_conv1d_pad_to_nc1d": "1",
}
"""The CUDA provider's convolution options for graphs that compute in float32."""

FP16_CONV_OPTIONS: dict[str, str] = {**CONV_OPTIONS, "cudnn_conv_algo_search": "EXHAUSTIVE"}
"""The same for graphs that compute in float16 (``rtvoice.export.fp16_graphs``).

Why: on an H100 with ONNX Runtime 1.31.1 (docs/gpu.md, "The fp16 rows", runs 3 and 4), the
heuristic search found no cuDNN engine for WaveGlow's fp16 dilated convolutions (CUDNN_FE
HEURISTIC_QUERY_FAILED, with either NC1D padding), while the exhaustive search ran them."""


def provider_options(device_index: int, *, fp16: bool = False, cuda_graph: bool = False,
                     overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CUDA execution provider's options for one graph: ours, then ``overrides``.

    ``overrides`` default to ``RTVOICE_ORT_CUDA_OPTIONS`` (a JSON object), for trying another
    option without a code change (tools/gpu/issue_table.py does, when a cuDNN error strikes).
    """
    if overrides is None:
        overrides = json.loads(os.environ.get("RTVOICE_ORT_CUDA_OPTIONS", "{}"))
    return {"device_id": str(device_index), **(FP16_CONV_OPTIONS if fp16 else CONV_OPTIONS),
            **({"enable_cuda_graph": "1"} if cuda_graph else {}), **overrides}


def fp16_graphs(config: VoiceConfig) -> frozenset[str]:
    """The graphs of a voice that compute in float16 (listed in voice.json by ``fp16_graphs``)."""
    return frozenset(config.source.get("fp16_graphs", ()))


def graph_runners(device_index: int, config: VoiceConfig) -> RunnerFactory:
    """A runner for each graph of ``config``'s voice, with the options of its precision.

    Shared by both GPU engines that run graphs through ONNX Runtime CUDA; first lets
    onnxruntime-gpu find the CUDA/cuDNN libraries of the nvidia-* wheels (``preload_dlls``).
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()
    half = fp16_graphs(config)
    return lambda graph, path, stream: OrtCudaRunner(path, device_index, stream, fp16=graph in half)


class OrtCudaRunner:
    """One graph as an ONNX Runtime CUDA session with an IO binding reused for every run.

    Args:
        path: The ONNX graph.
        device_index: The CUDA device.
        stream: Our stream the inputs were written on (synchronized before each run).
        static_dims: Fix named dynamic axes (``{"batch": 8, "text_length": 512}``).
        cuda_graph: Capture each bound run as a CUDA graph (``enable_cuda_graph``; needs
            ``static_dims`` so that every node stays on the CUDA EP). Each :meth:`bind`
            gets its own ``gpu_graph_id``; its addresses are then fixed for good.
        fp16: The graph computes in float16 (:data:`FP16_CONV_OPTIONS`).
    """

    enqueue_only = False
    """ORT synchronizes around each run, so its runs cannot be captured by the caller."""

    def __init__(self, path: Path, device_index: int, stream: Stream, *,
                 static_dims: Mapping[str, int] | None = None, cuda_graph: bool = False,
                 fp16: bool = False) -> None:
        options = provider_options(device_index, fp16=fp16, cuda_graph=cuda_graph)
        self._cuda_graph = cuda_graph
        self._graph_ids = 0
        self._user_stream = os.environ.get("RTVOICE_ORT_USER_STREAM", "0") == "1"
        self._stream = stream
        if self._user_stream:
            options["user_compute_stream"] = str(stream.handle)
        self._session: ort.InferenceSession | None = open_session(path, [("CUDAExecutionProvider", options)],
                                                                  free_dims=static_dims)
        if "CUDAExecutionProvider" not in self._session.get_providers():
            raise BackendError(f"ONNX Runtime could not put {path.name} on CUDA.", backend="onnxruntime")
        check_inputs(self._session, path.stem, path)
        self._device = device_index
        self._binding = self._session.io_binding()
        # Unbound runs never use a graph: their addresses may change from run to run.
        self._run_options = self._options(-1 if cuda_graph else None)

    def _options(self, graph_id: int | None) -> ort.RunOptions:
        options = ort.RunOptions()
        if self._user_stream:
            # On our stream, ORT need not synchronize after each run (the host would wait on
            # the GPU after every decoder step); we synchronize on our own events instead.
            options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        if graph_id is not None:
            options.add_run_config_entry("gpu_graph_id", str(graph_id))  # -1: no graph; 0 is ORT's own
        return options

    def run(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> None:
        self._fill(self._binding, inputs, outputs)
        self._execute(self._binding, self._run_options)

    def bind(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor]) -> _OrtBoundRun:
        """A separate IO binding with these addresses, for runs that rebind nothing."""
        if self._session is None:
            raise BackendError("runner used after close()", backend="onnxruntime")
        binding = self._session.io_binding()
        self._fill(binding, inputs, outputs)
        options = self._run_options
        if self._cuda_graph:
            self._graph_ids += 1  # ORT captures on the first runs with a new id and replays afterwards
            options = self._options(self._graph_ids)
        return _OrtBoundRun(self, binding, options, graph=self._cuda_graph)

    def _fill(self, binding: ort.IOBinding, inputs: Mapping[str, DeviceTensor],
              outputs: Mapping[str, DeviceTensor]) -> None:
        for name, t in inputs.items():
            binding.bind_input(name, "cuda", self._device, t.dtype, list(t.shape), t.ptr)
        for name, t in outputs.items():
            binding.bind_output(name, "cuda", self._device, t.dtype, list(t.shape), t.ptr)

    def _execute(self, binding: ort.IOBinding, options: ort.RunOptions, capturing: bool = False) -> None:
        # capturing: ORT may capture a CUDA graph in this run, so no other thread may touch
        # the GPU meanwhile (see rtvoice.cuda.capture_guard).
        with capture_guard.exclusive() if capturing else capture_guard.shared():
            self._execute_now(binding, options)

    def _execute_now(self, binding: ort.IOBinding, options: ort.RunOptions) -> None:
        if self._session is None:
            raise BackendError("runner used after close()", backend="onnxruntime")
        if not self._user_stream:
            # ORT runs on its own stream here: our copies on our stream must have landed, and
            # ORT synchronizes its stream at the end of the run.
            self._stream.synchronize()
        self._session.run_with_iobinding(binding, options)

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
    CAPTURE_RUNS = 4
    """Runs of a graph id that may capture: ORT runs a new id plainly a few times (2 in
    1.31), then captures; a margin costs nothing but a lock."""

    def __init__(self, runner: OrtCudaRunner, binding: ort.IOBinding, options: ort.RunOptions, *,
                 graph: bool) -> None:
        self._runner, self._binding, self._options = runner, binding, options
        self._unsafe_runs = self.CAPTURE_RUNS if graph else 0

    def run(self) -> None:
        capturing = self._unsafe_runs > 0
        self._runner._execute(self._binding, self._options, capturing)
        if capturing:
            self._unsafe_runs -= 1


class CudaEngine(GpuEngine):
    """ONNX Runtime CUDAExecutionProvider over a voice folder's four graphs."""

    def __init__(self, folder: Path, config: VoiceConfig, device_index: int) -> None:
        runners = graph_runners(device_index, config)
        step_path = folder / config.graphs["decoder_step"]
        graphs = config.batching.cuda_graphs

        def step_runner(rows: int, text_length: int) -> OrtCudaRunner:
            # One session per batch bucket: static shapes, so ORT can capture CUDA graphs.
            return OrtCudaRunner(step_path, device_index, self.stream_a, cuda_graph=graphs,
                                 static_dims={"batch": rows, "text_length": text_length})

        super().__init__(folder, config, device_index, "onnxruntime", runners, step_runner)


__all__ = ["CONV_OPTIONS", "FP16_CONV_OPTIONS", "CudaEngine", "OrtCudaRunner", "fp16_graphs", "graph_runners",
           "provider_options"]
