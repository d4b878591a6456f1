"""Opening a voice's four ONNX graphs as ONNX Runtime sessions (the one onnxruntime import)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from ..config import VoiceConfig
from ..engine.graphs import GRAPH_INPUTS, STATE_NAMES, fixed_dims, state_shapes
from ..errors import VoiceError

log = logging.getLogger("rtvoice.ort")

class DecoderIO:
    """The decoder step's recurrent state as host arrays."""

    @staticmethod
    def zero_state(config: VoiceConfig, batch: int, text_length: int) -> dict[str, npt.NDArray[np.float32]]:
        shapes = state_shapes(config, batch, text_length)
        return {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}

    @staticmethod
    def next_state(outputs: Sequence[Any]) -> dict[str, npt.NDArray[np.float32]]:
        """Map a decoder-step ``run`` result (mel, gate, next_*...) back to state names."""
        return dict(zip(STATE_NAMES, outputs[2:], strict=True))


@dataclass
class GraphSessions:
    encoder: ort.InferenceSession
    decoder_step: ort.InferenceSession
    postnet: ort.InferenceSession
    waveglow: ort.InferenceSession


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def _options(threads: int | None, free_dims: Mapping[str, int] | None = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    for name, size in (free_dims or {}).items():
        # Static shapes: ORT folds the shape arithmetic away, so every node stays on the
        # CUDA EP and the run can be captured as a CUDA graph.
        options.add_free_dimension_override_by_name(name, size)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ORT's warnings about shape inference are noise here
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


def open_session(path: Path, providers: Sequence[str | tuple[str, dict[str, Any]]],
                 threads: int | None = None, free_dims: Mapping[str, int] | None = None) -> ort.InferenceSession:
    """Open one graph; a missing or corrupt file is a VoiceError naming the file.

    ``free_dims`` fixes named dynamic axes (the exporter's ``batch``, ``text_length``).
    """
    if not path.is_file():
        raise VoiceError(f"Voice graph {path} is missing. Hint: rebuild the voice with build_engines.py.",
                         path=str(path))
    try:
        return ort.InferenceSession(str(path), sess_options=_options(threads, free_dims), providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad models
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise VoiceError(f"Voice graph {path} cannot be loaded: {first}", path=str(path)) from exc


def check_inputs(session: ort.InferenceSession, graph: str, path: Path, config: VoiceConfig | None = None) -> None:
    """The graph has the inputs rtvoice feeds, and (given ``config``) the fixed sizes voice.json says."""
    found = tuple(i.name for i in session.get_inputs())
    if sorted(found) != sorted(GRAPH_INPUTS[graph]):
        raise VoiceError(
            f"Voice graph {path} has inputs {list(found)}, but this rtvoice expects {list(GRAPH_INPUTS[graph])}. "
            "Hint: rebuild the voice with this version's build_engines.py.", path=str(path))
    if config is None:
        return
    expected = fixed_dims(config)
    for node in session.get_inputs():
        for axis, size in expected.get((graph, node.name), {}).items():
            actual = node.shape[axis] if axis < len(node.shape) else None
            if isinstance(actual, int) and actual != size:
                raise VoiceError(f"Voice graph {path} takes {node.name} with {actual} on axis {axis}, but voice.json "
                                 f"says {size}. Hint: voice.json does not belong to these graphs; rebuild the voice.",
                                 path=str(path))


def open_sessions(folder: Path, config: VoiceConfig,
                  providers: Sequence[str | tuple[str, dict[str, Any]]],
                  vocoder_providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None) -> GraphSessions:
    """Open all four graphs.

    The decoder graphs get one intra-op thread: their ops are tiny and the vocoder runs
    beside them on the other cores.
    """
    graphs = config.graphs
    vocoder = vocoder_providers or providers
    sessions = GraphSessions(
        encoder=open_session(folder / graphs["encoder"], providers, threads=1),
        decoder_step=open_session(folder / graphs["decoder_step"], providers, threads=1),
        postnet=open_session(folder / graphs["postnet"], vocoder),
        waveglow=open_session(folder / graphs["waveglow"], vocoder),
    )
    for graph in GRAPH_INPUTS:
        check_inputs(getattr(sessions, graph), graph, folder / graphs[graph], config)
    return sessions
