"""Read NVIDIA's Tacotron 2 / WaveGlow checkpoints into our models, checking every tensor.

A DeepLearningExamples checkpoint is a ``torch.save`` dict with ``state_dict`` and
``config`` (plus optimizer and RNG state we ignore). Names may carry ``module.`` (saved
from distributed training); WaveGlow stores weight-normalised convolutions as
``weight_g``/``weight_v`` pairs, which we fold into ``weight``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from .tacotron2 import Tacotron2, Tacotron2Params
from .waveglow import WaveGlow, WaveGlowParams

StateDict = dict[str, Tensor]


def read_checkpoint(path: str | Path) -> tuple[StateDict, dict[str, Any]]:
    """Load a checkpoint file -> (clean state_dict, config). Never executes pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/unsafe files
        raise CheckpointError(
            f"Cannot read checkpoint {path}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    if isinstance(raw, dict) and "state_dict" in raw:
        state, config = raw["state_dict"], raw.get("config") or {}
    elif isinstance(raw, dict) and all(isinstance(v, Tensor) for v in raw.values()):
        state, config = raw, {}
    else:
        raise CheckpointError(f"Checkpoint {path} holds no 'state_dict'.")
    return fold_weight_norm(strip_module_prefix(state)), dict(config)


def strip_module_prefix(state: StateDict) -> StateDict:
    return {k.removeprefix("module."): v for k, v in state.items()}


def fold_weight_norm(state: StateDict) -> StateDict:
    """Replace each ``X.weight_g``/``X.weight_v`` pair by ``X.weight = g * v / ||v||``."""
    out: StateDict = {}
    for name, value in state.items():
        if name.endswith(".weight_v"):
            continue
        if name.endswith(".weight_g"):
            base = name.removesuffix("_g")
            v = state.get(base + "_v")
            if v is None:
                raise CheckpointError(f"Tensor {name} has no matching {base}_v.", tensor=base + "_v")
            dims = tuple(range(1, v.dim()))
            out[base] = value * v / v.norm(dim=dims, keepdim=True)
        else:
            out[name] = value
    return out


def _count(state: StateDict, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def _shape(state: StateDict, name: str) -> tuple[int, ...]:
    if name not in state:
        raise CheckpointError(f"Checkpoint has no tensor {name!r}; is it a Tacotron 2/WaveGlow checkpoint?",
                              tensor=name)
    return tuple(state[name].shape)


def tacotron2_params(state: StateDict, config: dict[str, Any]) -> Tacotron2Params:
    """Hyper-parameters from ``config`` when present, else read off the tensor shapes."""
    if config:
        return Tacotron2Params.from_config(config)
    emb = _shape(state, "embedding.weight")
    conv = _shape(state, "encoder.convolutions.0.0.conv.weight")
    loc = _shape(state, "decoder.attention_layer.location_layer.location_conv.conv.weight")
    post = _shape(state, "postnet.convolutions.0.0.conv.weight")
    r = _shape(state, "decoder.gate_layer.linear_layer.weight")[0]  # one gate logit per frame of a step
    return Tacotron2Params(
        n_mel_channels=_shape(state, "decoder.linear_projection.linear_layer.weight")[0] // r,
        n_frames_per_step=r,
        n_symbols=emb[0],
        symbols_embedding_dim=emb[1],
        encoder_kernel_size=conv[2],
        encoder_n_convolutions=_count(state, r"encoder\.convolutions\.(\d+)\."),
        encoder_embedding_dim=conv[0],
        attention_rnn_dim=_shape(state, "decoder.attention_rnn.weight_hh")[1],
        attention_dim=_shape(state, "decoder.attention_layer.query_layer.linear_layer.weight")[0],
        attention_location_n_filters=loc[0],
        attention_location_kernel_size=loc[2],
        decoder_rnn_dim=_shape(state, "decoder.decoder_rnn.weight_hh")[1],
        prenet_dim=_shape(state, "decoder.prenet.layers.0.linear_layer.weight")[0],
        postnet_embedding_dim=post[0],
        postnet_kernel_size=post[2],
        postnet_n_convolutions=_count(state, r"postnet\.convolutions\.(\d+)\."),
    )


def waveglow_params(state: StateDict, config: dict[str, Any]) -> WaveGlowParams:
    """Hyper-parameters from ``config`` when present, else read off the tensor shapes.

    A checkpoint with no ``upsample.weight`` is the frame-rate variant (see
    rtvoice.export.waveglow): ``upsample_kernel`` 0, the mel channels read off the conditioning.
    """
    if "upsample.weight" in state:
        up = _shape(state, "upsample.weight")
        n_mel, kernel = up[0], up[2]
    else:
        n_mel, kernel = _shape(state, "WN.0.cond_layers.0.weight")[1], 0
    if config:
        return WaveGlowParams.from_config({**config, "upsample_kernel": kernel})
    n_flows = _count(state, r"convinv\.(\d+)\.")
    channels = [_shape(state, f"convinv.{k}.conv.weight")[0] for k in range(n_flows)]
    every = next((k for k in range(1, n_flows) if channels[k] != channels[0]), n_flows)
    early = channels[0] - channels[every] if every < n_flows else 0
    return WaveGlowParams(
        n_mel_channels=n_mel,
        n_flows=n_flows,
        n_group=channels[0],
        n_early_every=every,
        n_early_size=early,
        n_layers=_count(state, r"WN\.0\.in_layers\.(\d+)\."),
        kernel_size=_shape(state, "WN.0.in_layers.0.weight")[2],
        n_channels=_shape(state, "WN.0.start.weight")[0],
        upsample_kernel=kernel,
        hop_length=channels[0] if kernel == 0 else WaveGlowParams.hop_length,  # frame rate: a group is a hop
    )


def load_state(model: nn.Module, state: StateDict, what: str) -> None:
    """Copy ``state`` into ``model``, naming the first tensor that does not fit."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise CheckpointError(
                f"{what} checkpoint lacks tensor {name!r} (expected shape {tuple(tensor.shape)}).",
                tensor=name,
                expected=tuple(tensor.shape),
            )
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{what} checkpoint tensor {name!r} has shape {tuple(state[name].shape)}, "
                f"but the architecture needs {tuple(tensor.shape)}.",
                tensor=name,
                expected=tuple(tensor.shape),
                found=tuple(state[name].shape),
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(f"{what} checkpoint has unknown tensor {extra[0]!r} ({len(extra)} unknown).",
                              tensor=extra[0])
    model.load_state_dict(state)


def load_tacotron2(path: str | Path) -> Tacotron2:
    """A Tacotron 2 for the runtime, of any frames per decoder step (CheckpointError if it does not fit)."""
    state, config = read_checkpoint(path)
    model = Tacotron2(tacotron2_params(state, config))
    load_state(model, state, "Tacotron 2")
    return model.eval()


def load_waveglow(path: str | Path) -> WaveGlow:
    state, config = read_checkpoint(path)
    model = WaveGlow(waveglow_params(state, config))
    load_state(model, state, "WaveGlow")
    return model.eval()
