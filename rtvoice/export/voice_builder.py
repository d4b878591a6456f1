"""Turn Tacotron 2 + WaveGlow models into a voice folder: four ONNX graphs and voice.json."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Literal

import torch

from ..config import (
    AudioConfig,
    DecoderConfig,
    ProfilesConfig,
    TextConfig,
    VocoderConfig,
    VoiceConfig,
)
from ..text import SYMBOLS
from .onnx_export import export_tacotron2, export_waveglow
from .tacotron2 import Tacotron2, Tacotron2Params
from .waveglow import WN, WaveGlow, WaveGlowParams

log = logging.getLogger("rtvoice.build")

RandomSize = Literal["tiny", "full"]

TINY_TACOTRON2 = Tacotron2Params(
    symbols_embedding_dim=32, encoder_embedding_dim=32, attention_rnn_dim=64, attention_dim=16,
    attention_location_n_filters=4, attention_location_kernel_size=7, decoder_rnn_dim=64,
    prenet_dim=32, postnet_embedding_dim=32, max_decoder_steps=150,
)
TINY_WAVEGLOW = WaveGlowParams(n_flows=4, n_early_every=2, n_early_size=2, n_layers=2, n_channels=16)


def random_models(size: RandomSize, seed: int = 0, waveglow_channels: int = 256,
                  frames_per_step: int = 1) -> tuple[Tacotron2, WaveGlow]:
    """Seeded random weights with the real architecture, for tests and benchmarks.

    ``frames_per_step`` is Tacotron 2's reduction factor r (mel frames per decoder step).

    The gate bias is pushed far negative so a random decoder runs to its step limit (it
    would otherwise stop at an arbitrary step), and WaveGlow's coupling outputs are scaled
    down so twelve flows of random affine maps stay numerically tame.
    """
    torch.manual_seed(seed)
    if size == "tiny":
        t2p, wgp = TINY_TACOTRON2, TINY_WAVEGLOW
    else:
        t2p, wgp = Tacotron2Params(), WaveGlowParams(n_channels=waveglow_channels)
    t2p = dataclasses.replace(t2p, n_frames_per_step=frames_per_step)
    tacotron2, waveglow = Tacotron2(t2p), WaveGlow(wgp)
    with torch.no_grad():
        for module in tacotron2.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                # BatchNorm1d tracks running stats by default, so these buffers exist.
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
        tacotron2.decoder.gate_layer.linear_layer.bias.fill_(-8.0)
        for wn in waveglow.WN:
            assert isinstance(wn, WN)  # nn.ModuleList items are typed as Module
            assert wn.end.bias is not None  # WN's end convolution has a bias
            wn.end.weight.mul_(0.1)
            wn.end.bias.zero_()
    return tacotron2.eval(), waveglow.eval()


def voice_config(name: str, tacotron2: Tacotron2, waveglow: WaveGlow, source: dict[str, Any],
                 sigma: float = 0.6) -> VoiceConfig:
    """The voice.json for these models: every number the runtime needs."""
    t, w = tacotron2.params, waveglow.params
    if t.n_symbols != len(SYMBOLS):
        raise ValueError(f"Tacotron 2 has {t.n_symbols} symbols; rtvoice's English set has {len(SYMBOLS)}.")
    if t.n_mel_channels != w.n_mel_channels:
        raise ValueError(f"Tacotron 2 makes {t.n_mel_channels} mel channels; WaveGlow takes {w.n_mel_channels}.")
    return VoiceConfig(
        name=name,
        audio=AudioConfig(n_mel_channels=t.n_mel_channels, hop_length=w.hop_length),
        # Random weights never stop at the text's end, so no frame budget fits them: 0.5 frames
        # per character keeps their pieces at sentence_max_chars, as the tests expect.
        text=TextConfig(symbols=tuple(SYMBOLS), frames_per_char=0.5 if "random" in source else 8.0),
        decoder=DecoderConfig(
            n_mel_channels=t.n_mel_channels,
            encoder_embedding_dim=t.encoder_embedding_dim,
            attention_rnn_dim=t.attention_rnn_dim,
            decoder_rnn_dim=t.decoder_rnn_dim,
            attention_dim=t.attention_dim,
            prenet_dim=t.prenet_dim,
            prenet_dropout=t.prenet_dropout,
            frames_per_step=t.n_frames_per_step,
            gate_threshold=t.gate_threshold,
            max_decoder_steps=t.max_decoder_steps,
            postnet_context_frames=t.postnet_n_convolutions * (t.postnet_kernel_size // 2),
        ),
        vocoder=VocoderConfig(n_group=w.n_group, sigma=sigma),
        profiles=ProfilesConfig(),
        source={**source, "tacotron2": dataclasses.asdict(t), "waveglow": dataclasses.asdict(w)},
    )


def build_voice(tacotron2: Tacotron2, waveglow: WaveGlow, out: str | Path, name: str | None = None,
                source: dict[str, Any] | None = None, sigma: float = 0.6) -> VoiceConfig:
    """Export the four graphs into ``out`` and write its voice.json; returns the config."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    config = voice_config(name or folder.name, tacotron2, waveglow, source or {}, sigma)
    log.info("exporting Tacotron 2 graphs to %s", folder)
    export_tacotron2(tacotron2, folder)
    log.info("exporting WaveGlow graph to %s", folder)
    export_waveglow(waveglow, folder)
    config.save(folder)
    return config
