"""TensorRT on CUDA: the shared GPU engine, with a :class:`TrtRunner` per graph.

Like :mod:`rtvoice.ort.cuda_engine`, this only supplies the runners:
:class:`~rtvoice.engine.gpu_engine.GpuEngine` owns the buffers, streams, events and
threads. Each graph's ``<graph>.plan`` is loaded from the voice folder after its
``<graph>.plan.json`` record is checked against the folder and the device (see
:mod:`rtvoice.trt.cache`): a missing or stale plan is an :class:`~rtvoice.errors.EngineError`
that says what changed and how to rebuild, never a silently wrong engine.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import VoiceConfig
from ..cuda import Stream
from ..engine.gpu_engine import GpuEngine
from ..errors import EngineError
from . import _tensorrt
from .build import REBUILD_HINT, plan_path
from .cache import gpu_identity, plan_key, read_key, sidecar_path
from .profiles import profiles_for
from .runner import TrtRunner

log = logging.getLogger("rtvoice.trt")


def check_plan(graph: str, onnx_path: Path, config: VoiceConfig, device_index: int) -> Path:
    """Return the plan of ``graph`` if it was built from this graph, TensorRT, GPU and profile.

    Args:
        graph: The graph's name.
        onnx_path: The voice's ONNX graph; the plan lies beside it as ``<graph>.plan``.
        config: The voice; its profiles must be those the plan was built with.
        device_index: The CUDA device the plan will run on.

    Raises:
        EngineError: The plan or its record is missing, or stale (the message lists what
            changed), with a hint to rebuild.
    """
    folder = onnx_path.parent
    plan = plan_path(folder, graph)
    hint = REBUILD_HINT.format(folder=folder)
    if not plan.is_file():
        raise EngineError(f"TensorRT plan {plan} is missing. {hint}", tensor=None)
    stored = read_key(plan)
    if stored is None:
        raise EngineError(f"TensorRT plan {plan} has no valid build record ({sidecar_path(plan).name}), so it "
                          f"cannot be trusted to match the voice. {hint}")
    trt = _tensorrt.load()
    current = plan_key(onnx_path, trt.label, gpu_identity(device_index), stored.precision,
                       profiles_for(graph, config))
    changed = current.differences(stored, ignore=("precision",))
    if changed:
        notes = "; ".join(f"{name}: built for {_short(getattr(stored, name))}, now {_short(getattr(current, name))}"
                          for name in changed)
        raise EngineError(f"TensorRT plan {plan} is stale. Note: {notes}. {hint}")
    return plan


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:16] + "…"


class TrtEngine(GpuEngine):
    """TensorRT over a voice folder's four plans, on one GPU.

    Args:
        folder: The voice folder: ``voice.json``, the ONNX graphs, and ``<graph>.plan`` with
            ``<graph>.plan.json`` for each graph (``python -m rtvoice.trt.build folder``).
        config: The voice's configuration.
        device_index: The CUDA device.

    Raises:
        EngineError: TensorRT missing, or a plan missing, stale or unloadable.
    """

    def __init__(self, folder: Path, config: VoiceConfig, device_index: int) -> None:
        def open_runner(graph: str, onnx_path: Path, stream: Stream) -> TrtRunner:
            plan = check_plan(graph, onnx_path, config, device_index)
            return TrtRunner(graph, plan, stream).open()

        ring = max(config.decoder.gate_check_interval, 1)
        step_plan: list[Path] = []

        def step_runner(rows: int, text_length: int) -> TrtRunner:
            # One runner per batch bucket, with a context per ring position: every step's
            # shapes and addresses are set once, and a batch of steps is captured as one graph.
            if not step_plan:
                step_plan.append(check_plan("decoder_step", folder / config.graphs["decoder_step"], config,
                                            device_index))
            return TrtRunner("decoder_step", step_plan[0], self.stream_a, bound_contexts=ring).open()

        super().__init__(folder, config, device_index, "tensorrt", open_runner, step_runner,
                         max_batch=config.profiles.batch.max, capture=True)


__all__ = ["TrtEngine", "TrtRunner", "check_plan"]
