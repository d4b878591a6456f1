"""WaveGlow in PyTorch, with the parameter names and shapes of NVIDIA's NGC checkpoints.

Build-time only (torch). Convolutions are plain here; the checkpoint's weight-norm pairs
(``weight_g``/``weight_v``) are folded into ``weight`` by :mod:`rtvoice.export.checkpoint`.
The noise WaveGlow samples from is an explicit input (``noise``: (B, n_group, T/n_group),
already multiplied by sigma), laid out so that the channels consumed first are the last
ones: that makes the noise addressable by absolute sample position for streaming.

One variant beyond NVIDIA's: ``upsample_kernel = 0`` with ``n_group == hop_length`` groups one
mel frame's samples into the channels (SqueezeWave's layout, Zhai et al. 2020), so the WN
networks run at frame rate and condition on the mel itself, with no upsampler. Why: a WN step
then covers 256 samples instead of 8, which makes a small vocoder far cheaper per second of
audio (in training and at run time), and every sample sees the mel frames around it directly.
The graphs' inputs and outputs are unchanged, so the runtime runs it like any WaveGlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class WaveGlowParams:
    """Hyper-parameters, named as in the checkpoint's ``config`` (``WN_config`` flattened)."""

    n_mel_channels: int = 80
    n_flows: int = 12
    n_group: int = 8
    n_early_every: int = 4
    n_early_size: int = 2
    n_layers: int = 8
    kernel_size: int = 3
    n_channels: int = 256
    upsample_kernel: int = 1024
    """0: no upsampler, the WN networks condition on the mel at frame rate (needs n_group == hop_length)."""
    hop_length: int = 256

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WaveGlowParams:
        flat = {**config, **config.get("WN_config", {})}
        return cls(**{k: flat[k] for k in cls.__dataclass_fields__ if k in flat})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def flow_channels(self, k: int) -> int:
        """Audio channels entering flow ``k`` (early outputs shrink later flows)."""
        return self.n_group - self.n_early_size * (k // self.n_early_every)

    @property
    def n_remaining_channels(self) -> int:
        return self.flow_channels(self.n_flows - 1)

    @property
    def frame_rate(self) -> bool:
        """Whether the WN networks run at frame rate on the mel itself (no upsampler)."""
        return self.upsample_kernel == 0

    @property
    def cond_channels(self) -> int:
        """Channels of the conditioning each WN layer reads."""
        return self.n_mel_channels if self.frame_rate else self.n_mel_channels * self.n_group


class WN(nn.Module):
    """The WaveNet-like affine coupling network of one flow."""

    def __init__(self, n_in: int, p: WaveGlowParams) -> None:
        super().__init__()
        c = p.n_channels
        self.n_layers = p.n_layers
        self.n_channels = c
        self.start = nn.Conv1d(n_in, c, 1)
        self.end = nn.Conv1d(c, 2 * n_in, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.cond_layers = nn.ModuleList()
        for i in range(p.n_layers):
            d = 2**i
            pad = (p.kernel_size * d - d) // 2
            self.in_layers.append(nn.Conv1d(c, 2 * c, p.kernel_size, dilation=d, padding=pad))
            self.cond_layers.append(nn.Conv1d(p.cond_channels, 2 * c, 1))
            self.res_skip_layers.append(nn.Conv1d(c, 2 * c if i < p.n_layers - 1 else c, 1))

    def forward(self, audio: Tensor, spect: Tensor) -> Tensor:
        audio = self.start(audio)
        output = torch.zeros_like(audio)
        c = self.n_channels
        for i in range(self.n_layers):
            acts = self.in_layers[i](audio) + self.cond_layers[i](spect)
            acts = torch.tanh(acts[:, :c]) * torch.sigmoid(acts[:, c:])
            res_skip = self.res_skip_layers[i](acts)
            if i < self.n_layers - 1:
                audio = audio + res_skip[:, :c]
                output = output + res_skip[:, c:]
            else:
                output = output + res_skip
        end: Tensor = self.end(output)
        return end


class Invertible1x1Conv(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c, c, 1, bias=False)
        # A random orthogonal start, as the original training does.
        w = torch.linalg.qr(torch.randn(c, c))[0]
        if torch.det(w) < 0:
            w[:, 0] = -w[:, 0]
        self.conv.weight.data = w[:, :, None]
        self.frozen_inverse: Tensor | None = None

    def freeze_inverse(self) -> None:
        """Compute W^-1 once (float64) and hold it as a plain tensor.

        An exported graph then carries it as a constant, because ONNX has no matrix-inverse
        operator.
        """
        w = self.conv.weight.detach().squeeze(2).double()
        self.frozen_inverse = torch.linalg.inv(w).float()[:, :, None].contiguous()

    def inverse(self, z: Tensor) -> Tensor:
        if self.frozen_inverse is None:
            self.freeze_inverse()
        assert self.frozen_inverse is not None
        return torch.nn.functional.conv1d(z, self.frozen_inverse.to(z.dtype))


class WaveGlow(nn.Module):
    def __init__(self, p: WaveGlowParams) -> None:
        super().__init__()
        self.params = p
        if p.frame_rate and p.n_group != p.hop_length:
            raise ValueError(f"WaveGlow without an upsampler needs n_group == hop_length ({p.hop_length}), "
                             f"not {p.n_group}")
        self.upsample = None if p.frame_rate else nn.ConvTranspose1d(
            p.n_mel_channels, p.n_mel_channels, p.upsample_kernel, stride=p.hop_length)
        self.WN = nn.ModuleList()
        self.convinv = nn.ModuleList()
        for k in range(p.n_flows):
            c = p.flow_channels(k)
            self.convinv.append(Invertible1x1Conv(c))
            self.WN.append(WN(c // 2, p))

    def freeze_inverses(self) -> None:
        """Freeze every flow's W^-1 (see :meth:`Invertible1x1Conv.freeze_inverse`), for export or timing."""
        for conv in self.convinv:
            assert isinstance(conv, Invertible1x1Conv)  # nn.ModuleList items are typed as Module
            conv.freeze_inverse()

    def condition(self, mel: Tensor) -> Tensor:
        """Mel (B, n_mel, T) -> conditioning (B, cond_channels, T*hop/n_group)."""
        p = self.params
        if self.upsample is None:
            return mel  # frame rate: one WN step per mel frame
        spect: Tensor = self.upsample(mel)
        spect = spect[:, :, : mel.size(2) * p.hop_length]
        b, m, t = spect.shape
        spect = spect.view(b, m, t // p.n_group, p.n_group).permute(0, 1, 3, 2)
        return spect.reshape(b, m * p.n_group, t // p.n_group)

    def infer(self, mel: Tensor, noise: Tensor) -> Tensor:
        """Mel (B, n_mel, T) and noise (B, n_group, T*hop/n_group) -> audio (B, T*hop)."""
        p = self.params
        spect = self.condition(mel)
        audio = noise[:, p.n_group - p.n_remaining_channels :]
        taken = p.n_group - p.n_remaining_channels
        for k in reversed(range(p.n_flows)):
            n_half = audio.size(1) // 2
            a0, a1 = audio[:, :n_half], audio[:, n_half:]
            out = self.WN[k](a0, spect)
            s, b = out[:, n_half:], out[:, :n_half]
            a1 = (a1 - b) * torch.exp(-s)
            conv = self.convinv[k]
            assert isinstance(conv, Invertible1x1Conv)  # nn.ModuleList items are typed as Module
            audio = conv.inverse(torch.cat((a0, a1), 1))
            if k % p.n_early_every == 0 and k > 0:
                audio = torch.cat((noise[:, taken - p.n_early_size : taken], audio), 1)
                taken -= p.n_early_size
        return audio.permute(0, 2, 1).reshape(audio.size(0), -1)
