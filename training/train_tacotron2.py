"""Train rtvoice's default Tacotron 2 on the espeak-ng dataset, in time-boxed resumable runs.

    python -m training.train_tacotron2 --minutes 8 --resume

trains for 8 minutes of wall time (less a reserve for the last save), checkpointing every
``--checkpoint-minutes`` into ``--out`` (training/checkpoints/): ``tacotron2.pt`` (NVIDIA's
layout), ``tacotron2.optimizer.pt``, ``tacotron2_alignment.png``, ``tacotron2_loss.png`` and
``tacotron2.log``. ``--resume`` continues from the checkpoint there (or starts afresh when
there is none). Sizes and why: training/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from rtvoice.export.tacotron2 import Tacotron2, Tacotron2Params
from training import checkpoint, plots, warm_start
from training.data import DATA, CorpusFollower, Dataset, max_decoder_steps
from training.decoder_graphs import DecoderGraphs, graph_shapes
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
    shrink_batch,
    start_run,
)
from training.profile_steps import StepProfiler
from training.tacotron2_steps import (
    Batch,
    Dropouts,
    decoder_steps,
    free_run,
    losses,
    prenet_masks,
    teacher_forced,
)

log = logging.getLogger("training.tacotron2")

NAME = "tacotron2"
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"

PRESETS = {
    # 3.2 M parameters, 12.9 MB of ONNX: see training/README.md for the budget.
    "default": Tacotron2Params(symbols_embedding_dim=128, encoder_embedding_dim=256, attention_rnn_dim=256,
                               attention_dim=128, decoder_rnn_dim=256, prenet_dim=128, postnet_embedding_dim=128),
    # The natural voice (issue 22): a teacher with real prosody needs bigger RNNs and postnet. The
    # encoder keeps the default's sizes, so a warm start (training/warm_start.py) reuses it whole.
    # The RNNs stop at 384/512: a decoder step's CPU time grows with them (512/768 cost 4.5 times
    # the default's step, 384/512 2.1 times; training/eval/natural-decoder-sweep.json), and the
    # voice must stay faster than its teacher on 2 cores. 6.6 M parameters at r = 3.
    "natural": Tacotron2Params(symbols_embedding_dim=128, encoder_embedding_dim=256, attention_rnn_dim=384,
                               attention_dim=128, decoder_rnn_dim=512, prenet_dim=256, postnet_embedding_dim=256),
    # For checking the recipe end to end on a CPU in a minute.
    "tiny": Tacotron2Params(symbols_embedding_dim=32, encoder_embedding_dim=32, attention_rnn_dim=64,
                            attention_dim=16, attention_location_n_filters=4, attention_location_kernel_size=7,
                            decoder_rnn_dim=64, prenet_dim=32, postnet_embedding_dim=32),
}


class GpuData:
    """The dataset's mels and ids as device tensors; batches are cut and padded on the device."""

    def __init__(self, data: Dataset, device: torch.device) -> None:
        self.mel = torch.from_numpy(data.mel).to(device)  # (frames, n_mel) float16
        self.ids = torch.from_numpy(data.ids.astype(np.int64)).to(device)
        self.mel_off, self.ids_off = data.mel_off, data.ids_off
        self.index = data.index  # corpus line of each item
        self.device = device

    def batch(self, items: np.ndarray) -> Batch:
        mels = [self.mel[self.mel_off[i] : self.mel_off[i + 1]] for i in items]
        ids = [self.ids[self.ids_off[i] : self.ids_off[i + 1]] for i in items]
        mel = torch.nn.utils.rnn.pad_sequence(mels, batch_first=True).float().transpose(1, 2)
        text = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True)
        return Batch(text, torch.tensor([len(i) for i in ids], device=self.device), mel,
                     torch.tensor([len(m) for m in mels], device=self.device))


def batches(items: np.ndarray, lengths: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar length: shuffle, sort within pools of 32 batches, cut, shuffle."""
    items = rng.permutation(items)
    pool = size * 32
    out: list[np.ndarray] = []
    for i in range(0, len(items), pool):
        chunk = items[i : i + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [chunk[j : j + size] for j in range(0, len(chunk), size)]
    rng.shuffle(out)  # type: ignore[arg-type]
    return out


def guide_scale(iteration: int, until: int) -> float:
    """The guided-attention loss's share at ``iteration``: whole until ``until``, then fading to 0.

    The diagonal prior helps while the alignment forms; once it has, it only pulls against
    the teacher's real timing (pauses, lengthened words). ``until`` 0 keeps it whole.
    """
    if until <= 0 or iteration <= until:
        return 1.0
    return max(0.0, 1.0 - (iteration - until) / until)


def convert_frames_per_step(state: dict[str, torch.Tensor], params: Tacotron2Params, r: int,
                            ) -> tuple[dict[str, torch.Tensor], Tacotron2Params]:
    """A checkpoint's weights for ``r`` frames per decoder step, and its params.

    Every weight is kept. The projection's and the gate's rows for frame ``j`` of a step start
    as copies of the checkpoint's rows for its frame ``min(j, r_old - 1)``: from r = 1, each
    frame of a group starts as the old next-frame prediction, and training pulls them apart.
    """
    old, n_mel = params.n_frames_per_step, params.n_mel_channels
    source = torch.tensor([min(j, old - 1) for j in range(r)])
    out = dict(state)
    for layer, rows in (("decoder.linear_projection.linear_layer", n_mel), ("decoder.gate_layer.linear_layer", 1)):
        for kind in ("weight", "bias"):
            t = state[f"{layer}.{kind}"]
            out[f"{layer}.{kind}"] = t.reshape(old, rows, *t.shape[1:])[source].reshape(r * rows, *t.shape[1:])
    return out, dataclasses.replace(params, n_frames_per_step=r)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train_tacotron2", description=__doc__.split("\n\n")[0])
    add_run_arguments(p, list(PRESETS), DATA, CHECKPOINTS)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=300, help="iterations (repeated after a resume without optimizer)")
    p.add_argument("--decay-start", type=int, default=10000, help="iteration the learning rate starts halving at")
    p.add_argument("--decay-halflife", type=int, default=5000)
    p.add_argument("--weight-decay", type=float, default=1e-6)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--gate-pos-weight", type=float, default=8.0)
    p.add_argument("--guide-weight", type=float, default=1.0, help="guided-attention loss weight")
    p.add_argument("--guide-sigma", type=float, default=0.2)
    p.add_argument("--frames-per-step", type=int, choices=(1, 2, 3, 4), metavar="R",
                   help="mel frames per decoder step, r (default: the checkpoint's on a resume, 1 for a new run). "
                        "A resume with another r converts the checkpoint (every weight kept, fresh optimizer) and "
                        "saves over it. Any r exports: the runtime decodes r frames per step")
    add_device_arguments(p)
    p.add_argument("--cuda-graphs", choices=("auto", "on", "off"), default="off",
                   help="capture the decoder loop in CUDA graphs (auto: on a CUDA device); see decoder_graphs.py. "
                        "Off by default: on the H200 the graphed loop ran 0.12 it/s at 130.6 GiB, eager 0.62-0.85 "
                        "at 22.6 GiB (batch 128)")
    p.add_argument("--graph-frames", type=int, default=128,
                   help="with CUDA graphs, batches are padded to a multiple of this many frames")
    p.add_argument("--graph-max-frames", type=int, default=768,
                   help="no graph for longer batches (they train eagerly): each captured shape holds its "
                        "activations for good, and the longest shapes cost the most memory for the fewest batches")
    p.add_argument("--val-items", type=int, default=64, help="held-out sentences scored at each checkpoint")
    p.add_argument("--rollback-ratio", type=float, default=1.5,
                   help="a checkpoint whose val mel is over this many times the last one's is not saved: training "
                        "goes back to the last checkpoint instead (0: always save)")
    p.add_argument("--warm-start", type=Path, help="a run that starts afresh first copies every tensor of this file "
                   "whose name and shape fit (training/warm_start.py)")
    p.add_argument("--guide-until", type=int, default=0,
                   help="iteration after which the guided-attention loss fades out (over as many iterations "
                        "again); 0 keeps --guide-weight for good")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    return p


def train(args: argparse.Namespace, argv: list[str]) -> int:
    """Train (or resume) for ``args.minutes``; ``argv`` is kept to restart without graphs."""
    device, precision, budget = start_run(args, NAME)
    data = Dataset.load(args.data, with_audio=False)
    log.info("data: %s", data.describe())

    saved, opt_state = checkpoint.load_resume(args.out, NAME, args.resume)
    converted = False  # the checkpoint had another r: its val mel is no baseline for a rollback
    if saved is not None:
        params = Tacotron2Params.from_config(saved["config"])
        iteration, epoch, history = saved["iteration"], saved["epoch"], History(saved.get("history"))
        if args.frames_per_step and args.frames_per_step != params.n_frames_per_step:
            log.info("converting the checkpoint from %d to %d frames per decoder step: every weight kept, the "
                     "projection's and the gate's rows copied per frame; the optimizer starts afresh",
                     params.n_frames_per_step, args.frames_per_step)
            saved["state_dict"], params = convert_frames_per_step(saved["state_dict"], params, args.frames_per_step)
            opt_state, converted = None, True
        log.info("resuming %s at iteration %d, epoch %d%s", args.out / f"{NAME}.pt", iteration, epoch,
                 "" if opt_state is not None else " (fresh optimizer: warming up again)")
    else:
        if args.resume:
            log.info("no checkpoint in %s: starting afresh", args.out)
        params = dataclasses.replace(PRESETS[args.preset], max_decoder_steps=max_decoder_steps(data),
                                     n_frames_per_step=args.frames_per_step or 1)
        iteration, epoch, history = 0, 0, History()
    model = Tacotron2(params).to(device)
    if saved is not None:
        model.load_state_dict(saved["state_dict"])
    elif args.warm_start is not None:
        warm_start.apply(model, args.warm_start)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("Tacotron 2: %.2f M parameters (%.1f MB float32), %s on %s; %s", n_params / 1e6, n_params * 4e-6,
             precision, device, params)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-6,
                            weight_decay=args.weight_decay, fused=device.type == "cuda")
    warm_from = restore_optimizer(opt, opt_state, iteration)
    schedule = Schedule(args.lr, args.warmup, args.decay_start, args.decay_halflife)
    ctx, scaler = autocast(device, precision), grad_scaler(device, precision)
    drop = Dropouts()
    gpu = GpuData(data, device)  # validation keeps the rows loaded first, however the training rows grow
    train_gpu = gpu
    train_items = np.flatnonzero(~data.heldout)
    val_items = np.flatnonzero(data.heldout)[: args.val_items]
    lengths = data.mel_lengths()
    graphs = None
    if params.n_frames_per_step > 1 and args.cuda_graphs != "off":
        # The graphs are captured and picked by frames, which r > 1 no longer equals in loop steps.
        if args.cuda_graphs == "on":
            raise SystemExit("--cuda-graphs on does not support --frames-per-step > 1 yet. Hint: --cuda-graphs off.")
        log.info("CUDA graphs off: %d frames per decoder step", params.n_frames_per_step)
    elif args.cuda_graphs == "on" or (args.cuda_graphs == "auto" and device.type == "cuda"):
        shapes = graph_shapes(lengths[train_items], data.ids_lengths()[train_items], args.graph_frames)
        shapes = [s for s in shapes if s.frames <= args.graph_max_frames]
        log.info("CUDA graphs: %.1f%% of the training sentences are longer than %d frames and train eagerly",
                 100 * float(np.mean(lengths[train_items] > args.graph_max_frames)), args.graph_max_frames)
        graphs = DecoderGraphs(model, drop, shapes, args.batch_size, autocast(device, precision, cache=False))
        try:
            graphs.capture()
        except CaptureFailed as exc:
            restart_eagerly("training.train_tacotron2", argv, budget, "the decoder loop", exc)
    if graphs is not None and args.follow_data > 0:
        log.info("--follow-data off: the CUDA graphs were captured for the shapes of the data loaded")
    follower = CorpusFollower(args.data, args.follow_data if graphs is None else 0.0)
    config = {**params.to_dict(), "training": {k: (str(v) if isinstance(v, Path) else v)
                                               for k, v in vars(args).items()}}

    def save() -> None:
        nonlocal iteration, epoch, history, warm_from, converted
        check_finite(model)
        model.eval()
        val = validate(model, gpu, val_items, drop, args, ctx)
        last = None if converted else history.last("val/mel")
        if (args.rollback_ratio > 0 and last is not None and "mel" in val and val["mel"] > args.rollback_ratio * last
                and checkpoint.exists(args.out / f"{NAME}.pt")):
            # A loss spike that training did not recover from: the H200 took a run from val
            # mel 0.31 to 1.12 in 60 iterations, and the next save would have overwritten the
            # good checkpoint. Go back to the one on disk instead and train on from there.
            good, good_opt = checkpoint.load_training(args.out, NAME)
            model.load_state_dict(good["state_dict"])
            if good_opt is not None:
                opt.load_state_dict(good_opt)
            else:
                opt.state.clear()
                warm_from = good["iteration"]
            log.warning("val mel %.4f at iteration %d is over %g times the last checkpoint's %.4f: not saved; "
                        "rolled back to iteration %d", val["mel"], iteration, args.rollback_ratio, last,
                        good["iteration"])
            iteration, epoch, history = good["iteration"], good["epoch"], History(good.get("history"))
            budget.checkpointed()
            model.train()
            return
        history.add(iteration, {f"val/{k}": v for k, v in val.items() if k != "images"})
        written = checkpoint.save_training(
            args.out, NAME, {"state_dict": model.state_dict(), "config": config, "iteration": iteration,
                             "epoch": epoch, "history": history.to_dict()}, opt.state_dict(), args.optimizer_state)
        plots.loss_curves(args.out / f"{NAME}_loss.png", history.to_dict(), "Tacotron 2")
        plots.panels(args.out / f"{NAME}_alignment.png", val["images"], f"Tacotron 2, iteration {iteration}")
        log.info("checkpoint at iteration %d: val %s; %s", iteration,
                 " ".join(f"{k} {v:.4f}" for k, v in val.items() if k != "images"), checkpoint.sizes(written))
        budget.checkpointed()
        converted = False
        model.train()

    model.train()
    rng = np.random.default_rng(args.seed + epoch)
    window = LossWindow()
    profiler = StepProfiler(args.profile_steps, device)
    frames_seen = 0
    first = iteration  # every run trains at least one iteration, however short its budget
    while iteration == first or not budget.over():
        for items in batches(train_items, lengths, args.batch_size, rng):
            if budget.over() and iteration > first:
                break
            batch = train_gpu.batch(items)
            if graphs is not None:
                batch = graphs.pad(batch)
            steps = decoder_steps(int(batch.mel.size(2)), params.n_frames_per_step)
            masks = prenet_masks(steps, len(items), params.prenet_dim, params.prenet_dropout, device)
            lr = schedule.at(iteration, warm_from)
            set_lr(opt, lr)
            try:
                with ctx():
                    out = teacher_forced(model, batch, masks, drop, graphs)
                parts = losses(out, batch, args.gate_pos_weight, args.guide_sigma)
                guide = args.guide_weight * guide_scale(iteration, args.guide_until)
                loss = parts["mel"] + parts["mel_postnet"] + parts["gate"] + guide * parts["guide"]
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
            except torch.OutOfMemoryError:
                if graphs is not None or len(items) == 1:
                    raise
                # A batch's memory grows with its longest sentence; a too-large --batch-size
                # costs one batch and a smaller size, not the GPU call.
                out = parts = loss = None  # type: ignore[assignment]
                opt.zero_grad(set_to_none=True)
                args.batch_size = shrink_batch(device, args.batch_size, len(items), int(batch.mel.size(2)))
                config["training"]["batch_size"] = args.batch_size
                break
            scaler.unscale_(opt)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            scaler.step(opt)
            scaler.update()
            iteration += 1
            profiler.step()
            frames_seen += int(batch.mel_lengths.sum())
            window.add({**parts, "total": loss, "grad_norm": grad_norm})
            if iteration % args.log_every == 0:
                w = window.take()
                history.add(iteration, {f"train/{k}": v for k, v in w.means.items() if k != "grad_norm"})
                log.info("it %d ep %d lr %.2e | %s | %.2f it/s, %.0f frames/s%s", iteration, epoch, lr,
                         " ".join(f"{k} {v:.4f}" for k, v in w.means.items()), w.steps / w.seconds,
                         frames_seen / w.seconds, memory_note(device))
                frames_seen = 0
            if budget.checkpoint_due():
                save()
        else:
            epoch += 1
            rng = np.random.default_rng(args.seed + epoch)
            grown = follower.poll(data)
            if grown is not None:
                data, train_gpu = grown, GpuData(grown, device)
                train_items, lengths = np.flatnonzero(~data.heldout), data.mel_lengths()
                if val_items.size == 0:  # the first shards held no held-out row: validate on the new ones
                    gpu, val_items = train_gpu, np.flatnonzero(data.heldout)[: args.val_items]
        # (a break for a smaller batch size draws new batches from where the epoch's rng stands)
    profiler.close()
    save()
    log.info("done: %d iterations, %d epochs, %.1f min", iteration, epoch, budget.elapsed() / 60)
    return 0


@torch.no_grad()
def validate(model: Tacotron2, gpu: GpuData, items: np.ndarray, drop: Dropouts, args: argparse.Namespace,
             ctx: object) -> dict:
    """Teacher-forced losses on held-out sentences, and free-running decodes of four of them.

    ``stop_within_20pct`` is the share of those four that stop at the gate within 20% of the
    teacher's length: the alignment's health.
    """
    p = model.params
    if len(items) == 0:
        return {"images": []}
    sums: dict[str, float] = {}
    for i in range(0, len(items), args.batch_size):
        chunk = items[i : i + args.batch_size]
        batch = gpu.batch(chunk)
        steps = decoder_steps(int(batch.mel.size(2)), p.n_frames_per_step)
        masks = prenet_masks(steps, len(chunk), p.prenet_dim, p.prenet_dropout, gpu.device)
        with ctx():  # type: ignore[operator]
            out = teacher_forced(model, batch, masks, drop)
        for k, v in losses(out, batch, args.gate_pos_weight, args.guide_sigma).items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(chunk)
        if i == 0:
            first_steps = decoder_steps(int(batch.mel_lengths[0]), p.n_frames_per_step)
            first_align = out.alignments[0, :first_steps, : batch.text_lengths[0]].float().cpu().numpy()
            first_mel = batch.mel[0, :, : batch.mel_lengths[0]].cpu().numpy()
    result: dict = {k: v / max(1, len(items)) for k, v in sums.items()}
    stops, images = 0, []
    for n, item in enumerate(items[:4]):
        target = int(gpu.mel_off[item + 1] - gpu.mel_off[item])
        ids = gpu.ids[gpu.ids_off[item] : gpu.ids_off[item + 1]]
        mel, _, align, stopped = free_run(model, ids, max_steps=int(target * 1.5) + 10, seed=n)
        stops += int(stopped and abs(mel.size(1) - target) <= 0.2 * target)
        if n == 0:
            images = [(f"teacher-forced alignment, held-out corpus line {gpu.index[item]}", first_align, "align"),
                      (f"free-running alignment ({mel.size(1)} frames, teacher {target}, "
                       f"{'stopped' if stopped else 'did not stop'})", align.cpu().numpy(), "align"),
                      ("free-running mel (postnet)", mel.cpu().numpy(), "mel"), ("teacher mel", first_mel, "mel")]
    result["stop_within_20pct"] = stops / max(1, min(4, len(items)))
    result["images"] = images
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return train(parser().parse_args(argv), argv)


if __name__ == "__main__":
    sys.exit(main())
