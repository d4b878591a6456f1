"""Tacotron 2 training with the teacher-forced decoder loop captured in CUDA graphs.

Why: the loop (:class:`training.tacotron2_steps.DecoderLoop`) runs dozens of small kernels
per frame, forward and backward, about 470 frames per batch. On the GPU machine the eager
loop is bound by kernel launches, not arithmetic (0.5-0.8 iterations/s at batch 256 on an
H100 and an H200, the GPU mostly idle). Captured with ``torch.cuda.make_graphed_callables``,
each iteration's loop is one graph launch forward and one backward; the encoder, prenet,
postnet, losses and optimizer stay eager (a few hundred launches per iteration).

A graph has fixed shapes, so batches are padded: frames up to the next of a few buckets, and
the encoder's output (not the text, which would skew the encoder's batch norm) to the
longest sentence that fits that bucket (:func:`graph_shapes`). Padding changes no loss
(tacotron2_steps.py masks every convolution and loss, and a test checks it). A batch of any
other shape (an epoch's last, short batch) runs eagerly.

Every shape is captured up front, before the first training step, in ONE
``make_graphed_callables`` call. Two H200 runs taught why: capturing shapes one by one as
training met them failed at the second ("capturing stream has unjoined work": the
parameters' gradient accumulators, kept alive by the first graph, belong to that capture's
warm-up stream), and a failed capture leaves the CUDA random generator mid-capture, so even
the eager fallback then died in dropout. So :meth:`DecoderGraphs.capture` either captures
everything or raises :class:`CaptureFailed`, and the trainer then restarts itself, eagerly,
in a fresh process (training/train_tacotron2.py): a stretch of GPU time is never lost to it.
The shapes share one memory pool (one call), which is safe because each iteration runs one
graph's forward and backward to the end before another graph runs.

``python -m training.decoder_graphs`` checks, on the GPU at hand, that graphed loops of two
shapes, replayed in another order than captured, give the eager loop's losses and gradients
(training/stretch.sh runs it first and trains eagerly if it fails).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from rtvoice.export.tacotron2 import Tacotron2, Tacotron2Params
from training.loop import CaptureFailed
from training.tacotron2_steps import Batch, DecoderLoop, Dropouts, LoopRunner, losses, prenet_masks, teacher_forced

log = logging.getLogger("training.tacotron2")

WARMUP_RUNS = 2
"""Eager runs on a side stream before the capture (lazy initialization of cuBLAS/cuDNN)."""


@dataclass(frozen=True)
class Shape:
    """One captured shape: batches of up to ``frames`` frames and ``symbols`` symbols."""

    frames: int
    symbols: int


def frame_buckets(longest: int, step: int) -> list[int]:
    """Padded lengths ``step, 2 * step, ...`` up to the first that holds ``longest`` frames."""
    return list(range(step, longest + step, step))


def graph_shapes(mel_lengths: np.ndarray, text_lengths: np.ndarray, step: int) -> list[Shape]:
    """One shape per frame bucket: its frames, and the longest text of a sentence that fits it.

    Why per bucket: the loop's memory grows with frames x symbols, and short sentences have
    short texts, so padding every bucket to the corpus's longest text would waste most of it.
    A batch of sentences that each fit a bucket fits its shape.
    """
    shapes = []
    for frames in frame_buckets(int(mel_lengths.max()), step):
        fits = mel_lengths <= frames
        if fits.any():
            shapes.append(Shape(frames, int(text_lengths[fits].max())))
    return shapes


class DecoderGraphs:
    """The decoder loop of one model, one CUDA graph per padded batch shape.

    Call :meth:`capture` once, before training; then :meth:`pad` each batch and pass the
    instance as ``loops`` to :func:`training.tacotron2_steps.teacher_forced`. ``autocast``
    must be the training forward's own context, made with ``cache_enabled=False`` (a graph
    cannot use autocast's weight cache).
    """

    def __init__(self, model: Tacotron2, drop: Dropouts, shapes: list[Shape], batch_size: int,
                 autocast: Callable[[], AbstractContextManager[None]]) -> None:
        self.model, self.drop, self.autocast, self.batch_size = model, drop, autocast, batch_size
        self.shapes = sorted(shapes, key=lambda s: s.frames)
        self.graphs: dict[int, LoopRunner] = {}  # by padded frames
        self.replays = 0  # batches the graphs ran (the rest ran eagerly)

    def capture(self) -> None:
        """Capture every shape, in one call; raise :class:`CaptureFailed` if anything goes wrong."""
        p, b = self.model.params, self.batch_size
        try:
            device = next(self.model.parameters()).device
            if device.type != "cuda":
                raise RuntimeError(f"the model is on {device.type}, not a CUDA device")

            def sample(shape: Shape) -> tuple[Tensor, ...]:
                def leaf(*size: int) -> Tensor:
                    return (0.1 * torch.randn(*size, device=device)).requires_grad_()

                return (leaf(shape.frames, b, p.prenet_dim), leaf(b, shape.symbols, p.encoder_embedding_dim),
                        leaf(b, shape.symbols, p.attention_dim),
                        torch.zeros(b, shape.symbols, dtype=torch.bool, device=device))

            loops = tuple(DecoderLoop(self.model, self.drop).train() for _ in self.shapes)
            samples = tuple(sample(shape) for shape in self.shapes)
            free = torch.cuda.mem_get_info()[0]
            with self.autocast():
                graphed = torch.cuda.make_graphed_callables(loops, samples, num_warmup_iters=WARMUP_RUNS)
            torch.cuda.synchronize()
        except Exception as exc:
            raise CaptureFailed(f"{type(exc).__name__}: {exc}") from exc
        self.graphs = {shape.frames: cast(LoopRunner, g) for shape, g in zip(self.shapes, graphed, strict=True)}
        log.info("captured the decoder loop for batch %d in %d shapes (frames x symbols: %s), %.1f GiB of GPU memory",
                 b, len(self.shapes), ", ".join(f"{s.frames}x{s.symbols}" for s in self.shapes),
                 (free - torch.cuda.mem_get_info()[0]) / 2**30)

    def shape_for(self, frames: int, symbols: int, batch: int) -> Shape | None:
        """The shape a batch of this size runs in, or None (then it runs eagerly)."""
        if batch != self.batch_size:
            return None
        return next((s for s in self.shapes if s.frames >= frames and s.symbols >= symbols), None)

    def pad(self, batch: Batch) -> Batch:
        """The batch's frames padded to its shape's (unchanged when no shape fits it).

        Text is not padded here: the encoder's batch norm would count the padding in its batch
        statistics. The encoder's output is padded instead, in :meth:`__call__`, which is exact.
        """
        shape = self.shape_for(batch.mel.size(2), batch.text.size(1), batch.text.size(0))
        if shape is None:
            return batch
        return Batch(batch.text, batch.text_lengths,
                     nn.functional.pad(batch.mel, (0, shape.frames - batch.mel.size(2))), batch.mel_lengths)

    def __call__(self, prenet_out: Tensor, memory: Tensor, processed: Tensor, mask: Tensor) -> LoopRunner:
        """What runs the loop for these inputs: their shape's graph, or the eager loop.

        The graph runs on the encoder's output padded to its shape's symbols (masked, so
        attention never looks there); its alignments come back cut to the batch's own length.
        """
        shape = self.shape_for(prenet_out.size(0), memory.size(1), memory.size(0))
        if (not self.model.training or shape is None or shape.frames != prenet_out.size(0)
                or shape.frames not in self.graphs):
            return DecoderLoop(self.model, self.drop).train(self.model.training)
        graph, n, extra = self.graphs[shape.frames], memory.size(1), shape.symbols - memory.size(1)

        def run(prenet_out: Tensor, memory: Tensor, processed: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
            self.replays += 1
            pad = nn.functional.pad
            out, alignments = graph(prenet_out, pad(memory, (0, 0, 0, extra)), pad(processed, (0, 0, 0, extra)),
                                    pad(mask, (0, extra), value=True))
            return out, alignments[:, :, :n]

        return run


def random_batch(device: torch.device, seed: int = 0) -> Batch:
    """Two sentences of 9 and 6 symbols, 12 and 7 frames, random and 0-padded: for checks and tests."""
    g = torch.Generator().manual_seed(seed)
    text_lengths, mel_lengths = torch.tensor([9, 6]), torch.tensor([12, 7])
    text = torch.randint(1, 148, (2, 9), generator=g) * (torch.arange(9) < text_lengths[:, None])
    mel = torch.randn(2, 80, 12, generator=g) * (torch.arange(12) < mel_lengths[:, None, None])
    return Batch(text.to(device), text_lengths.to(device), mel.to(device), mel_lengths.to(device))


def compare_with_eager(params: Tacotron2Params, device: torch.device, seeds: tuple[int, ...] = (1, 2, 3),
                       ) -> tuple[float, DecoderGraphs]:
    """The largest difference between graphed and eager losses and gradients over a few batches.

    A small model without dropout (so both sides do the same arithmetic). Two shapes are
    captured, as training captures them (all at once, before any step); the batches then
    alternate between them against the capture order, each padded to its shape, with an
    eager step in between, as training runs them.
    """
    torch.manual_seed(0)
    model = Tacotron2(params).to(device).train()
    drop = Dropouts(0.0, 0.0, 0.0, 0.0)
    graphs = DecoderGraphs(model, drop, [Shape(16, 12), Shape(24, 12)], batch_size=2,
                           autocast=contextlib.nullcontext)
    graphs.capture()

    def step(batch: Batch, masks: Tensor, loops: DecoderGraphs | None, eager_drop: Dropouts = drop) -> list[Tensor]:
        """One training step's loss and gradients; ``eager_drop`` is the dropout outside the graphs."""
        model.zero_grad(set_to_none=True)
        loss = sum(losses(teacher_forced(model, batch, masks, eager_drop, loops), batch, 8.0, 0.2).values())
        assert isinstance(loss, Tensor)
        loss.backward()  # type: ignore[no-untyped-call]
        return [loss.detach(), *(p.grad.clone() for p in model.parameters() if p.grad is not None)]

    def padded(seed: int, frames: int) -> Batch:
        """A random batch with its mel padded to ``frames`` (a shape :meth:`DecoderGraphs.pad` would not pick)."""
        batch = random_batch(device, seed)
        return Batch(batch.text, batch.text_lengths, nn.functional.pad(batch.mel, (0, frames - batch.mel.size(2))),
                     batch.mel_lengths)

    worst = 0.0
    for seed in seeds:
        for frames in (24, 16):  # the second shape first: replay order need not follow capture order
            batch = padded(seed, frames)
            masks = prenet_masks(frames, 2, params.prenet_dim, 0.5, device)
            eager, graphed = step(batch, masks, None), step(batch, masks, graphs)
            if len(graphed) != len(eager):
                return float("inf"), graphs
            worst = max([worst, *(float((g - e).abs().max() / (e.abs().max() + 1e-6))
                                  for g, e in zip(graphed, eager, strict=True))])
    # Training draws dropout masks eagerly around the graphs: the random generator must still serve.
    with_dropout = step(padded(9, 16), prenet_masks(16, 2, params.prenet_dim, 0.5, device), graphs, Dropouts())
    if not all(bool(torch.isfinite(t).all()) for t in with_dropout):
        return float("inf"), graphs
    return worst, graphs


def main() -> int:
    """Exit 0 when the graphed decoder loop trains as the eager one does on this GPU."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    from training.train_tacotron2 import PRESETS  # here: train_tacotron2 imports this module

    try:
        worst, graphs = compare_with_eager(PRESETS["tiny"], torch.device("cuda"))
    except CaptureFailed as exc:
        print(f"CUDA-graph decoder loop: the capture failed ({exc})")
        return 1
    ok = worst < 1e-4 and len(graphs.graphs) == 2 and graphs.replays == 7
    print(f"CUDA-graph decoder loop against eager: largest relative difference {worst:.2e} "
          f"({'same' if ok else 'DIFFERENT'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
