"""Tacotron 2's training forward pass, losses and a free-running decode, on rtvoice's model.

The modules are rtvoice.export.tacotron2's, so parameter names are NVIDIA's and a trained
``state_dict`` exports with ``build_voice`` unchanged. What training adds lives here:

- dropout where NVIDIA's training has it (encoder convolutions, postnet, the attention and
  decoder LSTM outputs); the runtime graphs have none of these;
- teacher forcing: step ``t`` reads target frame ``t - 1`` (a zero "go" frame first) through
  the prenet, whose dropout masks are drawn here explicitly, exactly as the runtime feeds
  them (``prenet_masks``, scaled by 1/(1-p));
- the prenet and the output projections run once over all frames instead of per step (same
  arithmetic as :meth:`Decoder.step`, fewer kernel launches);
- a guided-attention loss (Tachibana et al., 2017): attention far from the diagonal
  (text position / text length = frame / mel length) costs ``1 - exp(-d^2 / 2g^2)``;
- padding is invisible: the encoder's and the postnet's convolutions see zeros past each
  item's end at every layer, so each item is computed exactly as the runtime computes it
  alone, and padding a batch further changes no loss (what lets training/decoder_graphs.py
  pad batches to a few fixed shapes);
- a reduction factor r (``n_frames_per_step``): each decoder step emits r frames, so a
  sentence takes T/r steps of the sequential loop that bounds training time. Step ``g`` reads
  target frame ``g*r - 1``; frames, gates and losses stay per frame, the alignment and the
  prenet masks are per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.grad import conv1d_input, conv1d_weight

from rtvoice.export.tacotron2 import Attention, DecoderState, Tacotron2


@dataclass(frozen=True)
class Dropouts:
    encoder: float = 0.5
    postnet: float = 0.5
    attention: float = 0.1
    decoder: float = 0.1


@dataclass(frozen=True)
class Batch:
    text: Tensor  # (B, N) int64, 0-padded
    text_lengths: Tensor  # (B,) int64
    mel: Tensor  # (B, n_mel, T) float32, 0-padded
    mel_lengths: Tensor  # (B,) int64


@dataclass(frozen=True)
class Output:
    mel: Tensor  # (B, n_mel, T) decoder output
    mel_postnet: Tensor  # (B, n_mel, T)
    gate: Tensor  # (B, T) logits
    alignments: Tensor  # (B, ceil(T / r), N): one row per decoder step
    frames_per_step: int = 1  # r


@overload
def decoder_steps(frames: int, r: int) -> int: ...
@overload
def decoder_steps(frames: Tensor, r: int) -> Tensor: ...
def decoder_steps(frames: int | Tensor, r: int) -> int | Tensor:
    """Decoder steps that emit ``frames`` frames at ``r`` per step: ceil(frames / r)."""
    return -(-frames // r)


def prenet_masks(steps: int, batch: int, dim: int, p: float, device: torch.device,
                 generator: torch.Generator | None = None) -> Tensor:
    """Bernoulli keep-masks (steps, batch, 2, dim), already scaled by 1/(1-p), like the runtime's."""
    keep = torch.rand(steps, batch, 2, dim, device=device, generator=generator) >= p
    return keep.float() / (1.0 - p)


def encode(model: Tacotron2, text: Tensor, lengths: Tensor, dropout: float) -> tuple[Tensor, Tensor, Tensor]:
    """Model.encode with NVIDIA's training dropout after each encoder convolution."""
    live = (torch.arange(text.size(1), device=text.device)[None, :] < lengths[:, None])[:, None, :]
    x = model.embedding(text).transpose(1, 2) * live
    for conv in model.encoder.convolutions:  # each item's convolutions see zeros past its end, as alone
        x = F.dropout(F.relu(conv(x)), dropout, model.training) * live
    x = x.transpose(1, 2)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = model.encoder.lstm(packed)
    memory, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=text.size(1))
    processed = model.decoder.attention_layer.memory_layer(memory)
    return memory, processed, ~live[:, 0, :]


def postnet(model: Tacotron2, mel: Tensor, dropout: float, live: Tensor) -> Tensor:
    """The postnet with training dropout; ``live`` (B, 1, T) zeroes every layer's input past each item's end.

    So each item's postnet is exactly the postnet of its own frames alone (the runtime's), however
    far the batch is padded.
    """
    x = mel * live
    n = len(model.postnet.convolutions)
    for i, conv in enumerate(model.postnet.convolutions):
        x = conv(x)
        if i < n - 1:
            x = torch.tanh(x)
        x = F.dropout(x, dropout, model.training) * live
    return mel * live + x


class LocationEnergies(torch.autograd.Function):
    """Location-sensitive attention's energies ``v . tanh(q + L(weights_cat) + processed_memory)``, (B, N).

    The arithmetic of :meth:`Attention.forward`, in float32 at least, with a backward of its own that
    recomputes the (B, N, attention_dim) features instead of keeping them. Why: autograd keeps
    that sum's tanh and the location features for every decoder frame, about 160 values per
    (item, symbol, frame), the bulk of a training step's memory; that memory, not time,
    capped the GPU batch (256 took 43 GiB on its longest batches). Kept here per frame: the
    projected query (B, A) and ``weights_cat`` (B, 2, N). The price is the forward's five
    kernels again in the backward.

    Inputs: ``query`` (B, A) already through ``query_layer``, ``weights_cat`` (B, 2, N),
    ``processed_memory`` (B, N, A), and the weights of ``location_conv`` (F, 2, K),
    ``location_dense`` (A, F) and ``v`` (1, A). Gradients come back in each input's dtype.
    """

    @staticmethod
    def _wide(*tensors: Tensor) -> tuple[Tensor, ...]:
        """The inputs in float32 (float64 stays float64), whatever autocast made of them."""
        dtype = torch.promote_types(tensors[0].dtype, torch.float32)
        return tuple(t.to(dtype) for t in tensors)

    @staticmethod
    def _features(query: Tensor, weights_cat: Tensor, processed_memory: Tensor, conv: Tensor,
                  dense: Tensor) -> tuple[Tensor, Tensor]:
        """(location conv output (B, N, F), tanh of the summed features (B, N, A))."""
        location = F.conv1d(weights_cat, conv, padding=(conv.size(-1) - 1) // 2).transpose(1, 2)
        return location, torch.tanh(query[:, None, :] + location @ dense.T + processed_memory)

    @staticmethod
    def forward(ctx: Any, query: Tensor, weights_cat: Tensor, processed_memory: Tensor, conv: Tensor,
                dense: Tensor, v: Tensor) -> Tensor:
        ctx.save_for_backward(query, weights_cat, processed_memory, conv, dense, v)
        with torch.autocast(query.device.type, enabled=False):
            q, w, pm, c, d, vv = LocationEnergies._wide(query, weights_cat, processed_memory, conv, dense, v)
            return LocationEnergies._features(q, w, pm, c, d)[1] @ vv[0]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, ...]:
        saved = ctx.saved_tensors
        with torch.autocast(grad.device.type, enabled=False):
            q, w, pm, c, d, vv = LocationEnergies._wide(*saved)
            location, h = LocationEnergies._features(q, w, pm, c, d)
            g = grad.to(h.dtype)
            g_sum = g[..., None] * vv[0] * (1 - h * h)  # (B, N, A): d energies / d (q + L + pm)
            g_v = torch.einsum("bn,bna->a", g, h)[None]
            g_dense = g_sum.flatten(0, 1).T @ location.flatten(0, 1)
            g_location = (g_sum @ d).transpose(1, 2)  # (B, F, N)
            pad = (c.size(-1) - 1) // 2
            g_conv = conv1d_weight(w, c.shape, g_location, padding=pad)  # type: ignore[no-untyped-call]
            g_weights = conv1d_input(w.shape, c, g_location, padding=pad)  # type: ignore[no-untyped-call]
        grads = (g_sum.sum(1), g_weights, g_sum, g_conv, g_dense, g_v)
        return tuple(gr.to(t.dtype) for gr, t in zip(grads, saved, strict=True))


class AttentionStep(nn.Module):
    """The attention's per-frame layers: all of :class:`Attention` but ``memory_layer``.

    ``memory_layer`` runs once per sentence, before the loop (:func:`encode`). A loop module
    that held it would own a parameter its output does not depend on, and
    ``torch.cuda.make_graphed_callables`` refuses those ("One of the differentiated Tensors
    appears to not have been used in the graph"). Its energies go through
    :class:`LocationEnergies`, which keeps a frame's memory small.
    """

    def __init__(self, attention: Attention) -> None:
        super().__init__()
        self.query_layer, self.location_layer, self.v = attention.query_layer, attention.location_layer, attention.v

    def forward(self, query: Tensor, memory: Tensor, processed_memory: Tensor, weights_cat: Tensor,
                mask: Tensor) -> tuple[Tensor, Tensor]:
        # The same arithmetic as Attention.forward.
        energies: Tensor = LocationEnergies.apply(  # type: ignore[no-untyped-call]
            self.query_layer(query), weights_cat, processed_memory, self.location_layer.location_conv.conv.weight,
            self.location_layer.location_dense.linear_layer.weight, self.v.linear_layer.weight)
        weights = F.softmax(energies.masked_fill(mask, float("-inf")), dim=1)
        context = torch.bmm(weights.unsqueeze(1).to(memory.dtype), memory).squeeze(1)
        return context, weights


class DecoderLoop(nn.Module):
    """The teacher-forced recurrence: attention LSTM, attention, decoder LSTM, for every frame.

    ``(prenet_out (T, B, prenet_dim), memory, processed, mask) -> (outputs (B, T, D + E),
    alignments (B, T, N))``. A module of its own, holding the model's own three submodules,
    because this loop is where training time goes: dozens of small kernels per frame, so a
    GPU waits on launches. As one module with tensor-only inputs it can be captured whole in
    a CUDA graph (training/decoder_graphs.py); eagerly it is the same arithmetic.
    """

    def __init__(self, model: Tacotron2, drop: Dropouts) -> None:
        super().__init__()
        dec = model.decoder
        self.attention_rnn, self.decoder_rnn = dec.attention_rnn, dec.decoder_rnn
        self.attention_layer = AttentionStep(dec.attention_layer)
        self.params, self.drop = model.params, drop

    def forward(self, prenet_out: Tensor, memory: Tensor, processed: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        s = DecoderState.zeros(self.params, memory.size(0), memory.size(1), memory)
        outputs, alignments = [], []
        for step in range(prenet_out.size(0)):
            ah, ac = self.attention_rnn(torch.cat((prenet_out[step], s.attention_context), -1),
                                        (s.attention_hidden, s.attention_cell))
            ah = F.dropout(ah, self.drop.attention, self.training)
            weights_cat = torch.stack((s.attention_weights, s.attention_weights_cum), dim=1)
            context, weights = self.attention_layer(ah, memory, processed, weights_cat, mask)
            dh, dc = self.decoder_rnn(torch.cat((ah, context), -1), (s.decoder_hidden, s.decoder_cell))
            dh = F.dropout(dh, self.drop.decoder, self.training)
            outputs.append(torch.cat((dh, context), dim=1))
            alignments.append(weights)
            s = DecoderState(ah, ac, dh, dc, weights, s.attention_weights_cum + weights, context)
        return torch.stack(outputs, dim=1), torch.stack(alignments, dim=1)


LoopRunner = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
LoopSource = Callable[[Tensor, Tensor, Tensor, Tensor], LoopRunner]
"""Given the loop's inputs, what runs it (a captured graph of their shape, or the eager loop)."""


def teacher_forced(model: Tacotron2, batch: Batch, masks: Tensor, drop: Dropouts,
                   loops: LoopSource | None = None) -> Output:
    """The training forward pass. ``masks`` (S, B, 2, prenet_dim) are the prenet's dropout masks.

    One mask per decoder step: S >= ceil(T / r); the first ones are used. With r > 1 the mel
    is padded to a multiple of r (frames past each item's end are masked out of every loss,
    as padding is) and the outputs are cut back to its T frames. ``loops`` picks what runs
    the decoder loop (see training/decoder_graphs.py); without it, :class:`DecoderLoop` runs
    eagerly, with dropout as ``model.training`` says.
    """
    p = model.params
    dec = model.decoder
    r, n_mel = p.n_frames_per_step, p.n_mel_channels
    memory, processed, mask = encode(model, batch.text, batch.text_lengths, drop.encoder)
    b, _, t = batch.mel.shape
    steps = decoder_steps(t, r)
    if masks.size(0) < steps:
        raise ValueError(f"{masks.size(0)} prenet masks for {steps} decoder steps ({t} frames, {r} per step).")
    last = F.pad(batch.mel, (0, steps * r - t))[:, :, r - 1 :: r]  # each step's last target frame
    previous = torch.cat((batch.mel.new_zeros(b, n_mel, 1), last[:, :, :-1]), dim=2)
    x = previous.permute(2, 0, 1).reshape(steps * b, n_mel)
    prenet_out = dec.prenet(x, masks[:steps].reshape(steps * b, 2, p.prenet_dim)).view(steps, b, p.prenet_dim)
    run = loops(prenet_out, memory, processed, mask) if loops is not None else \
        DecoderLoop(model, drop).train(model.training)
    out, alignments = run(prenet_out, memory, processed, mask)
    live = (torch.arange(t, device=batch.mel_lengths.device)[None, :] < batch.mel_lengths[:, None])[:, None, :]
    frames = dec.linear_projection(out).reshape(b, steps * r, n_mel)[:, :t]  # frame j of a step: rows j*n_mel...
    mel = frames.transpose(1, 2) * live
    gate = dec.gate_layer(out).reshape(b, steps * r)[:, :t]
    return Output(mel, postnet(model, mel, drop.postnet, live), gate, alignments, r)


def guide_weights(text_lengths: Tensor, mel_lengths: Tensor, n: int, t: int, sigma: float) -> Tensor:
    """(B, T, N) penalty ``1 - exp(-(n/N - t/T)^2 / 2 sigma^2)``, zero outside each item's lengths."""
    tn = torch.arange(n, device=text_lengths.device)[None, None, :] / text_lengths[:, None, None]
    tt = torch.arange(t, device=text_lengths.device)[None, :, None] / mel_lengths[:, None, None]
    w = 1.0 - torch.exp(-((tn - tt) ** 2) / (2 * sigma**2))
    valid = (tn < 1) & (tt < 1)
    return w * valid


def losses(out: Output, batch: Batch, gate_pos_weight: float, guide_sigma: float) -> dict[str, Tensor]:
    """Masked MSE of both mels, gate BCE (last frame positive) and guided attention, in float32.

    The mels and the gate are per frame; guided attention is per decoder step (each item's
    ceil(frames / r) steps), averaged over steps.
    """
    mel_len = batch.mel_lengths
    t = batch.mel.size(2)
    frames = torch.arange(t, device=mel_len.device)[None, :] < mel_len[:, None]  # (B, T)
    n_frames = frames.sum()
    m = frames[:, None, :].float()
    n_values = n_frames * batch.mel.size(1)
    target = batch.mel
    mel = ((out.mel.float() - target) ** 2 * m).sum() / n_values
    post = ((out.mel_postnet.float() - target) ** 2 * m).sum() / n_values
    gate_target = (torch.arange(t, device=mel_len.device)[None, :] >= (mel_len[:, None] - 1)).float()
    bce = F.binary_cross_entropy_with_logits(out.gate.float(), gate_target, reduction="none",
                                             pos_weight=torch.tensor(gate_pos_weight, device=mel_len.device))
    gate = (bce * frames).sum() / n_frames
    step_len = decoder_steps(mel_len, out.frames_per_step)
    w = guide_weights(batch.text_lengths, step_len, out.alignments.size(2), out.alignments.size(1), guide_sigma)
    guide = (out.alignments.float() * w).sum() / step_len.sum()
    return {"mel": mel, "mel_postnet": post, "gate": gate, "guide": guide}


def step_frames(model: Tacotron2, frame: Tensor, state: DecoderState, memory: Tensor, processed: Tensor,
                mask: Tensor, masks: Tensor) -> tuple[Tensor, Tensor, DecoderState]:
    """One decoder step, per frame: (frames (B, n_mel, r), gate logits (B, r), next state).

    ``frame`` (B, n_mel) is the previous step's last frame (zeros first). The reference that
    teacher forcing and :func:`free_run` agree with, for any r.
    """
    mel, gate, state = model.decoder.step(frame, state, memory, processed, mask, masks)
    return mel.view(mel.size(0), -1, model.params.n_mel_channels).transpose(1, 2), gate, state


@torch.no_grad()
def free_run(model: Tacotron2, ids: Tensor, max_steps: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, bool]:
    """Decode one sentence as the runtime does (batch 1, own output fed back, stop at the gate).

    ``max_steps`` counts frames, as ``max_decoder_steps`` does, whatever r. With r > 1 each
    step feeds back its last frame, and the first gate to fire in a group ends the mel at
    its frame. Returns (mel_postnet (n_mel, T), gate logits (T,), alignments (ceil(T / r), N),
    stopped by the gate).
    """
    p = model.params
    r = p.n_frames_per_step
    text = ids[None].long()
    lengths = torch.tensor([ids.numel()], device=ids.device)
    memory, processed, mask = model.encode(text, lengths)
    generator = torch.Generator(device=ids.device).manual_seed(seed)
    masks = prenet_masks(decoder_steps(max_steps, r), 1, p.prenet_dim, p.prenet_dropout, ids.device, generator)
    state = DecoderState.zeros(p, 1, text.size(1), memory)
    frame = memory.new_zeros(1, p.n_mel_channels)
    mels, gates, aligns = [], [], []
    stopped = False
    for i in range(masks.size(0)):
        group, gate, state = step_frames(model, frame, state, memory, processed, mask, masks[i])
        room = min(r, max_steps - i * r)  # the last step may have room for fewer than r frames
        fired = (torch.sigmoid(gate[0, :room]) > p.gate_threshold).nonzero()
        keep = int(fired[0]) + 1 if len(fired) else room
        mels.append(group[0, :, :keep])
        gates.append(gate[0, :keep])
        aligns.append(state.attention_weights[0])
        frame = group[:, :, -1]
        if len(fired):
            stopped = True
            break
    mel = torch.cat(mels, dim=1)[None]
    return model.postnet(mel)[0], torch.cat(gates), torch.stack(aligns), stopped
