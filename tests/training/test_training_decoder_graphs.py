"""The CUDA-graph decoder loop (training/decoder_graphs.py) trains exactly as the eager loop.

Needs a CUDA GPU (skipped elsewhere); run it on the GPU machine before a stretch that uses graphs.
"""

from __future__ import annotations

import contextlib

import pytest

torch = pytest.importorskip("torch")

from rtvoice.export.tacotron2 import Tacotron2  # noqa: E402
from training.decoder_graphs import DecoderGraphs, frame_buckets  # noqa: E402
from training.tacotron2_steps import Batch, Dropouts, losses, prenet_masks, teacher_forced  # noqa: E402
from training.train_tacotron2 import PRESETS as T2  # noqa: E402


def test_frame_buckets_cover_the_longest_utterance() -> None:
    assert frame_buckets(790, 128) == [128, 256, 384, 512, 640, 768, 896]
    assert frame_buckets(256, 128) == [128, 256]


def batch_on(device: torch.device, seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    text_lengths, mel_lengths = torch.tensor([9, 6]), torch.tensor([12, 7])
    text = torch.randint(1, 148, (2, 9), generator=g) * (torch.arange(9) < text_lengths[:, None])
    mel = torch.randn(2, 80, 12, generator=g) * (torch.arange(12) < mel_lengths[:, None, None])
    return Batch(text.to(device), text_lengths.to(device), mel.to(device), mel_lengths.to(device))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_graphed_decoder_loop_gives_the_eager_losses_and_gradients() -> None:
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = Tacotron2(T2["tiny"]).to(device).train()
    drop = Dropouts(0.0, 0.0, 0.0, 0.0)  # the same arithmetic on both sides, no random draws
    graphs = DecoderGraphs(model, drop, text_length=12, buckets=[16], batch_size=2, autocast=contextlib.nullcontext)

    def step(batch: Batch, masks: torch.Tensor, loops: DecoderGraphs | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        loss = sum(losses(teacher_forced(model, batch, masks, drop, loops), batch, 8.0, 0.2).values())
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    for seed in (1, 2, 3):  # the first call captures; the later ones replay with new inputs
        batch = graphs.pad(batch_on(device, seed))
        assert batch.mel.shape[2] == 16 and batch.text.shape[1] == 12
        masks = prenet_masks(16, 2, model.params.prenet_dim, 0.5, device)
        eager_loss, eager_grads = step(batch, masks, None)
        graph_loss, graph_grads = step(batch, masks, graphs)
        assert not graphs.failed and len(graphs.graphs) == 1
        torch.testing.assert_close(graph_loss, eager_loss, atol=1e-5, rtol=1e-5)
        for g, e in zip(graph_grads, eager_grads, strict=True):
            torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4)
