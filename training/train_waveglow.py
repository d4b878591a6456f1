"""Train rtvoice's default WaveGlow on the espeak-ng audio and its ground-truth mels.

    python -m training.train_waveglow --minutes 8 --resume

trains on random segments of ``--segment-frames`` mel frames (64 frames = 16384 samples),
taken at frame boundaries from whole utterances, so each segment's mel has its true context.
Checkpoints go to ``--out`` (training/checkpoints/): ``waveglow.pt`` (NVIDIA's layout),
``waveglow.optimizer.pt``, ``waveglow_loss.png``, ``waveglow_spectrogram.png`` (a held-out
mel, vocoded, then analysed again) and ``waveglow.log``. Sizes and why: training/README.md.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtvoice.export.checkpoint import fold_weight_norm
from rtvoice.export.waveglow import WaveGlow, WaveGlowParams
from training import checkpoint, plots, warm_start
from training.data import DATA, CorpusFollower, Dataset
from training.loop import (
    CaptureFailed,
    History,
    LossWindow,
    Schedule,
    add_device_arguments,
    add_run_arguments,
    autocast,
    check_finite,
    grad_scaler,
    memory_note,
    restart_eagerly,
    restore_optimizer,
    set_lr,
    start_run,
)
from training.mel import LOG_FLOOR, MelSpectrogram
from training.profile_steps import StepProfiler
from training.waveglow_flow import (
    add_lu,
    add_weight_norm,
    flow_loss,
    forward_flow,
    from_nvidia_names,
    has_weight_norm,
    inverse_flow,
    plain_state_dict,
    spectral_loss,
    standardize_conditioning,
    to_nvidia_names,
    zero_init_couplings,
)
from training.waveglow_graph import WARMUP, GraphedStep, make_optimizer, tensor_lr, training_step

log = logging.getLogger("training.waveglow")

NAME = "waveglow"
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"

PRESETS = {
    # 2.8 M parameters, 11.3 MB of ONNX: see training/README.md for the budget.
    "default": WaveGlowParams(n_flows=6, n_group=8, n_early_every=3, n_early_size=2, n_layers=4, kernel_size=3,
                              n_channels=32, upsample_kernel=256),
    "tiny": WaveGlowParams(n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=2, kernel_size=3,
                           n_channels=16, upsample_kernel=256),
    # The natural voice (issue 22): the frame layout with half again the channels, for a teacher's
    # audio with breath and pitch detail. 128 channels cost 2.6 times the frame preset's CPU time
    # (training/eval/natural-sizes.json), more than the speed goal leaves. 3.4 M parameters.
    "natural": WaveGlowParams(n_flows=8, n_group=256, n_early_every=4, n_early_size=64, n_layers=4, kernel_size=3,
                              n_channels=96, upsample_kernel=0),
    # Frame-rate conditioning (rtvoice.export.waveglow): one WN step per mel frame, no upsampler.
    # 1.9 M parameters; 116x real time on one CPU thread, against 8x for "default".
    "frame": WaveGlowParams(n_flows=8, n_group=256, n_early_every=4, n_early_size=64, n_layers=4, kernel_size=3,
                            n_channels=64, upsample_kernel=0),
}


class Segments:
    """Random training segments cut on the device from the packed audio and mels."""

    def __init__(self, data: Dataset, items: np.ndarray, frames: int, hop: int, device: torch.device) -> None:
        self.audio = torch.from_numpy(data.audio).to(device)
        self.mel = torch.from_numpy(data.mel).to(device)
        self.items = items
        self.mel_len = data.mel_lengths()[items]
        self.audio_len = np.diff(data.audio_off)[items]
        self.mel_off, self.audio_off = data.mel_off[items], data.audio_off[items]
        self.weights = self.mel_len / self.mel_len.sum()  # every frame equally likely
        self.frames, self.hop, self.device = frames, hop, device

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio (B, frames * hop) float in [-1, 1), mel (B, n_mel, frames)); zero / silence padded."""
        pick = rng.choice(len(self.items), size=batch, p=self.weights)
        start = (rng.random(batch) * np.maximum(1, self.mel_len[pick] - self.frames + 1)).astype(np.int64)
        return self.cut(pick, start)

    def cut(self, pick: np.ndarray, start: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        f, hop, dev = self.frames, self.hop, self.device
        # Index grids are built on the device from B starts: a host-built grid of B x f x hop int64
        # (16 MiB at batch 128) would cross the bus every iteration.
        start_t = torch.from_numpy(start).to(dev)
        frame = start_t[:, None] + torch.arange(f, device=dev)[None, :]
        mel_ok = frame < torch.from_numpy(self.mel_len[pick][:, None]).to(dev)
        mel_idx = torch.from_numpy(self.mel_off[pick][:, None]).to(dev) + frame
        mel = self.mel[torch.where(mel_ok, mel_idx, 0)].float()
        mel = torch.where(mel_ok[..., None], mel, math.log(LOG_FLOOR)).transpose(1, 2)
        sample = start_t[:, None] * hop + torch.arange(f * hop, device=dev)[None, :]
        audio_ok = sample < torch.from_numpy(self.audio_len[pick][:, None]).to(dev)
        audio_idx = torch.from_numpy(self.audio_off[pick][:, None]).to(dev) + sample
        audio = torch.where(audio_ok, self.audio[torch.where(audio_ok, audio_idx, 0)].float() / 32768.0, 0.0)
        return audio, mel


def dequantize(audio: torch.Tensor, lsb: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add uniform noise of ``lsb`` int16 steps (centred) to the audio.

    Why: the teacher's audio is int16, with stretches of exact digital silence. A density model on
    quantized values can gain likelihood without bound by collapsing onto them (its scales head
    for zero), which showed as sudden divergence. Uniform dequantization (one step wide, the
    standard remedy for flows on discrete data) gives every sample a true continuous density.
    """
    if lsb <= 0:
        return audio
    noise = torch.rand(audio.shape, device=audio.device, generator=generator) - 0.5
    return audio + noise * (lsb / 32768.0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train_waveglow", description=__doc__.split("\n\n")[0])
    add_run_arguments(p, list(PRESETS), DATA, CHECKPOINTS)
    p.add_argument("--only-preset", action="store_true",
                   help="resume only a checkpoint of --preset's sizes; over any other, start afresh (so a stretch "
                        "can switch architecture and pass the same flags on every call)")
    p.add_argument("--warm-start", type=Path, help="a run that starts afresh first copies every tensor of this file "
                   "whose name and shape fit (training/warm_start.py)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--segment-frames", type=int, default=64, help="mel frames per segment (x256 samples)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=500, help="iterations (repeated after a resume without optimizer)")
    p.add_argument("--decay-start", type=int, default=60000)
    p.add_argument("--decay-halflife", type=int, default=30000)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--grad-clip", type=float, default=5.0)
    p.add_argument("--weight-norm", choices=("on", "off"), default="off",
                   help="train the WN convolutions weight-normed, as NVIDIA does (see waveglow_flow.add_weight_norm; "
                        "off by default: it did worse side by side, training/README.md)")
    p.add_argument("--inv-conv", choices=("lu", "plain"), default="lu",
                   help="train the invertible 1x1 convolutions LU-parametrized, as Glow does (saved as NVIDIA's plain "
                        "W either way; see waveglow_flow.LUWeight), or plain, as NVIDIA does")
    p.add_argument("--cuda-graphs", choices=("auto", "on", "off"), default="off",
                   help="run the whole training step as one CUDA graph (auto: on a CUDA device, when the step "
                        "allows it); see waveglow_graph.py. Off by default: its self-check failed on the H200 "
                        "(weights 1.3e-1 apart from eager after one step), not yet understood")
    p.add_argument("--dither", type=float, default=1.0,
                   help="uniform dequantization noise, in int16 steps (0: none); see dequantize()")
    p.add_argument("--sigma", type=float, default=1.0, help="training sigma (NVIDIA: 1.0)")
    p.add_argument("--infer-sigma", type=float, default=0.6,
                   help="sigma of the inference direction: the check at each checkpoint and --stft-weight")
    p.add_argument("--stft-weight", type=float, default=0.0,
                   help="weight of a multi-resolution STFT loss on the inference direction's audio "
                        "(0: NVIDIA's likelihood alone)")
    p.add_argument("--stft-items", type=int, default=16, help="segments of each batch that the STFT loss vocodes")
    add_device_arguments(p)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    return p


def train(args: argparse.Namespace, argv: list[str]) -> int:
    """Train (or resume) for ``args.minutes``; ``argv`` is kept to restart without graphs."""
    device, precision, budget = start_run(args, NAME)
    torch.backends.cudnn.benchmark = True  # fixed segment shapes
    data = Dataset.load(args.data)
    log.info("data: %s", data.describe())

    saved, opt_state = checkpoint.load_resume(args.out, NAME, args.resume)
    if saved is not None and args.only_preset and WaveGlowParams.from_config(saved["config"]) != PRESETS[args.preset]:
        log.info("%s holds a run of other sizes; --only-preset: starting afresh with preset %r",
                 args.out / f"{NAME}.pt", args.preset)
        saved, opt_state = None, None
    if saved is not None:
        params = WaveGlowParams.from_config(saved["config"])
        iteration, history = saved["iteration"], History(saved.get("history"))
        log.info("resuming %s at iteration %d%s", args.out / f"{NAME}.pt", iteration,
                 "" if opt_state is not None else " (fresh optimizer: warming up again)")
    else:
        if args.resume:
            log.info("no checkpoint in %s: starting afresh", args.out)
        params, iteration, history = PRESETS[args.preset], 0, History()
    model = WaveGlow(params).to(device)
    normed = args.weight_norm == "on"
    keeps_g_v = saved is not None and normed and has_weight_norm(saved["state_dict"])
    if saved is None:
        zero_init_couplings(model)
        if params.frame_rate:
            sample = torch.from_numpy(data.mel[:: max(1, len(data.mel) // 200_000)].astype(np.float32))
            standardize_conditioning(model, sample.mean(0).to(device), float(sample.std()))
            log.info("conditioning standardized for log mel of mean %.2f, std %.2f", float(sample.mean()),
                     float(sample.std()))
        if args.warm_start is not None:
            warm_start.apply(model, args.warm_start)
    elif not keeps_g_v:  # plain weights (a weight-normed checkpoint folds exactly into them)
        model.load_state_dict(fold_weight_norm(saved["state_dict"]))
    if normed:
        add_weight_norm(model)
    if keeps_g_v:
        model.load_state_dict(from_nvidia_names(saved["state_dict"]))
    if args.inv_conv == "lu":
        add_lu(model)
    saved_inv_conv = saved["config"].get("training", {}).get("inv_conv", "plain") if saved is not None else None
    if saved is not None and opt_state is not None and (has_weight_norm(saved["state_dict"]) != normed
                                                        or saved_inv_conv != args.inv_conv):
        log.info("weight norm %s, 1x1 convolutions %s (the checkpoint's: %s): the parameters changed form, so the "
                 "optimizer starts afresh (warming up again)", args.weight_norm, args.inv_conv, saved_inv_conv)
        opt_state = None
    graphed = args.cuda_graphs == "on" or (args.cuda_graphs == "auto" and device.type == "cuda")
    why_not = [why for why, bad in (("--precision fp16", precision == "fp16"),
                                    ("--inv-conv plain", args.inv_conv != "lu")) if bad]
    if graphed and why_not:
        log.info("CUDA graphs: off (the graphed step has no %s); the step runs eagerly", ", ".join(why_not))
        graphed = False
    n_params = sum(p.numel() for p in model.parameters())
    log.info("WaveGlow: %.2f M parameters (%.1f MB float32), %s on %s; %s", n_params / 1e6, n_params * 4e-6,
             precision, device, params)
    capturable = graphed and device.type == "cuda"  # elsewhere the capture fails, and the run restarts eagerly
    opt = make_optimizer(model, args.lr, args.weight_decay, graphed=capturable)
    warm_from = restore_optimizer(opt, opt_state, iteration)
    if opt_state is not None and capturable:
        tensor_lr(opt)  # loading put the saved float back
    schedule = Schedule(args.lr, args.warmup, args.decay_start, args.decay_halflife)
    ctx, scaler = autocast(device, precision), grad_scaler(device, precision)
    train_set = Segments(data, np.flatnonzero(~data.heldout), args.segment_frames, params.hop_length, device)
    val_items = np.flatnonzero(data.heldout)
    val_set = Segments(data, val_items, args.segment_frames, params.hop_length, device)
    follower, train_data = CorpusFollower(args.data, args.follow_data), data  # validation keeps the first rows
    mel_fn = MelSpectrogram().to(device)
    config = {**params.to_dict(), "WN_config": {"n_layers": params.n_layers, "kernel_size": params.kernel_size,
                                                 "n_channels": params.n_channels},
              "training": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}

    def save() -> None:
        check_finite(model)
        model.eval()
        val = validate(model, val_set, data, val_items, mel_fn, args, ctx)
        history.add(iteration, {f"val/{k}": v for k, v in val.items() if k != "images"})
        written = checkpoint.save_training(
            args.out, NAME, {"state_dict": to_nvidia_names(plain_state_dict(model)), "config": config,
                             "iteration": iteration, "epoch": 0, "history": history.to_dict()},
            optimizer_state(opt), args.optimizer_state)
        plots.loss_curves(args.out / f"{NAME}_loss.png", history.to_dict(), "WaveGlow")
        if val["images"]:
            plots.panels(args.out / f"{NAME}_spectrogram.png", val["images"], f"WaveGlow, iteration {iteration}")
        log.info("checkpoint at iteration %d: val %s; %s", iteration,
                 " ".join(f"{k} {v:.4f}" for k, v in val.items() if k != "images"), checkpoint.sizes(written))
        budget.checkpointed()
        model.train()

    model.train()
    rng = np.random.default_rng(args.seed + iteration)
    window = LossWindow()
    profiler = StepProfiler(args.profile_steps, device)
    first = iteration  # every run trains at least one iteration, however short its budget
    step_ctx = autocast(device, precision, cache=False) if graphed else ctx  # a graph cannot use autocast's cache

    def stft(audio: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        n = min(args.stft_items, audio.size(0))
        noise = torch.randn(n, params.n_group, audio.size(1) // params.n_group, device=device) * args.infer_sigma
        return spectral_loss(inverse_flow(model, noise, mel[:n], step_ctx), audio[:n])

    body = training_step(model, opt, sigma=args.sigma, clip=args.grad_clip, scaler=scaler, autocast=step_ctx,
                         stft=stft if args.stft_weight > 0 else None, stft_weight=args.stft_weight)
    graph: GraphedStep | None = None
    while iteration == first or not budget.over():
        grown = follower.poll(train_data)
        if grown is not None:
            train_data = grown
            train_set = Segments(grown, np.flatnonzero(~grown.heldout), args.segment_frames, params.hop_length,
                                 device)
            if val_items.size == 0:  # the first shards held no held-out row: validate on the new ones
                data, val_items = grown, np.flatnonzero(grown.heldout)
                val_set = Segments(data, val_items, args.segment_frames, params.hop_length, device)
        audio, mel = train_set.sample(args.batch_size, rng)
        audio = dequantize(audio, args.dither)
        lr = schedule.at(iteration, warm_from)
        set_lr(opt, lr)
        if graphed and graph is None:
            try:
                graph = GraphedStep(body, audio, mel, lambda: opt.zero_grad(set_to_none=True))
            except CaptureFailed as exc:
                restart_eagerly("training.train_waveglow", argv, budget, "the training step", exc)
            iteration += WARMUP  # the capture's warm-up trained on this batch
            log.info("captured the training step in a CUDA graph (batch %d x %d samples), after %d warm-up steps%s",
                     audio.size(0), audio.size(1), WARMUP, memory_note(device))
        if graph is not None:
            parts = graph(audio, mel)
        else:
            opt.zero_grad(set_to_none=True)
            parts = body(audio, mel)
        iteration += 1
        profiler.step()
        window.add(parts)
        if iteration % args.log_every == 0:
            w = window.take()
            history.add(iteration, {f"train/{k}": v for k, v in w.means.items() if k != "grad_norm"})
            stft_note = f" stft {w.means['stft']:.4f}" if "stft" in w.means else ""
            log.info("it %d lr %.2e | loss %.4f%s grad_norm %.3f | %.1f it/s, %.0f kS/s%s", iteration, lr,
                     w.means["loss"], stft_note, w.means["grad_norm"], w.steps / w.seconds,
                     w.steps * audio.numel() / w.seconds / 1e3, memory_note(device))
            if not math.isfinite(w.means["loss"]):
                log.error("loss is not finite: stopping without saving. Hint: lower --lr or use --precision fp32.")
                return 1
        if budget.checkpoint_due():
            save()
    profiler.close()
    save()
    log.info("done: %d iterations, %.1f min", iteration, budget.elapsed() / 60)
    return 0


def optimizer_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state dict with plain float learning rates (a graphed run keeps them as device tensors)."""
    state = opt.state_dict()
    for group in state["param_groups"]:
        group["lr"] = float(group["lr"])
    return state


@torch.no_grad()
def validate(model: WaveGlow, val_set: Segments, data: Dataset, items: np.ndarray, mel_fn: MelSpectrogram,
             args: argparse.Namespace, ctx: object) -> dict:
    """Held-out likelihood on fixed segments, and one held-out utterance vocoded.

    The vocoded audio is analysed again: the L1 distance of the two log mels (``mel_l1``)
    tracks what a listener hears.
    """
    if len(items) == 0:
        return {"images": []}
    rng = np.random.default_rng(1234)  # the same segments every time
    losses = []
    for _ in range(4):
        audio, mel = val_set.sample(args.batch_size, rng)
        audio = dequantize(audio, args.dither, torch.Generator(device=audio.device).manual_seed(len(losses)))
        losses.append(float(flow_loss(*forward_flow(model, audio, mel, ctx), args.sigma)))  # type: ignore[arg-type]
    item = int(items[0])
    mel = torch.from_numpy(data.mel[data.mel_off[item] : data.mel_off[item + 1]]).to(val_set.device)
    mel = mel.float().T[None, :, :400]
    p = model.params
    for conv in model.convinv:
        conv.freeze_inverse()  # the weights moved since the last check
    generator = torch.Generator(device=mel.device).manual_seed(0)
    noise = torch.randn(1, p.n_group, mel.size(2) * p.hop_length // p.n_group, device=mel.device,
                        generator=generator) * args.infer_sigma
    audio = model.infer(mel, noise).clamp(-1, 1)
    again = mel_fn(audio)[:, :, : mel.size(2)]
    l1 = float((again - mel).abs().mean())
    images = [(f"held-out corpus line {data.index[item]}: teacher mel", mel[0].cpu().numpy(), "mel"),
              (f"mel of the WaveGlow audio (sigma {args.infer_sigma}), L1 {l1:.3f}", again[0].cpu().numpy(), "mel")]
    return {"loss": float(np.mean(losses)), "mel_l1": l1, "images": images}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return train(parser().parse_args(argv), argv)


if __name__ == "__main__":
    sys.exit(main())
