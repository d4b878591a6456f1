"""The fused decoder step in numpy: the algorithm ``kernels/decoder_step.cu`` runs, on packed weights.

It reads the same packed layouts as the kernel (:mod:`.step_weights`), so the CPU suite
checks the packing and the algorithm against ONNX Runtime's ``decoder_step.onnx``:
exactly (float32 packing) and within fp16 error bounds (float16 packing). The inputs and
outputs are those of the graph (:data:`~.graphs.GRAPH_INPUTS`), batch-first.

One deliberate difference: a row whose text is all padding (a free row of a batch) gets
zero attention weights here and in the kernel, where ONNX's softmax gives NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .graphs import STATE_NAMES
from .step_weights import PackedStep

F32Array = npt.NDArray[np.float32]


def _sigmoid(x: F32Array) -> F32Array:
    with np.errstate(over="ignore"):  # exp(-x) -> inf for very negative x gives exactly 0, as wanted
        return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))


def lstm_cell(w: F32Array, b: F32Array, x: F32Array, h: F32Array, c: F32Array) -> tuple[F32Array, F32Array]:
    """One LSTM step on packed weights ``w`` (H, 4, in + H), ``b`` (H, 4), gates in ONNX order i, o, f, c."""
    gates = np.einsum("jgk,bk->bjg", w, np.concatenate([x, h], axis=1)) + b  # (B, H, 4)
    i, o, f, g = (gates[..., n] for n in range(4))
    c_next = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return (_sigmoid(o) * np.tanh(c_next)).astype(np.float32), c_next.astype(np.float32)


def location_features(loc: F32Array, weights: F32Array, cum: F32Array) -> F32Array:
    """The folded location layer: (A, 2, K) over (B, T) twice -> (B, T, A), zero-padded like the conv."""
    k = loc.shape[2]
    pad = k // 2
    stacked = np.stack([weights, cum], axis=1)  # (B, 2, T)
    padded = np.pad(stacked, ((0, 0), (0, 0), (pad, pad)))
    t = weights.shape[1]
    windows = np.stack([padded[:, :, j : j + t] for j in range(k)], axis=-1)  # (B, 2, T, K)
    out: F32Array = np.einsum("ack,bctk->bta", loc, windows).astype(np.float32)
    return out


def reference_step(packed: PackedStep, inputs: Mapping[str, npt.NDArray[Any]]) -> dict[str, F32Array]:
    """One decoder step for every row of ``inputs`` (the graph's input names) -> the graph's outputs."""
    p = packed.as_float32()
    d = p.dims
    s = {name: np.asarray(inputs[name], np.float32) for name in STATE_NAMES}
    memory = np.asarray(inputs["memory"], np.float32)
    processed = np.asarray(inputs["processed_memory"], np.float32)
    mask = np.asarray(inputs["mask"], bool)
    drop = np.asarray(inputs["prenet_masks"], np.float32)
    frame = np.asarray(inputs["decoder_input"], np.float32)[:, -d.n_mel :]

    x = np.maximum(frame @ p.pre0, 0) * drop[:, 0]
    x = np.maximum(x @ p.pre1.T, 0) * drop[:, 1]
    ah, ac = lstm_cell(p.att_w, p.att_b, np.concatenate([x, s["attention_context"]], axis=1),
                       s["attention_hidden"], s["attention_cell"])
    query = ah @ p.query.T  # (B, A)
    location = location_features(p.loc, s["attention_weights"], s["attention_weights_cum"])
    energies = np.tanh(query[:, None, :] + location + processed) @ p.v  # (B, T)
    energies = np.where(mask, -np.inf, energies)
    top = np.max(energies, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(energies - top)
    total = e.sum(axis=1, keepdims=True)
    weights = np.where(total > 0, e / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)
    context = np.einsum("bt,bte->be", weights, memory).astype(np.float32)
    dh, dc = lstm_cell(p.dec_w, p.dec_b, np.concatenate([ah, context], axis=1),
                       s["decoder_hidden"], s["decoder_cell"])
    out = np.concatenate([dh, context], axis=1) @ p.out_w.T + p.out_b
    n = d.r * d.n_mel
    return {"mel_frame": out[:, :n].astype(np.float32), "gate": out[:, n:].astype(np.float32),
            "next_attention_hidden": ah, "next_attention_cell": ac,
            "next_decoder_hidden": dh, "next_decoder_cell": dc,
            "next_attention_weights": weights, "next_attention_weights_cum": s["attention_weights_cum"] + weights,
            "next_attention_context": context}
