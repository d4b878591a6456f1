"""Tacotron 2 training with the teacher-forced decoder loop captured in CUDA graphs.

Why: the loop (:class:`training.tacotron2_steps.DecoderLoop`) runs dozens of small kernels
per frame, forward and backward, about 470 frames per batch. On the GPU machine the eager
loop is bound by kernel launches, not arithmetic (0.5-0.7 iterations/s at batch 256 on an
H100, the GPU mostly idle). Captured with ``torch.cuda.make_graphed_callables``, each
iteration's loop is one graph launch forward and one backward; the encoder, prenet,
postnet, losses and optimizer stay eager (a few hundred launches per iteration).

A graph has fixed shapes, so batches are padded: frames up to the next of a few buckets, and
the encoder's output (not the text, which would skew the encoder's batch norm) to the
corpus's longest sentence. Padding changes no loss (tacotron2_steps.py masks every
convolution and loss, and a test checks it). One graph per (batch, frames) shape is
captured when first needed; all share one memory pool, which is safe because each
iteration runs one graph's forward and backward to the end before another graph runs.
A batch of any other shape (an epoch's last, short batch) runs eagerly.

If a capture fails, the run says so once and goes on eagerly: a stretch of GPU time is
never lost to it. ``python -m training.decoder_graphs`` checks, on the GPU at hand, that the
graphed loop gives the eager loop's losses and gradients (training/stretch.sh runs it first
and trains eagerly if it fails).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from rtvoice.export.tacotron2 import Tacotron2, Tacotron2Params
from training.tacotron2_steps import Batch, DecoderLoop, Dropouts, LoopRunner, losses, prenet_masks, teacher_forced

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE

log = logging.getLogger("training.tacotron2")

WARMUP_RUNS = 2
"""Eager runs on a side stream before a capture (lazy initialization of cuBLAS/cuDNN)."""


def frame_buckets(longest: int, step: int) -> list[int]:
    """Padded lengths ``step, 2 * step, ...`` up to the first that holds ``longest`` frames."""
    return list(range(step, longest + step, step))


class DecoderGraphs:
    """The decoder loop of one model, one CUDA graph per padded batch shape.

    Use :meth:`pad` on each batch, then pass the instance as ``loops`` to
    :func:`training.tacotron2_steps.teacher_forced`. ``autocast`` must be the training
    forward's own context, made with ``cache_enabled=False`` (a graph cannot use autocast's
    weight cache).
    """

    def __init__(self, model: Tacotron2, drop: Dropouts, text_length: int, buckets: list[int], batch_size: int,
                 autocast: Callable[[], AbstractContextManager[None]]) -> None:
        self.model, self.drop, self.autocast = model, drop, autocast
        self.text_length, self.buckets, self.batch_size = text_length, sorted(buckets), batch_size
        self.pool: _POOL_HANDLE | None = None  # one memory pool for every shape, made at the first capture
        self.graphs: dict[int, LoopRunner] = {}  # by padded frames
        self.failed = False

    def pad(self, batch: Batch) -> Batch:
        """The batch's frames padded to its graph's bucket (unchanged when no graph fits it).

        Text is not padded here: the encoder's batch norm would count the padding in its batch
        statistics. The encoder's output is padded instead, in :meth:`__call__`, which is exact.
        """
        frames = next((b for b in self.buckets if b >= batch.mel.size(2)), None)
        if (self.failed or frames is None or batch.text.size(0) != self.batch_size
                or batch.text.size(1) > self.text_length):
            return batch
        return Batch(batch.text, batch.text_lengths, nn.functional.pad(batch.mel, (0, frames - batch.mel.size(2))),
                     batch.mel_lengths)

    def __call__(self, prenet_out: Tensor, memory: Tensor, processed: Tensor, mask: Tensor) -> LoopRunner:
        """What runs the loop for these inputs: their shape's graph (captured now if new), or eager.

        The graph runs on the encoder's output padded to ``text_length`` symbols (masked, so
        attention never looks there); its alignments come back cut to the batch's own length.
        """
        fits = (prenet_out.size(0) in self.buckets and memory.size(0) == self.batch_size
                and memory.size(1) <= self.text_length)
        key = prenet_out.size(0)
        if not self.failed and self.model.training and fits and key not in self.graphs:
            graph = self._capture(prenet_out, *self._pad_text(memory, processed, mask))
            if graph is not None:
                self.graphs[key] = graph
        if self.failed or not self.model.training or not fits or key not in self.graphs:
            return DecoderLoop(self.model, self.drop).train(self.model.training)
        graph, n = self.graphs[key], memory.size(1)

        def run(prenet_out: Tensor, memory: Tensor, processed: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
            out, alignments = graph(prenet_out, *self._pad_text(memory, processed, mask))
            return out, alignments[:, :, :n]

        return run

    def _pad_text(self, memory: Tensor, processed: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The encoder's outputs padded to ``text_length`` symbols, the padding masked."""
        extra = self.text_length - memory.size(1)
        pad = nn.functional.pad
        return pad(memory, (0, 0, 0, extra)), pad(processed, (0, 0, 0, extra)), pad(mask, (0, extra), value=True)

    def _capture(self, *inputs: Tensor) -> LoopRunner | None:
        samples = tuple(x.detach().clone().requires_grad_(x.requires_grad) for x in inputs)
        loop = DecoderLoop(self.model, self.drop).train()
        try:
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            free = torch.cuda.mem_get_info()[0]
            with self.autocast():
                graphed = torch.cuda.make_graphed_callables(loop, samples, num_warmup_iters=WARMUP_RUNS,
                                                            pool=self.pool)
        except Exception as exc:  # a failed capture must not cost the stretch: train eagerly instead
            self.failed = True
            log.warning("CUDA graph capture of the decoder loop failed (%s: %s); training eagerly from here",
                        type(exc).__name__, exc)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return None
        log.info("captured the decoder loop for batch %d x %d frames x %d symbols (%.1f GiB of GPU memory)",
                 samples[1].size(0), samples[0].size(0), samples[1].size(1),
                 (free - torch.cuda.mem_get_info()[0]) / 2**30)
        return cast(LoopRunner, graphed)  # the module, its forward now replaying the graphs


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

    A small model without dropout (so both sides do the same arithmetic), batches padded to one
    graph shape; the first batch captures the graph, the later ones replay it with new inputs.
    """
    torch.manual_seed(0)
    model = Tacotron2(params).to(device).train()
    drop = Dropouts(0.0, 0.0, 0.0, 0.0)
    graphs = DecoderGraphs(model, drop, text_length=12, buckets=[16], batch_size=2, autocast=contextlib.nullcontext)

    def step(batch: Batch, masks: Tensor, loops: DecoderGraphs | None) -> list[Tensor]:
        model.zero_grad(set_to_none=True)
        loss = sum(losses(teacher_forced(model, batch, masks, drop, loops), batch, 8.0, 0.2).values())
        assert isinstance(loss, Tensor)
        loss.backward()  # type: ignore[no-untyped-call]
        return [loss.detach(), *(p.grad.clone() for p in model.parameters() if p.grad is not None)]

    worst = 0.0
    for seed in seeds:
        batch = graphs.pad(random_batch(device, seed))
        masks = prenet_masks(batch.mel.size(2), 2, params.prenet_dim, 0.5, device)
        eager, graphed = step(batch, masks, None), step(batch, masks, graphs)
        if graphs.failed or len(graphed) != len(eager):
            return float("inf"), graphs
        worst = max([worst, *(float((g - e).abs().max() / (e.abs().max() + 1e-6))
                              for g, e in zip(graphed, eager, strict=True))])
    return worst, graphs


def main() -> int:
    """Exit 0 when the graphed decoder loop trains as the eager one does on this GPU."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    from training.train_tacotron2 import PRESETS  # here: train_tacotron2 imports this module

    worst, graphs = compare_with_eager(PRESETS["tiny"], torch.device("cuda"))
    ok = worst < 1e-4 and len(graphs.graphs) == 1
    print(f"CUDA-graph decoder loop against eager: largest relative difference {worst:.2e} "
          f"({'same' if ok else 'DIFFERENT'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
