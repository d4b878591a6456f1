"""WaveGlow's whole training step (forward, backward, clipping, AdamW) as one CUDA graph.

Why: WaveGlow's step is thousands of small kernels with fixed shapes (a batch of segments of
``--segment-frames``). On the H200 the ``frame`` preset ran about 14 steps/s, 70 ms a step,
for about 25 GFLOP: the GPU waited on Python and kernel launches, as Tacotron 2's decoder
loop does. Fixed shapes make this the simple case of PyTorch's whole-network capture: the
batch is copied into static input tensors and one graph replays the step.

What a graph needs of the step (train_waveglow.py sets it up so):

- the 1x1 convolutions LU-parametrized (``--inv-conv lu``): ``log|det W|`` is then a sum and
  ``W^-1`` (for the STFT loss) two triangular solves, with no factorization in the step,
  which the solvers may not run under capture;
- AdamW ``capturable`` with a tensor learning rate, which :func:`training.loop.set_lr` fills
  in place, so the schedule still applies on every replay;
- no fp16 loss scaling (its checks synchronize with the host): the step then runs eagerly;
- gradients allocated by the capture itself (``set_to_none`` before it, never after): each
  replay overwrites them, and the optimizer step inside the graph reads them.

The warm-up before the capture runs ``WARMUP`` real steps on the first batch, on a side
stream (cuBLAS and cuDNN initialize lazily; AdamW makes its state). A capture that fails
raises :class:`training.loop.CaptureFailed`, and the trainer restarts itself eagerly.
``python -m training.waveglow_graph`` checks, on the GPU at hand, that graphed steps train
a small model exactly as eager ones do (training/stretch.sh runs it first).
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import Tensor

from rtvoice.export.waveglow import WaveGlow, WaveGlowParams
from training.loop import CaptureFailed, set_lr
from training.waveglow_flow import add_lu, flow_loss, forward_flow, inverse_flow, spectral_loss, zero_init_couplings

WARMUP = 3
"""Real steps before the capture, on the first batch, on a side stream."""

StepBody = Callable[[Tensor, Tensor], dict[str, Tensor]]
"""(audio, mel) -> the step's losses and gradient norm, after its optimizer step."""


class GraphedStep:
    """A training step captured once and replayed on each new batch.

    ``body`` does the whole step but zeroing gradients; ``zero_grad`` sets them to None.
    """

    def __init__(self, body: StepBody, audio: Tensor, mel: Tensor, zero_grad: Callable[[], None]) -> None:
        self.audio, self.mel = audio.clone(), mel.clone()  # the static inputs every replay reads
        try:
            if audio.device.type != "cuda":
                raise RuntimeError(f"the batch is on {audio.device.type}, not a CUDA device")
            side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP):
                    zero_grad()
                    body(self.audio, self.mel)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            zero_grad()  # the capture allocates the gradients it then owns
            with torch.cuda.graph(self.graph):
                self.out = body(self.audio, self.mel)
            torch.cuda.synchronize()
        except Exception as exc:
            raise CaptureFailed(f"{type(exc).__name__}: {exc}") from exc

    def __call__(self, audio: Tensor, mel: Tensor) -> dict[str, Tensor]:
        """One training step on this batch. The outputs are the graph's own: read them before the next."""
        self.audio.copy_(audio)
        self.mel.copy_(mel)
        self.graph.replay()
        return self.out


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, graphed: bool) -> torch.optim.AdamW:
    """AdamW as training uses it; ``graphed``: capturable, with a tensor learning rate on the device."""
    device = next(model.parameters()).device
    if not graphed:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=device.type == "cuda")
    return torch.optim.AdamW(model.parameters(), lr=torch.tensor(lr, device=device), weight_decay=weight_decay,
                             fused=True, capturable=True)


def tensor_lr(opt: torch.optim.Optimizer) -> None:
    """Make each group's learning rate a device tensor again (loading a state dict replaces it)."""
    for group in opt.param_groups:
        params = group["params"]
        group["lr"] = torch.tensor(float(group["lr"]), device=params[0].device)


def training_step(model: WaveGlow, opt: torch.optim.Optimizer, *, sigma: float, clip: float,
                  scaler: torch.amp.GradScaler | None = None,
                  autocast: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
                  stft: Callable[[Tensor, Tensor], Tensor] | None = None, stft_weight: float = 0.0) -> StepBody:
    """The step train_waveglow.py runs, eagerly or as :class:`GraphedStep`'s body.

    The likelihood, plus ``stft_weight`` times ``stft(audio, mel)`` if given,
    backward, gradient clipping and the optimizer step. Gradients must be None before it
    (eagerly) or the capture's own (graphed).
    """
    scaler = scaler or torch.amp.GradScaler(enabled=False)

    def body(audio: Tensor, mel: Tensor) -> dict[str, Tensor]:
        nll = flow_loss(*forward_flow(model, audio, mel, autocast), sigma)
        parts = {"loss": nll}
        loss = nll
        if stft is not None:
            parts["stft"] = stft(audio, mel)
            loss = nll + stft_weight * parts["stft"]
        scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(opt)
        scaler.update()
        return {k: v.detach() for k, v in parts.items()} | {"grad_norm": grad_norm}

    return body


def compare_with_eager(device: torch.device, steps: int = 4) -> float:
    """The largest relative difference of the weights after ``steps`` graphed and eager steps.

    Two copies of a small frame-rate WaveGlow (LU, fp32, no dither) train on the same batches,
    with the STFT loss on the inference direction (fixed noise, so both sides match), as
    ``--stft-weight`` trains; the graphed copy's first batch is its warm-up, so the eager copy
    repeats that batch as often.
    """
    torch.manual_seed(0)
    params = WaveGlowParams(n_flows=4, n_group=256, n_early_every=2, n_early_size=32, n_layers=2, kernel_size=3,
                            n_channels=32, upsample_kernel=0)
    eager_model = WaveGlow(params).to(device)
    zero_init_couplings(eager_model)
    with torch.no_grad():  # the couplings must not start as the identity, or their gradients vanish
        for p in eager_model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    add_lu(eager_model)
    graph_model = copy.deepcopy(eager_model)
    g = torch.Generator(device="cpu").manual_seed(1)
    batches = [(0.1 * torch.randn(4, 16 * 256, generator=g).to(device), torch.randn(4, 80, 16, generator=g).to(device))
               for _ in range(steps)]

    noise = 0.6 * torch.randn(2, 256, 16, generator=g).to(device)

    def stft_of(model: WaveGlow) -> Callable[[Tensor, Tensor], Tensor]:
        return lambda audio, mel: spectral_loss(inverse_flow(model, noise, mel[:2]), audio[:2])

    eager_opt = make_optimizer(eager_model, 1e-3, 1e-6, graphed=True)  # the same AdamW arithmetic, run eagerly
    eager = training_step(eager_model, eager_opt, sigma=1.0, clip=5.0, stft=stft_of(eager_model), stft_weight=0.1)
    for n, (audio, mel) in enumerate([batches[0]] * WARMUP + batches[1:]):
        if n == WARMUP:
            set_lr(eager_opt, 5e-4)  # the schedule moves after the warm-up
        eager_model.zero_grad(set_to_none=True)
        eager(audio, mel)

    graph_opt = make_optimizer(graph_model, 1e-3, 1e-6, graphed=True)
    graphed = GraphedStep(training_step(graph_model, graph_opt, sigma=1.0, clip=5.0, stft=stft_of(graph_model),
                                        stft_weight=0.1), *batches[0],
                          lambda: graph_model.zero_grad(set_to_none=True))
    set_lr(graph_opt, 5e-4)  # filled in place: the replays must see it
    for audio, mel in batches[1:]:
        graphed(audio, mel)
    worst = 0.0
    for (name, e), (_, gr) in zip(eager_model.named_parameters(), graph_model.named_parameters(), strict=True):
        worst = max(worst, float((gr - e).abs().max() / (e.abs().max() + 1e-6)))
        if not torch.isfinite(gr).all():
            raise RuntimeError(f"{name}: not finite after graphed steps")
    return worst


def main() -> int:
    """Exit 0 when graphed WaveGlow steps train as eager ones on this GPU."""
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        worst = compare_with_eager(torch.device("cuda"))
    except CaptureFailed as exc:
        print(f"CUDA-graph WaveGlow step: the capture failed ({exc})")
        return 1
    ok = worst < 1e-3
    print(f"CUDA-graph WaveGlow step against eager: largest relative weight difference {worst:.2e} "
          f"({'same' if ok else 'DIFFERENT'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
