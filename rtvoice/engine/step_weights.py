"""The decoder step's weights, read from a voice's ``decoder_step.onnx`` and packed for the fused kernel.

Reading: the exporter (``rtvoice/export/onnx_export.py``) names every node after the
PyTorch module it came from, so each weight is found by its node's scope, never by the
exporter's generated initializer names (``onnx::MatMul_247``) or by node order.

Packing (what :mod:`rtvoice.engine.kernels` ``decoder_step.cu`` reads; ``dtype`` is
float16 on the device, float32 for the CPU reference's exact check):

========== ===================== ===================================================
name       shape                 what
========== ===================== ===================================================
pre0       (n_mel, P)            prenet layer 1, ``x @ pre0`` (columns contiguous)
pre1       (P, P)                prenet layer 2, transposed: (out, in), one row per output
att_w      (Ha, 4, P + E + Ha)   attention LSTM: hidden unit j's four gate rows
                                 (ONNX order i, o, f, c), each ``[W | R]``, so one
                                 warp reads one unit's weights contiguously
att_b      (Ha, 4) float32       ``Wb + Rb`` per unit and gate
query      (A, Ha)               query layer, one row per attention channel
loc        (A, 2, K)             location conv folded into location dense:
                                 ``loc[a, c, k] = sum_f dense[f, a] * conv[f, c, k]``
v          (A,)                  energy projection
dec_w      (Hd, 4, Ha + E + Hd)  decoder LSTM, as ``att_w``
dec_b      (Hd, 4) float32
out_w      (r * n_mel + r, Hd + E)  projection rows, then gate rows
out_b      (r * n_mel + r,) float32
========== ===================== ===================================================

Biases stay float32 (they are tiny); every product is accumulated in float32.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import VoiceError

F32Array = npt.NDArray[np.float32]

_SCOPES = {
    "prenet0": "/prenet/layers.0/linear_layer/MatMul",
    "prenet1": "/prenet/layers.1/linear_layer/MatMul",
    "attention_rnn": "/attention_rnn/lstm/LSTM",
    "query": "/attention_layer/query_layer/linear_layer/MatMul",
    "location_conv": "/attention_layer/location_layer/location_conv/conv/Conv",
    "location_dense": "/attention_layer/location_layer/location_dense/linear_layer/MatMul",
    "v": "/attention_layer/v/linear_layer/MatMul",
    "decoder_rnn": "/decoder_rnn/lstm/LSTM",
    "projection": "/linear_projection/linear_layer/Gemm",
    "gate": "/gate_layer/linear_layer/Gemm",
}
"""Node name (the PyTorch module scope the exporter gives it) of each weight-bearing node."""

ALIGN = 8
"""The kernel reads LSTM inputs eight halves (16 bytes) at a time: these sizes must be multiples."""


@dataclass(frozen=True)
class StepDims:
    """The sizes of one decoder step, read off the weights themselves."""

    n_mel: int
    r: int
    prenet: int
    encoder: int
    attention_rnn: int
    decoder_rnn: int
    attention: int
    location_kernel: int

    @property
    def outputs(self) -> int:
        """Rows of ``out_w``: r frames of mel, then r gate logits."""
        return self.r * self.n_mel + self.r


@dataclass(frozen=True)
class PackedStep:
    """The packed weights (see the module docstring); all arrays C-contiguous."""

    dims: StepDims
    pre0: npt.NDArray[Any]
    pre1: npt.NDArray[Any]
    att_w: npt.NDArray[Any]
    att_b: F32Array
    query: npt.NDArray[Any]
    loc: npt.NDArray[Any]
    v: npt.NDArray[Any]
    dec_w: npt.NDArray[Any]
    dec_b: F32Array
    out_w: npt.NDArray[Any]
    out_b: F32Array

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Name -> array, in declaration order (the order they are uploaded in)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "dims"}

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays().values())

    def as_float32(self) -> PackedStep:
        """The same layouts in float32 (what the kernel computes with after loading a half)."""
        arrays = {k: np.ascontiguousarray(a, dtype=np.float32) for k, a in self.arrays().items()}
        return PackedStep(self.dims, **arrays)


def read_initializers(path: Path) -> dict[str, F32Array]:
    """Scope name (keys of ``_SCOPES``) + ``.0``/``.1``/``.2`` -> the node's weight inputs, float32."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise VoiceError("Reading decoder weights for the cuda backend needs the onnx package. "
                         "Hint: pip install 'rtvoice[gpu]'.", path=str(path)) from exc
    if not path.is_file():
        raise VoiceError(f"Voice graph {path} is missing. Hint: rebuild the voice with build_engines.py.",
                         path=str(path))
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    producers = {out: n for n in model.graph.node for out in n.output}

    def constant(name: str) -> F32Array | None:
        """The weight behind ``name`` (initializer, Constant, or a Cast of one, as fp16 voices store it).

        None for an activation. float16-stored voices come from training/fp16_voice.py.
        """
        if name in inits:
            return np.asarray(numpy_helper.to_array(inits[name]), np.float32)
        node = producers.get(name)
        if node is None:
            return None
        if node.op_type in ("Cast", "Identity"):
            return constant(node.input[0])
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            return None if value is None else np.asarray(numpy_helper.to_array(value), np.float32)
        return None

    nodes = {n.name: n for n in model.graph.node}
    out: dict[str, F32Array] = {}
    for key, scope in _SCOPES.items():
        node = nodes.get(scope)
        if node is None:
            raise VoiceError(f"{path} has no node {scope!r}, so the cuda backend cannot find its weights. "
                             "Hint: rebuild the voice with this version's build_engines.py, or use "
                             "--backend onnxruntime.", path=str(path))
        weights = [w for w in (constant(name) for name in node.input if name) if w is not None]
        for i, w in enumerate(weights):
            out[f"{key}.{i}"] = w
    return out


def dims_of(w: dict[str, F32Array]) -> StepDims:
    """The step's sizes from the ONNX weights; every size the packing relies on is checked."""
    n_mel, prenet = w["prenet0.0"].shape
    ha = w["attention_rnn.1"].shape[2]
    hd = w["decoder_rnn.1"].shape[2]
    attention = w["query.0"].shape[1]
    encoder = w["attention_rnn.0"].shape[2] - prenet
    r = w["gate.0"].shape[0]
    dims = StepDims(n_mel=n_mel, r=r, prenet=prenet, encoder=encoder, attention_rnn=ha, decoder_rnn=hd,
                    attention=attention, location_kernel=w["location_conv.0"].shape[2])
    expected = {
        "prenet1.0": (prenet, prenet), "attention_rnn.0": (1, 4 * ha, prenet + encoder),
        "attention_rnn.1": (1, 4 * ha, ha), "attention_rnn.2": (1, 8 * ha), "query.0": (ha, attention),
        "location_dense.0": (w["location_conv.0"].shape[0], attention), "v.0": (attention, 1),
        "decoder_rnn.0": (1, 4 * hd, ha + encoder), "decoder_rnn.1": (1, 4 * hd, hd),
        "decoder_rnn.2": (1, 8 * hd), "projection.0": (r * n_mel, hd + encoder), "projection.1": (r * n_mel,),
        "gate.0": (r, hd + encoder), "gate.1": (r,),
    }
    for name, shape in expected.items():
        if w[name].shape != shape:
            raise VoiceError(f"decoder_step weight {name} has shape {w[name].shape}, expected {shape}. "
                             "Hint: rebuild the voice with this version's build_engines.py.")
    if w["location_conv.0"].shape[1] != 2 or dims.location_kernel % 2 != 1:
        raise VoiceError(f"The location conv has shape {w['location_conv.0'].shape}; the kernel needs "
                         "(filters, 2, odd kernel size).")
    for name in ("prenet", "encoder", "attention_rnn", "decoder_rnn"):
        if getattr(dims, name) % ALIGN:
            raise VoiceError(f"decoder {name} size {getattr(dims, name)} is not a multiple of {ALIGN}, "
                             "which the fused kernel needs. Hint: use --backend onnxruntime for this voice.")
    return dims


def _lstm(w: F32Array, r: F32Array, b: F32Array, dtype: type[np.generic]) -> tuple[npt.NDArray[Any], F32Array]:
    """ONNX LSTM W (1, 4H, in), R (1, 4H, H), B (1, 8H) -> (H, 4, in + H) and (H, 4) bias."""
    h = r.shape[2]
    rows = np.concatenate([w[0], r[0]], axis=1)  # (4H, in + H), gate-major
    packed = rows.reshape(4, h, -1).transpose(1, 0, 2)  # (H, 4, in + H)
    bias = (b[0, : 4 * h] + b[0, 4 * h :]).reshape(4, h).T
    return np.ascontiguousarray(packed, dtype=dtype), np.ascontiguousarray(bias, dtype=np.float32)


def pack(w: dict[str, F32Array], dtype: type[np.generic] = np.float16) -> PackedStep:
    """Pack the ONNX weights into the kernel's layouts (module docstring) in ``dtype``."""
    dims = dims_of(w)
    att_w, att_b = _lstm(w["attention_rnn.0"], w["attention_rnn.1"], w["attention_rnn.2"], dtype)
    dec_w, dec_b = _lstm(w["decoder_rnn.0"], w["decoder_rnn.1"], w["decoder_rnn.2"], dtype)
    # Folded in float64, rounded once: conv then dense is one linear map of the weights window.
    loc = np.einsum("fa,fck->ack", w["location_dense.0"].astype(np.float64), w["location_conv.0"].astype(np.float64))

    def c(a: npt.NDArray[Any], t: type[np.generic] = dtype) -> npt.NDArray[Any]:
        return np.ascontiguousarray(a, dtype=t)

    return PackedStep(
        dims=dims, pre0=c(w["prenet0.0"]), pre1=c(w["prenet1.0"].T), att_w=att_w, att_b=att_b,
        query=c(w["query.0"].T), loc=c(loc), v=c(w["v.0"][:, 0]), dec_w=dec_w, dec_b=dec_b,
        out_w=c(np.concatenate([w["projection.0"], w["gate.0"]], axis=0)),
        out_b=c(np.concatenate([w["projection.1"], w["gate.1"]]), np.float32),
    )


def load_packed(path: Path, dtype: type[np.generic] = np.float16) -> PackedStep:
    """Read ``decoder_step.onnx`` and pack it (see :func:`pack`)."""
    return pack(read_initializers(path), dtype)
