"""The graph contract every backend shares: tensor names and decoder-state shapes.

Written once here (from ``rtvoice/export/onnx_export.py``'s export) so the ONNX Runtime,
GPU and TensorRT code cannot drift apart; a voice built with other names must be rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ..config import VoiceConfig

STATE_NAMES: Final = ("attention_hidden", "attention_cell", "decoder_hidden", "decoder_cell",
                      "attention_weights", "attention_weights_cum", "attention_context")
"""The decoder step's recurrent state, in the graph's input order (outputs: ``next_<name>``)."""

GRAPH_INPUTS: Final[Mapping[str, tuple[str, ...]]] = {
    "encoder": ("text", "text_lengths"),
    "decoder_step": ("decoder_input", *STATE_NAMES, "memory", "processed_memory", "mask", "prenet_masks"),
    "postnet": ("mel_frames",),
    "waveglow": ("mel", "noise"),
}
GRAPH_OUTPUTS: Final[Mapping[str, tuple[str, ...]]] = {
    "encoder": ("memory", "processed_memory", "mask"),
    "decoder_step": ("mel_frame", "gate", *(f"next_{name}" for name in STATE_NAMES)),
    "postnet": ("mel_postnet",),
    "waveglow": ("audio",),
}


def state_shapes(config: VoiceConfig, batch: int, text_length: int) -> dict[str, tuple[int, int]]:
    """The shape of each decoder state tensor for ``batch`` rows of ``text_length`` symbols."""
    d = config.decoder
    return {
        "attention_hidden": (batch, d.attention_rnn_dim),
        "attention_cell": (batch, d.attention_rnn_dim),
        "decoder_hidden": (batch, d.decoder_rnn_dim),
        "decoder_cell": (batch, d.decoder_rnn_dim),
        "attention_weights": (batch, text_length),
        "attention_weights_cum": (batch, text_length),
        "attention_context": (batch, d.encoder_embedding_dim),
    }


def fixed_dims(config: VoiceConfig) -> dict[tuple[str, str], dict[int, int]]:
    """The sizes ``config`` promises for the graphs' fixed axes: ``(graph, input) -> {axis: size}``.

    Checked against the ONNX graphs when a voice opens, so a voice.json that disagrees with
    its graphs (``attention_rnn_dim: 7``) is a VoiceError then, not an ONNX Runtime error
    mid-sentence. (``audio.hop_length`` is baked into WaveGlow's upsampling, not an input.)
    """
    d, n_mel, n_group = config.decoder, config.decoder.n_mel_channels, config.vocoder.n_group
    return {
        ("decoder_step", "decoder_input"): {1: d.step_width},
        ("decoder_step", "attention_hidden"): {1: d.attention_rnn_dim},
        ("decoder_step", "attention_cell"): {1: d.attention_rnn_dim},
        ("decoder_step", "decoder_hidden"): {1: d.decoder_rnn_dim},
        ("decoder_step", "decoder_cell"): {1: d.decoder_rnn_dim},
        ("decoder_step", "attention_context"): {1: d.encoder_embedding_dim},
        ("decoder_step", "memory"): {2: d.encoder_embedding_dim},
        ("decoder_step", "processed_memory"): {2: d.attention_dim},
        ("decoder_step", "prenet_masks"): {2: d.prenet_dim},
        ("postnet", "mel_frames"): {2: n_mel},
        ("waveglow", "mel"): {1: config.audio.n_mel_channels},
        ("waveglow", "noise"): {1: n_group},
    }
