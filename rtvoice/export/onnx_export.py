"""Export Tacotron 2 (encoder, one decoder step, postnet) and WaveGlow to ONNX.

The graphs and their tensor names are the contract with every runtime backend:

- ``encoder``: ``text`` (B, N) int64, ``text_lengths`` (B,) int64 ->
  ``memory`` (B, N, E), ``processed_memory`` (B, N, A), ``mask`` (B, N) bool (True = pad).
- ``decoder_step``: ``decoder_input`` (B, r * n_mel), the recurrent state (:data:`STATE_NAMES`),
  ``memory``, ``processed_memory``, ``mask``, ``prenet_masks`` (B, 2, P) -> ``mel_frame``
  (B, r * n_mel), ``gate`` (B, r) logits, and ``next_<state>`` for each state tensor. r is
  ``n_frames_per_step`` (NVIDIA's: 1); a step's input is the previous step's output, of
  which it reads the last frame, so a runtime feeds one back as it is.
- ``postnet``: ``mel_frames`` (B, T, n_mel) -> ``mel_postnet`` (B, n_mel, T) (refined, residual added).
- ``waveglow``: ``mel`` (B, n_mel, T), ``noise`` (B, n_group, T*hop/n_group) -> ``audio`` (B, T*hop).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .tacotron2 import DecoderState, Tacotron2
from .waveglow import WaveGlow

OPSET = 17
STATE_NAMES = DecoderState.NAMES


def _lstm_from_cell(cell: nn.LSTMCell) -> nn.LSTM:
    """An ONNX-exportable one-layer LSTM carrying an LSTMCell's weights."""
    lstm = nn.LSTM(cell.input_size, cell.hidden_size)
    # get_parameter, not attribute access: nn.LSTM registers its weights by name, so mypy
    # would see ``lstm.weight_ih_l0`` only as ``Tensor | Module``.
    lstm.get_parameter("weight_ih_l0").data.copy_(cell.weight_ih.data)
    lstm.get_parameter("weight_hh_l0").data.copy_(cell.weight_hh.data)
    lstm.get_parameter("bias_ih_l0").data.copy_(cell.bias_ih.data)
    lstm.get_parameter("bias_hh_l0").data.copy_(cell.bias_hh.data)
    return lstm


class _OneStepLSTM(nn.Module):
    """LSTMCell semantics on top of nn.LSTM, which exports to the ONNX LSTM operator."""

    def __init__(self, cell: nn.LSTMCell) -> None:
        super().__init__()
        self.lstm = _lstm_from_cell(cell)

    def forward(self, x: Tensor, hc: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        _, (h, c) = self.lstm(x.unsqueeze(0), (hc[0].unsqueeze(0), hc[1].unsqueeze(0)))
        return h.squeeze(0), c.squeeze(0)


class EncoderGraph(nn.Module):
    """Batched encoder without packed sequences.

    The backward direction runs on each row reversed within its own length, which is exact
    for padded batches and exports cleanly.
    """

    def __init__(self, model: Tacotron2) -> None:
        super().__init__()
        self.model = model
        lstm = model.encoder.lstm
        self.forward_lstm = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
        for suffix, target in (("", self.forward_lstm), ("_reverse", self.backward_lstm)):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(target, f"{name}_l0").data.copy_(getattr(lstm, f"{name}_l0{suffix}").data)

    def forward(self, text: Tensor, text_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.model.encoder.convs(self.model.embedding(text).transpose(1, 2))
        steps = torch.arange(text.size(1), device=text.device)[None, :]
        mask = steps >= text_lengths[:, None]
        rev = torch.where(mask, steps, text_lengths[:, None] - 1 - steps)
        index = rev.unsqueeze(-1).expand(-1, -1, x.size(2))
        fwd, _ = self.forward_lstm(x)
        bwd, _ = self.backward_lstm(torch.gather(x, 1, index))
        bwd = torch.gather(bwd, 1, rev.unsqueeze(-1).expand(-1, -1, bwd.size(2)))
        memory = torch.cat((fwd, bwd), dim=2).masked_fill(mask.unsqueeze(-1), 0.0)
        processed = self.model.decoder.attention_layer.memory_layer(memory)
        return memory, processed, mask


class DecoderStepGraph(nn.Module):
    def __init__(self, model: Tacotron2) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.attention_rnn = _OneStepLSTM(model.decoder.attention_rnn)
        self.decoder_rnn = _OneStepLSTM(model.decoder.decoder_rnn)
        self.n_mel = model.params.n_mel_channels
        self.r = model.params.n_frames_per_step

    def forward(self, decoder_input: Tensor, *args: Tensor) -> tuple[Tensor, ...]:
        n = len(STATE_NAMES)
        state = DecoderState(*args[:n])
        memory, processed, mask, prenet_masks = args[n:]
        frame = decoder_input[:, -self.n_mel :] if self.r > 1 else decoder_input  # r = 1: NVIDIA's graph, no slice
        mel, gate, nxt = self.decoder.step(
            frame, state, memory, processed, mask, prenet_masks, self.attention_rnn, self.decoder_rnn
        )
        return (mel, gate, *nxt.as_tuple())


class PostnetGraph(nn.Module):
    """The postnet on frames as the decoder writes them: (B, T, n_mel) -> (B, n_mel, T).

    Taking the decoder's layout lets a backend point the postnet straight at a window of its
    mel buffer; the output is in the layout WaveGlow takes.
    """

    def __init__(self, model: Tacotron2) -> None:
        super().__init__()
        self.postnet = model.postnet

    def forward(self, mel_frames: Tensor) -> Tensor:
        mel: Tensor = self.postnet(mel_frames.transpose(1, 2))
        return mel


class WaveGlowGraph(nn.Module):
    def __init__(self, model: WaveGlow) -> None:
        super().__init__()
        self.model = model
        model.freeze_inverses()

    def forward(self, mel: Tensor, noise: Tensor) -> Tensor:
        return self.model.infer(mel, noise)


def _export(module: nn.Module, args: tuple[Tensor, ...], path: Path, inputs: list[str], outputs: list[str],
            axes: dict[str, dict[int, str]]) -> None:
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns about LSTM batch sizes and its own deprecation;
        # the graphs are checked by the parity tests instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )


def export_tacotron2(model: Tacotron2, folder: Path) -> None:
    """Write encoder.onnx, decoder_step.onnx and postnet.onnx into ``folder``."""
    p = model.params
    model.eval()
    b, n = 1, 7
    text = torch.randint(0, p.n_symbols, (b, n))
    lengths = torch.tensor([n])
    enc = EncoderGraph(model)
    _export(enc, (text, lengths), folder / "encoder.onnx", ["text", "text_lengths"],
            ["memory", "processed_memory", "mask"],
            {"text": {0: "batch", 1: "text_length"}, "text_lengths": {0: "batch"},
             "memory": {0: "batch", 1: "text_length"}, "processed_memory": {0: "batch", 1: "text_length"},
             "mask": {0: "batch", 1: "text_length"}})

    with torch.no_grad():
        memory, processed, mask = enc(text, lengths)
    state = DecoderState.zeros(p, b, n, memory)
    frame = torch.zeros(b, p.n_mel_channels * p.n_frames_per_step)
    masks = torch.ones(b, 2, p.prenet_dim)
    batch_only = {0: "batch"}
    axes: dict[str, dict[int, str]] = {"decoder_input": batch_only, "prenet_masks": batch_only,
                                       "mel_frame": batch_only, "gate": batch_only,
                                       "memory": {0: "batch", 1: "text_length"},
                                       "processed_memory": {0: "batch", 1: "text_length"},
                                       "mask": {0: "batch", 1: "text_length"}}
    for name in STATE_NAMES:
        shape = {0: "batch", 1: "text_length"} if name.startswith("attention_weights") else batch_only
        axes[name] = shape
        axes[f"next_{name}"] = shape
    _export(DecoderStepGraph(model), (frame, *state.as_tuple(), memory, processed, mask, masks),
            folder / "decoder_step.onnx",
            ["decoder_input", *STATE_NAMES, "memory", "processed_memory", "mask", "prenet_masks"],
            ["mel_frame", "gate", *(f"next_{s}" for s in STATE_NAMES)], axes)

    frames = torch.randn(b, 12, p.n_mel_channels)
    _export(PostnetGraph(model), (frames,), folder / "postnet.onnx", ["mel_frames"], ["mel_postnet"],
            {"mel_frames": {0: "batch", 1: "mel_frames"}, "mel_postnet": {0: "batch", 2: "mel_frames"}})


def export_waveglow(model: WaveGlow, folder: Path) -> None:
    """Write waveglow.onnx into ``folder``."""
    p = model.params
    model.eval()
    frames = 6
    mel = torch.randn(1, p.n_mel_channels, frames)
    noise = torch.randn(1, p.n_group, frames * p.hop_length // p.n_group)
    _export(WaveGlowGraph(model), (mel, noise), folder / "waveglow.onnx", ["mel", "noise"], ["audio"],
            {"mel": {0: "batch", 2: "mel_frames"}, "noise": {0: "batch", 2: "noise_length"},
             "audio": {0: "batch", 1: "samples"}})
