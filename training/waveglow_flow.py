"""WaveGlow's training direction (audio -> z) and its loss, on rtvoice's model.

rtvoice.export.waveglow holds only the inference direction (z -> audio). This is NVIDIA's
forward pass with the same modules, so the trained ``state_dict`` exports unchanged:

- audio (B, S) is grouped into (B, n_group, S / n_group), channel ``j`` holding samples
  ``i * n_group + j``;
- each flow applies its invertible 1x1 convolution, then an affine coupling whose scale and
  shift come from the flow's WN on the first half of the channels and the mel conditioning;
- every ``n_early_every`` flows, ``n_early_size`` channels leave early; z is the early
  outputs in order, then what remains: the layout rtvoice's noise input uses.

Only the WN networks run in reduced precision; the 1x1 convolutions, the coupling and the
log-determinants stay in float32, where the likelihood is sensitive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from rtvoice.export.waveglow import WaveGlow


def zero_init_couplings(model: WaveGlow) -> None:
    """Start every flow as the identity (NVIDIA zeroes each WN's last convolution)."""
    with torch.no_grad():
        for wn in model.WN:
            wn.end.weight.zero_()
            wn.end.bias.zero_()


def forward_flow(model: WaveGlow, audio: Tensor, mel: Tensor,
                 autocast: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Run the flows from audio to z.

    Audio (B, frames * hop) float in [-1, 1) and mel (B, n_mel, frames) give
    (z (B, n_group, S / n_group), sum of log s, sum of log|det W|).
    """
    p = model.params
    b, s = audio.shape
    with autocast():
        spect = model.condition(mel)
    x = audio.float().view(b, s // p.n_group, p.n_group).transpose(1, 2)
    steps = x.size(2)
    early: list[Tensor] = []
    log_s_total = x.new_zeros(())
    logdet_total = x.new_zeros(())
    for k in range(p.n_flows):
        if k % p.n_early_every == 0 and k > 0:
            early.append(x[:, : p.n_early_size])
            x = x[:, p.n_early_size :]
        w = model.convinv[k].conv.weight.float()
        x = F.conv1d(x, w)
        logdet_total = logdet_total + b * steps * torch.linalg.slogdet(w.squeeze(-1))[1]
        n_half = x.size(1) // 2
        x0, x1 = x[:, :n_half], x[:, n_half:]
        with autocast():
            out = model.WN[k](x0, spect)
        out = out.float()
        log_s, shift = out[:, n_half:], out[:, :n_half]
        x1 = torch.exp(log_s) * x1 + shift
        log_s_total = log_s_total + log_s.sum()
        x = torch.cat((x0, x1), dim=1)
    z = torch.cat((*early, x), dim=1)
    return z, log_s_total, logdet_total


def flow_loss(z: Tensor, log_s_total: Tensor, logdet_total: Tensor, sigma: float = 1.0) -> Tensor:
    """NVIDIA's WaveGlowLoss: negative log-likelihood per audio sample (up to a constant)."""
    return (torch.sum(z * z) / (2 * sigma * sigma) - log_s_total - logdet_total) / z.numel()
