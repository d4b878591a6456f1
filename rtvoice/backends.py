"""Choosing a backend, and saying which one was taken and why.

``auto`` takes TensorRT engines when present, then the ``cuda`` backend (our fused decoder
kernels, compiled by NVRTC, with ONNX Runtime CUDA for the other graphs), then ONNX Runtime
CUDA, then the CPU. If the ``cuda`` backend was chosen by ``auto`` and cannot open (its
kernels do not compile or load on this GPU), ONNX Runtime CUDA is opened instead.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .config import VoiceConfig
from .engine.protocol import Engine
from .errors import BackendError

log = logging.getLogger("rtvoice.backend")

BackendName = Literal["auto", "cuda", "tensorrt", "onnxruntime"]
BACKENDS: tuple[str, ...] = ("auto", "cuda", "tensorrt", "onnxruntime")


@dataclass(frozen=True)
class Choice:
    backend: str
    device: str
    reason: str
    auto: bool = False
    """Chosen by ``auto``: :func:`open_engine` may fall back to ONNX Runtime CUDA."""


def parse_device(device: str) -> tuple[str, int]:
    """"cpu" -> ("cpu", 0); "cuda" / "cuda:N" -> ("cuda", N); "auto" -> ("auto", 0)."""
    if device in ("cpu", "auto"):
        return device, 0
    if device == "cuda":
        return "cuda", 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return "cuda", int(device[5:])
    raise BackendError(f"Unknown device {device!r}. Hint: use cpu, cuda or cuda:N.")


def _cuda_ready() -> tuple[bool, str]:
    if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
        return False, "cuda-python is not installed (pip install 'rtvoice[gpu]')"
    from .cuda import is_available

    if not is_available():
        return False, "no CUDA GPU is visible"
    return True, "CUDA GPU found"


def _ort_cuda_ready() -> tuple[bool, str]:
    from .ort.sessions import available_providers

    if "CUDAExecutionProvider" not in available_providers():
        return False, "onnxruntime has no CUDAExecutionProvider (pip install 'rtvoice[gpu]')"
    return _cuda_ready()


def _kernel_ready() -> tuple[bool, str]:
    """The cuda backend: NVRTC loads, onnx reads the weights, ONNX Runtime CUDA runs the other graphs."""
    if importlib.util.find_spec("onnx") is None:
        return False, "the onnx package is not installed (pip install 'rtvoice[gpu]')"
    ok, why = _ort_cuda_ready()
    if not ok:
        return False, why
    from .cuda.nvrtc import version

    try:
        major, minor = version()
    except BackendError as exc:
        return False, str(exc)
    return True, f"CUDA GPU and NVRTC {major}.{minor} found"


def _trt_ready(folder: Path) -> tuple[bool, str]:
    if importlib.util.find_spec("tensorrt") is None:
        return False, "TensorRT is not installed"
    if not any(folder.glob("*.plan")):
        return False, f"no TensorRT engines in {folder} (build them with build_engines.py)"
    return _cuda_ready()


def choose(folder: Path, backend: str = "auto", device: str = "auto") -> Choice:
    """Decide backend and device without opening anything."""
    kind, index = parse_device(device)
    if backend not in BACKENDS:
        raise BackendError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if backend == "tensorrt":
        ok, why = _trt_ready(folder)
        if not ok or kind == "cpu":
            raise BackendError(f"TensorRT backend unavailable: {why if not ok else 'it needs a CUDA device'}.",
                               backend="tensorrt")
        return Choice("tensorrt", f"cuda:{index}", why)
    if backend == "cuda":
        ok, why = _kernel_ready()
        if not ok or kind == "cpu":
            raise BackendError(f"cuda backend unavailable: {why if not ok else 'it needs a CUDA device'}.",
                               backend="cuda")
        return Choice("cuda", f"cuda:{index}", why)
    if kind == "cpu":
        return Choice("onnxruntime", "cpu", "CPU requested")
    if backend == "auto":
        ok, why = _trt_ready(folder)
        if ok:
            return Choice("tensorrt", f"cuda:{index}", "TensorRT engines present")
        trt_why = why
        ok, why = _kernel_ready()
        if ok:
            return Choice("cuda", f"cuda:{index}", f"{trt_why}; {why}", auto=True)
    else:
        trt_why = "onnxruntime requested"
    ok, why = _ort_cuda_ready()
    if ok:
        return Choice("onnxruntime", f"cuda:{index}", f"{trt_why}; ONNX Runtime CUDA available")
    if kind == "cuda":
        raise BackendError(f"CUDA requested but unavailable: {why}.", backend="onnxruntime")
    return Choice("onnxruntime", "cpu", f"{trt_why}; {why}: using the CPU")


def open_engine(folder: Path, config: VoiceConfig, choice: Choice) -> Engine:
    """Open the chosen backend on the chosen device."""
    if choice.backend == "cuda":
        from .engine.cuda_engine import KernelEngine

        try:
            return KernelEngine(folder, config, int(choice.device.split(":")[1]))
        except BackendError:
            if not choice.auto:
                raise
            log.warning("the cuda backend could not open; using ONNX Runtime CUDA", exc_info=True)
            choice = Choice("onnxruntime", choice.device, "cuda backend failed to open")
    if choice.backend == "tensorrt":
        from .trt.engine import TrtEngine

        return TrtEngine(folder, config, int(choice.device.split(":")[1]))
    if choice.device.startswith("cuda"):
        from .ort.cuda_engine import CudaEngine

        return CudaEngine(folder, config, int(choice.device.split(":")[1]))
    from .ort.cpu_engine import CpuEngine

    return CpuEngine(folder, config)
