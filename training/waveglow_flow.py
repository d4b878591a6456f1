"""WaveGlow's training direction (audio -> z) and its loss, on rtvoice's model.

rtvoice.export.waveglow holds only the inference direction (z -> audio). This is NVIDIA's
forward pass with the same modules, so the trained ``state_dict`` exports unchanged:

- audio (B, S) is grouped into (B, n_group, S / n_group), channel ``j`` holding samples
  ``i * n_group + j``;
- each flow applies its invertible 1x1 convolution, then an affine coupling whose scale and
  shift come from the flow's WN on the first half of the channels and the mel conditioning;
- every ``n_early_every`` flows, ``n_early_size`` channels leave early; z is the early
  outputs in order, then what remains: the layout rtvoice's noise input uses;
- with ``--inv-conv lu`` (the default) the 1x1 convolutions train LU-parametrized, as Glow's
  do (:class:`LUWeight`), and are saved as NVIDIA's plain W;
- with ``--weight-norm on`` the WN convolutions train weight-normed, as NVIDIA's do
  (:func:`add_weight_norm`), saved under NVIDIA's ``weight_g``/``weight_v`` names, which
  rtvoice's loader folds.

Only the WN networks run in reduced precision; the 1x1 convolutions, the coupling and the
log-determinants stay in float32, where the likelihood is sensitive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from rtvoice.export.waveglow import WN, Invertible1x1Conv, WaveGlow

_PARAMETRIZED = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}


def add_weight_norm(model: WaveGlow) -> None:
    """NVIDIA's training parametrization: ``weight = g * v / ||v||`` on each WN's convolutions.

    On the start, dilated, conditioning and residual/skip convolutions (not the zero-started
    last one), as NVIDIA's WaveGlow trains. Why an option: it separates each filter's scale from
    its direction, which NVIDIA relies on for its large WaveGlow; our plain-weight runs had
    gradient norms in the hundreds with rare spikes. On our small model it did worse in a CPU
    side-by-side (training/README.md), so it is off unless asked for (``--weight-norm on``).
    Applied to trained plain weights it is exact: ``v = weight``, ``g = ||weight||``.
    """
    for wn in model.WN:
        assert isinstance(wn, WN)  # nn.ModuleList items are typed as Module
        for conv in (wn.start, *wn.in_layers, *wn.cond_layers, *wn.res_skip_layers):
            torch.nn.utils.parametrizations.weight_norm(conv, name="weight", dim=0)


def to_nvidia_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A weight-normed model's ``state_dict`` under NVIDIA's checkpoint names (``X.weight_g``, ``X.weight_v``).

    rtvoice's checkpoint loader folds those pairs (``fold_weight_norm``), as it does NVIDIA's.
    """
    out = {}
    for name, value in state.items():
        for long, short in _PARAMETRIZED.items():
            name = name.replace(long, short)
        out[name] = value
    return out


def from_nvidia_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of :func:`to_nvidia_names`, for loading into a weight-normed model."""
    out = {}
    for name, value in state.items():
        for long, short in _PARAMETRIZED.items():
            if name.endswith("." + short):
                name = name.removesuffix(short) + long
        out[name] = value
    return out


def has_weight_norm(state: dict[str, Tensor]) -> bool:
    return any(name.endswith(".weight_g") for name in state)


def standardize_conditioning(model: WaveGlow, mel_mean: Tensor, mel_std: float) -> None:
    """Start each WN's conditioning convolutions as if their input were standardized mel.

    Only for frame-rate conditioning, where the WN networks read the log mel itself: its values
    sit around -5 with a spread of 2.4, so freshly initialized conditioning convolutions drive
    about half the gates' tanh inputs past +-2 (saturated, little gradient), and a run left the
    conditioning unused after 4k iterations. ``W' = W / std``, ``b' = b - W' @ mean`` feeds the
    gates ``W (mel - mean) / std`` instead. The architecture is unchanged: this is initialization.
    """
    if not model.params.frame_rate:
        raise ValueError("standardize_conditioning is for frame-rate conditioning (upsample_kernel 0)")
    with torch.no_grad():
        for wn in model.WN:
            assert isinstance(wn, WN)  # nn.ModuleList items are typed as Module
            for conv in wn.cond_layers:
                assert isinstance(conv, torch.nn.Conv1d) and conv.bias is not None
                conv.weight.div_(mel_std)
                conv.bias.sub_(conv.weight[:, :, 0] @ mel_mean.to(conv.weight))


class LUWeight(nn.Module):
    """Glow's parametrization of an invertible 1x1 convolution: ``W = P L (U + diag(sign * exp(log_s)))``.

    P (a permutation) and the signs stay fixed; L (unit lower triangular), U (strictly upper)
    and ``log_s`` train. Why: ``log|det W| = sum(log_s)``, with no LU factorization in the step.
    NVIDIA's plain W needs ``slogdet`` forward and a solve backward for every flow: solver calls
    that cost time on a GPU and may not be capturable in a CUDA graph (waveglow_graph.py). The
    model still computes and exports a plain W, so checkpoints keep NVIDIA's layout
    (:func:`plain_state_dict`); registering on trained weights is exact.
    """

    perm: Tensor
    sign: Tensor
    strict_lower: Tensor
    eye: Tensor

    def __init__(self, c: int) -> None:
        super().__init__()
        self.register_buffer("perm", torch.eye(c))
        self.register_buffer("sign", torch.ones(c))
        self.register_buffer("strict_lower", torch.tril(torch.ones(c, c), -1))
        self.register_buffer("eye", torch.eye(c))

    def factors(self, lower: Tensor, upper: Tensor, log_s: Tensor) -> tuple[Tensor, Tensor]:
        """L (unit lower triangular) and U (upper triangular, its diagonal ``sign * exp(log_s)``)."""
        lower_unit = lower * self.strict_lower + self.eye
        upper_full = upper * self.strict_lower.T + torch.diag(self.sign * torch.exp(log_s))
        return lower_unit, upper_full

    def forward(self, lower: Tensor, upper: Tensor, log_s: Tensor) -> Tensor:
        lower_unit, upper_full = self.factors(lower, upper, log_s)
        return (self.perm @ lower_unit @ upper_full)[:, :, None]

    def inverse(self, lower: Tensor, upper: Tensor, log_s: Tensor) -> Tensor:
        """``W^-1 = U^-1 L^-1 P^T`` (c, c) by two triangular solves: no factorization either."""
        lower_unit, upper_full = self.factors(lower, upper, log_s)
        left = torch.linalg.solve_triangular(lower_unit, self.perm.T, upper=False, unitriangular=True)
        return cast(Tensor, torch.linalg.solve_triangular(upper_full, left, upper=True))

    def right_inverse(self, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Factor a weight (c, c, 1); fixes P and the signs from it (called once, at registration)."""
        perm, lower, upper = torch.linalg.lu(weight.detach().squeeze(-1).double())
        diag = torch.diagonal(upper)
        self.perm.copy_(perm)
        self.sign.copy_(torch.sign(diag))
        return (torch.tril(lower, -1).float(), torch.triu(upper, 1).float(), torch.log(diag.abs()).float())


def add_lu(model: WaveGlow) -> None:
    """Train every flow's 1x1 convolution through :class:`LUWeight`, starting from its current W."""
    for conv in model.convinv:
        assert isinstance(conv, Invertible1x1Conv)  # nn.ModuleList items are typed as Module
        # Its buffers (P, signs, masks) go where the weight is: a model already on the GPU got
        # CPU buffers here once, and every GPU run died in its first step.
        lu = LUWeight(conv.conv.weight.size(0)).to(conv.conv.weight.device)
        parametrize.register_parametrization(conv.conv, "weight", lu)


def has_lu(model: WaveGlow) -> bool:
    """Whether the model's 1x1 convolutions train through :class:`LUWeight`."""
    convs = [conv for conv in model.convinv if isinstance(conv, Invertible1x1Conv)]
    return any(parametrize.is_parametrized(conv.conv, "weight") for conv in convs)


def plain_state_dict(model: WaveGlow) -> dict[str, Tensor]:
    """The model's ``state_dict`` with every LU-parametrized 1x1 weight folded into a plain W."""
    state = model.state_dict()
    for k, conv in enumerate(model.convinv):
        assert isinstance(conv, Invertible1x1Conv)  # nn.ModuleList items are typed as Module
        if parametrize.is_parametrized(conv.conv, "weight"):
            prefix = f"convinv.{k}.conv.parametrizations.weight."
            state = {name: v for name, v in state.items() if not name.startswith(prefix)}
            state[f"convinv.{k}.conv.weight"] = conv.conv.weight.detach().clone()
    return state


def mixing_weight(model: WaveGlow, k: int) -> Tensor:
    """Flow ``k``'s invertible 1x1 convolution weight (c, c, 1), in float32."""
    conv = model.convinv[k]
    assert isinstance(conv, Invertible1x1Conv)  # nn.ModuleList items are typed as Module
    return conv.conv.weight.float()


def _lu(model: WaveGlow, k: int) -> tuple[LUWeight, Tensor, Tensor, Tensor] | None:
    """Flow ``k``'s :class:`LUWeight` and its trained ``(lower, upper, log_s)``; None for a plain W."""
    conv = model.convinv[k]
    assert isinstance(conv, Invertible1x1Conv)  # nn.ModuleList items are typed as Module
    if not parametrize.is_parametrized(conv.conv, "weight"):
        return None
    weight = cast(parametrize.ParametrizationList, conv.conv.parametrizations.weight)  # type: ignore[union-attr]
    originals = (weight.original0, weight.original1, weight.original2)
    return cast(LUWeight, weight[0]), *cast(tuple[Tensor, Tensor, Tensor], originals)


def mixing_inverse(model: WaveGlow, k: int) -> Tensor:
    """``W^-1`` (c, c) of flow ``k``'s 1x1 convolution, differentiable: triangular solves under LU."""
    lu = _lu(model, k)
    if lu is not None:
        return lu[0].inverse(*lu[1:])
    return cast(Tensor, torch.linalg.inv(mixing_weight(model, k).squeeze(-1)))


def mixing_logdet(model: WaveGlow, k: int) -> Tensor:
    """``log|det W|`` of flow ``k``'s 1x1 convolution: ``sum(log_s)`` under LU, else ``slogdet``."""
    lu = _lu(model, k)
    if lu is not None:
        return lu[3].sum()
    return cast(Tensor, torch.linalg.slogdet(mixing_weight(model, k).squeeze(-1))[1])


def zero_init_couplings(model: WaveGlow) -> None:
    """Start every flow as the identity (NVIDIA zeroes each WN's last convolution)."""
    with torch.no_grad():
        for wn in model.WN:
            assert isinstance(wn, WN) and wn.end.bias is not None  # nn.ModuleList items are typed as Module
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
        x = F.conv1d(x, mixing_weight(model, k))
        logdet_total = logdet_total + b * steps * mixing_logdet(model, k)
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


def inverse_flow(model: WaveGlow, noise: Tensor, mel: Tensor,
                 autocast: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
                 ) -> Tensor:
    """The inference direction (z -> audio), differentiable: what the runtime will play.

    The same arithmetic as :meth:`WaveGlow.infer`, except that each W^-1 is computed from
    the current weights (``infer`` uses a frozen copy) so gradients reach them, and the WN
    networks run under ``autocast`` like :func:`forward_flow`.
    """
    p = model.params
    with autocast():
        spect = model.condition(mel)
    audio = noise[:, p.n_group - p.n_remaining_channels :].float()
    taken = p.n_group - p.n_remaining_channels
    for k in reversed(range(p.n_flows)):
        n_half = audio.size(1) // 2
        a0, a1 = audio[:, :n_half], audio[:, n_half:]
        with autocast():
            out = model.WN[k](a0, spect)
        out = out.float()
        log_s, shift = out[:, n_half:], out[:, :n_half]
        a1 = (a1 - shift) * torch.exp(-log_s)
        audio = F.conv1d(torch.cat((a0, a1), 1), mixing_inverse(model, k)[:, :, None])
        if k % p.n_early_every == 0 and k > 0:
            audio = torch.cat((noise[:, taken - p.n_early_size : taken].float(), audio), 1)
            taken -= p.n_early_size
    return audio.permute(0, 2, 1).reshape(audio.size(0), -1)


STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
"""(FFT size = window, hop) of the multi-resolution spectral loss."""


def spectral_loss(fake: Tensor, real: Tensor, resolutions: tuple[tuple[int, int], ...] = STFT_RESOLUTIONS) -> Tensor:
    """Multi-resolution STFT loss: spectral convergence + L1 of log magnitudes, averaged.

    Why: the likelihood alone teaches WaveGlow slowly to put energy at the harmonics; a
    loss on what the inference direction actually produces says directly that its spectrum
    must match the teacher's. Magnitudes only, so the phase the noise picks is free.
    """
    total = fake.new_zeros((), dtype=torch.float32)
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=fake.device)
        mags = [torch.stft(x.float(), n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-7)
                for x in (fake, real)]
        convergence = torch.linalg.norm(mags[1] - mags[0]) / torch.linalg.norm(mags[1])
        log_l1 = (mags[1].log() - mags[0].log()).abs().mean()
        total = total + convergence + log_l1
    return total / len(resolutions)
