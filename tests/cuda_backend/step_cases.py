"""Decoder-step test cases from a real voice: encoder output, live states, ONNX Runtime's answers.

Shared by the CPU tests and by tools/gpu/cuda_backend_check.py (which adds this folder to
sys.path): the fused kernel and the numpy reference are both held to these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rtvoice.config import VoiceConfig
from rtvoice.engine.graphs import GRAPH_OUTPUTS, STATE_NAMES, state_shapes
from rtvoice.ort.sessions import open_session

Arrays = dict[str, npt.NDArray[Any]]


@dataclass
class StepCase:
    """One batched step: the graph's inputs and ONNX Runtime's outputs for them."""

    inputs: Arrays
    outputs: Arrays


def encode(folder: Path, config: VoiceConfig, lengths: list[int], text_length: int, seed: int = 0) -> Arrays:
    """Random ids of ``lengths`` through the voice's encoder, padded to ``text_length`` symbols."""
    rng = np.random.default_rng(seed)
    session = open_session(folder / config.graphs["encoder"], ["CPUExecutionProvider"])
    n = max(lengths)
    ids = np.zeros((len(lengths), n), np.int64)
    for b, length in enumerate(lengths):
        ids[b, :length] = rng.integers(1, len(config.text.symbols), length)
    memory, processed, mask = session.run(None, {"text": ids, "text_lengths": np.array(lengths, np.int64)})
    pad = text_length - n
    return {"memory": np.pad(memory, ((0, 0), (0, pad), (0, 0))).astype(np.float32),
            "processed_memory": np.pad(processed, ((0, 0), (0, pad), (0, 0))).astype(np.float32),
            "mask": np.pad(mask, ((0, 0), (0, pad)), constant_values=True)}


def step_cases(folder: Path, lengths: list[int], steps: int, text_length: int | None = None,
               seed: int = 0) -> list[StepCase]:
    """``steps`` consecutive steps of ONNX Runtime from the zero state: each step's inputs and outputs.

    Rows have ``lengths`` symbols, padded to ``text_length`` (default: the longest + 5), so
    padding inside a row is exercised. Prenet masks are drawn from ``seed``.
    """
    config = VoiceConfig.load(folder)
    d = config.decoder
    t = text_length or max(lengths) + 5
    batch = len(lengths)
    static = encode(folder, config, lengths, t, seed)
    session = open_session(folder / config.graphs["decoder_step"], ["CPUExecutionProvider"])
    rng = np.random.default_rng(seed + 1)
    state: Arrays = {k: np.zeros(v, np.float32) for k, v in state_shapes(config, batch, t).items()}
    frame = np.zeros((batch, d.step_width), np.float32)
    cases = []
    names = list(GRAPH_OUTPUTS["decoder_step"])
    for _ in range(steps):
        masks = ((rng.random((batch, 2, d.prenet_dim)) >= d.prenet_dropout) / (1 - d.prenet_dropout)).astype(np.float32)
        inputs = {"decoder_input": frame, **state, **static, "prenet_masks": masks}
        outputs = dict(zip(names, session.run(names, inputs), strict=True))
        cases.append(StepCase(inputs, outputs))
        frame = outputs["mel_frame"]
        state = {k: outputs[f"next_{k}"] for k in STATE_NAMES}
    return cases
