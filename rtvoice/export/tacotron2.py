"""Tacotron 2 in PyTorch, with the parameter names and shapes of NVIDIA's NGC checkpoints.

Build-time only (torch). The module tree mirrors DeepLearningExamples' so that a published
``state_dict`` loads with no renaming. Randomness that NVIDIA draws inside the model (the
prenet's always-on dropout) is an explicit input here, so the same masks give the same mel
in PyTorch and in every runtime backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class Tacotron2Params:
    """Hyper-parameters, named as in the checkpoint's ``config``."""

    n_mel_channels: int = 80
    n_symbols: int = 148
    symbols_embedding_dim: int = 512
    encoder_kernel_size: int = 5
    encoder_n_convolutions: int = 3
    encoder_embedding_dim: int = 512
    attention_rnn_dim: int = 1024
    attention_dim: int = 128
    attention_location_n_filters: int = 32
    attention_location_kernel_size: int = 31
    decoder_rnn_dim: int = 1024
    prenet_dim: int = 256
    postnet_embedding_dim: int = 512
    postnet_kernel_size: int = 5
    postnet_n_convolutions: int = 5
    max_decoder_steps: int = 2000
    """A count of mel frames, whatever ``n_frames_per_step``."""
    gate_threshold: float = 0.5
    prenet_dropout: float = 0.5
    n_frames_per_step: int = 1
    """Mel frames per decoder step (r); NVIDIA's checkpoints have 1.

    Each step feeds back the last frame of its group (the prenet keeps its shape, unlike
    NVIDIA's, whose prenet takes the whole group) and has one gate logit per frame, so a
    sentence can end mid-group.
    """

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Tacotron2Params:
        """Take the known keys of a checkpoint ``config``; ignore training-only ones."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: config[k] for k in names if k in config})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LinearNorm(nn.Module):
    def __init__(self, n_in: int, n_out: int, bias: bool = True) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(n_in, n_out, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.linear_layer(x)
        return y


class ConvNorm(nn.Module):
    def __init__(self, n_in: int, n_out: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_in, n_out, kernel_size, padding=(kernel_size - 1) // 2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.conv(x)
        return y


def _conv_bn(n_in: int, n_out: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(ConvNorm(n_in, n_out, kernel_size), nn.BatchNorm1d(n_out))


class Encoder(nn.Module):
    """Three conv+BN layers and a bidirectional LSTM: text embeddings -> memory."""

    def __init__(self, p: Tacotron2Params) -> None:
        super().__init__()
        dims = [p.symbols_embedding_dim] + [p.encoder_embedding_dim] * p.encoder_n_convolutions
        self.convolutions = nn.ModuleList(
            _conv_bn(dims[i], dims[i + 1], p.encoder_kernel_size) for i in range(p.encoder_n_convolutions)
        )
        self.lstm = nn.LSTM(
            p.encoder_embedding_dim, p.encoder_embedding_dim // 2, 1, batch_first=True, bidirectional=True
        )

    def convs(self, x: Tensor) -> Tensor:
        for conv in self.convolutions:
            x = F.relu(conv(x))  # dropout is training-only here
        return x.transpose(1, 2)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        x = self.convs(x)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return memory


class Prenet(nn.Module):
    def __init__(self, n_in: int, dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([LinearNorm(n_in, dim, bias=False), LinearNorm(dim, dim, bias=False)])

    def forward(self, x: Tensor, masks: Tensor) -> Tensor:
        """``masks`` (B, 2, dim) holds the dropout masks, already scaled by 1/(1-p)."""
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) * masks[:, i]
        return x


class LocationLayer(nn.Module):
    def __init__(self, n_filters: int, kernel_size: int, attention_dim: int) -> None:
        super().__init__()
        self.location_conv = ConvNorm(2, n_filters, kernel_size, bias=False)
        self.location_dense = LinearNorm(n_filters, attention_dim, bias=False)

    def forward(self, weights_cat: Tensor) -> Tensor:
        processed: Tensor = self.location_dense(self.location_conv(weights_cat).transpose(1, 2))
        return processed


class Attention(nn.Module):
    """Location-sensitive attention."""

    def __init__(self, p: Tacotron2Params) -> None:
        super().__init__()
        self.query_layer = LinearNorm(p.attention_rnn_dim, p.attention_dim, bias=False)
        self.memory_layer = LinearNorm(p.encoder_embedding_dim, p.attention_dim, bias=False)
        self.v = LinearNorm(p.attention_dim, 1, bias=False)
        self.location_layer = LocationLayer(
            p.attention_location_n_filters, p.attention_location_kernel_size, p.attention_dim
        )

    def forward(
        self, query: Tensor, memory: Tensor, processed_memory: Tensor, weights_cat: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        processed_query = self.query_layer(query.unsqueeze(1))
        processed_location = self.location_layer(weights_cat)
        energies = self.v(torch.tanh(processed_query + processed_location + processed_memory)).squeeze(-1)
        energies = energies.masked_fill(mask, float("-inf"))
        weights = F.softmax(energies, dim=1)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
        return context, weights


@dataclass
class DecoderState:
    """The recurrent state of one decoder step, by name (never a positional tuple)."""

    attention_hidden: Tensor
    attention_cell: Tensor
    decoder_hidden: Tensor
    decoder_cell: Tensor
    attention_weights: Tensor
    attention_weights_cum: Tensor
    attention_context: Tensor

    NAMES = (
        "attention_hidden",
        "attention_cell",
        "decoder_hidden",
        "decoder_cell",
        "attention_weights",
        "attention_weights_cum",
        "attention_context",
    )

    @classmethod
    def zeros(cls, p: Tacotron2Params, batch: int, text_len: int, like: Tensor) -> DecoderState:
        def z(*shape: int) -> Tensor:
            return like.new_zeros(shape)

        return cls(
            z(batch, p.attention_rnn_dim),
            z(batch, p.attention_rnn_dim),
            z(batch, p.decoder_rnn_dim),
            z(batch, p.decoder_rnn_dim),
            z(batch, text_len),
            z(batch, text_len),
            z(batch, p.encoder_embedding_dim),
        )

    def as_tuple(self) -> tuple[Tensor, ...]:
        return tuple(getattr(self, n) for n in self.NAMES)


class Decoder(nn.Module):
    """One autoregressive step at a time: previous mel frame -> next frame and gate logit.

    With ``n_frames_per_step`` r > 1, a step gives r frames (B, n_mel * r) and r gate
    logits (B, r); the next step is fed the last of the r frames.
    """

    def __init__(self, p: Tacotron2Params) -> None:
        super().__init__()
        self.p = p
        self.prenet = Prenet(p.n_mel_channels, p.prenet_dim)
        self.attention_rnn = nn.LSTMCell(p.prenet_dim + p.encoder_embedding_dim, p.attention_rnn_dim)
        self.attention_layer = Attention(p)
        self.decoder_rnn = nn.LSTMCell(p.attention_rnn_dim + p.encoder_embedding_dim, p.decoder_rnn_dim)
        r = p.n_frames_per_step  # per step: r frames (frame j in rows j*n_mel...) and r gate logits
        self.linear_projection = LinearNorm(p.decoder_rnn_dim + p.encoder_embedding_dim, p.n_mel_channels * r)
        self.gate_layer = LinearNorm(p.decoder_rnn_dim + p.encoder_embedding_dim, r)

    def step(
        self,
        frame: Tensor,
        s: DecoderState,
        memory: Tensor,
        processed_memory: Tensor,
        mask: Tensor,
        prenet_masks: Tensor,
        attention_rnn: Any = None,
        decoder_rnn: Any = None,
    ) -> tuple[Tensor, Tensor, DecoderState]:
        """One step. ``attention_rnn``/``decoder_rnn`` let the ONNX export swap the cells."""
        attention_rnn = attention_rnn or self.attention_rnn
        decoder_rnn = decoder_rnn or self.decoder_rnn
        x = self.prenet(frame, prenet_masks)
        ah, ac = attention_rnn(torch.cat((x, s.attention_context), -1), (s.attention_hidden, s.attention_cell))
        weights_cat = torch.stack((s.attention_weights, s.attention_weights_cum), dim=1)
        context, weights = self.attention_layer(ah, memory, processed_memory, weights_cat, mask)
        dh, dc = decoder_rnn(torch.cat((ah, context), -1), (s.decoder_hidden, s.decoder_cell))
        out = torch.cat((dh, context), dim=1)
        mel = self.linear_projection(out)
        gate = self.gate_layer(out)
        return mel, gate, DecoderState(ah, ac, dh, dc, weights, s.attention_weights_cum + weights, context)


class Postnet(nn.Module):
    """Five conv+BN layers predicting a residual that refines the decoder's mel."""

    def __init__(self, p: Tacotron2Params) -> None:
        super().__init__()
        n = p.postnet_n_convolutions
        dims = [p.n_mel_channels] + [p.postnet_embedding_dim] * (n - 1) + [p.n_mel_channels]
        self.convolutions = nn.ModuleList(_conv_bn(dims[i], dims[i + 1], p.postnet_kernel_size) for i in range(n))

    def forward(self, mel: Tensor) -> Tensor:
        x = mel
        for i, conv in enumerate(self.convolutions):
            x = conv(x)
            if i < len(self.convolutions) - 1:
                x = torch.tanh(x)
        return mel + x


class Tacotron2(nn.Module):
    def __init__(self, p: Tacotron2Params) -> None:
        super().__init__()
        self.params = p
        self.embedding = nn.Embedding(p.n_symbols, p.symbols_embedding_dim)
        self.encoder = Encoder(p)
        self.decoder = Decoder(p)
        self.postnet = Postnet(p)

    def encode(self, text: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Text ids (B, N) -> memory (B, N, E), processed memory (B, N, A), pad mask (B, N)."""
        memory = self.encoder(self.embedding(text).transpose(1, 2), lengths)
        processed = self.decoder.attention_layer.memory_layer(memory)
        mask = torch.arange(text.size(1), device=text.device)[None, :] >= lengths[:, None]
        return memory, processed, mask

    @torch.no_grad()
    def infer(self, text: Tensor, prenet_masks: Tensor, n_steps: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Reference inference for batch 1: returns (mel, mel_postnet, gate logits), per frame.

        ``prenet_masks`` is (steps, 1, 2, prenet_dim), one per decoder step of r frames. Stops
        at the gate like NVIDIA's code (the frame where the gate fires is kept, the rest of its
        step dropped) unless ``n_steps`` forces the length; both count frames.
        """
        p = self.params
        r, n_mel = p.n_frames_per_step, p.n_mel_channels
        lengths = torch.tensor([text.size(1)], device=text.device)
        memory, processed, mask = self.encode(text, lengths)
        state = DecoderState.zeros(p, 1, text.size(1), memory)
        frame = memory.new_zeros(1, n_mel)
        mels, gates = [], []
        limit = n_steps or min(p.max_decoder_steps, prenet_masks.size(0) * r)
        length = limit
        for i in range(-(-limit // r)):
            frames, gate, state = self.decoder.step(frame, state, memory, processed, mask, prenet_masks[i])
            frame = frames[:, -n_mel:]
            mels.append(frames.view(1, r, n_mel))
            gates.append(gate)
            fired = (torch.sigmoid(gate[0, : limit - i * r]) > p.gate_threshold).nonzero()
            if n_steps is None and len(fired):
                length = i * r + int(fired[0]) + 1
                break
        mel = torch.cat(mels, dim=1)[:, :length].transpose(1, 2)
        return mel, self.postnet(mel), torch.cat(gates, dim=1)[:, :length]
