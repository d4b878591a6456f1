"""The CUDA-graph decoder loop (training/decoder_graphs.py) trains exactly as the eager loop.

Needs a CUDA GPU (skipped elsewhere); run it on the GPU machine before a stretch that uses graphs.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rtvoice.export.tacotron2 import Tacotron2  # noqa: E402
from training.decoder_graphs import (  # noqa: E402
    CaptureFailed,
    DecoderGraphs,
    Shape,
    compare_with_eager,
    frame_buckets,
    graph_shapes,
    random_batch,
)
from training.tacotron2_steps import Dropouts, losses, prenet_masks, teacher_forced  # noqa: E402
from training.train_tacotron2 import PRESETS as T2  # noqa: E402


def test_frame_buckets_cover_the_longest_utterance() -> None:
    assert frame_buckets(790, 128) == [128, 256, 384, 512, 640, 768, 896]
    assert frame_buckets(256, 128) == [128, 256]


def test_each_shape_holds_the_longest_text_of_the_sentences_that_fit_its_frames() -> None:
    mel = np.array([100, 120, 130, 250, 260, 700])
    text = np.array([30, 45, 50, 40, 90, 170])
    assert graph_shapes(mel, text, 128) == [Shape(128, 45), Shape(256, 50), Shape(384, 90), Shape(512, 90),
                                            Shape(640, 90), Shape(768, 170)]
    # No sentence of 129-256 frames is longer than those under 128: the shape still grows with its bucket.
    assert graph_shapes(np.array([50, 300]), np.array([60, 20]), 128) == [Shape(128, 60), Shape(256, 60),
                                                                            Shape(384, 60)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_graphed_decoder_loop_gives_the_eager_losses_and_gradients() -> None:
    worst, graphs = compare_with_eager(T2["tiny"], torch.device("cuda"))
    assert len(graphs.graphs) == 2 and graphs.replays == 7  # two shapes; 6 compared steps, 1 with dropout
    assert worst < 1e-4


def test_graph_padding_is_exact_on_the_cpu() -> None:
    """The padding the graphs need, checked where no graph can run: same losses as unpadded."""
    model = Tacotron2(T2["tiny"]).eval()
    batch = random_batch(torch.device("cpu"), 1)
    graphs = DecoderGraphs(model, Dropouts(), [Shape(32, 12), Shape(16, 12)], batch_size=2,
                           autocast=contextlib.nullcontext)
    padded = graphs.pad(batch)
    assert padded.mel.shape[2] == 16 and padded.text is batch.text  # text is padded after the encoder
    masks = prenet_masks(16, 2, model.params.prenet_dim, 0.5, torch.device("cpu"))
    with torch.no_grad():
        plain = losses(teacher_forced(model, batch, masks[:12], Dropouts()), batch, 8.0, 0.2)
        more = losses(teacher_forced(model, padded, masks, Dropouts()), padded, 8.0, 0.2)
    for name, value in plain.items():
        torch.testing.assert_close(more[name], value, atol=1e-6, rtol=1e-5, msg=name)
    graphs.batch_size = 3
    assert graphs.pad(batch) is batch  # another batch size: no graph, no padding


def test_padding_the_encoder_output_changes_nothing_the_loop_returns() -> None:
    """What the graphs do with the encoder's output (pad to the longest sentence, mask), run eagerly."""
    from training.tacotron2_steps import DecoderLoop, encode

    torch.manual_seed(0)
    model = Tacotron2(T2["tiny"]).eval()
    batch = random_batch(torch.device("cpu"), 2)
    memory, processed, mask = encode(model, batch.text, batch.text_lengths, 0.0)
    prenet_out = torch.randn(12, 2, model.params.prenet_dim)
    loop = DecoderLoop(model, Dropouts()).eval()
    pad3 = lambda x: torch.nn.functional.pad(x, (0, 0, 0, 5))  # noqa: E731
    with torch.no_grad():
        out, alignments = loop(prenet_out, memory, processed, mask)
        out_p, alignments_p = loop(prenet_out, pad3(memory), pad3(processed),
                                   torch.nn.functional.pad(mask, (0, 5), value=True))
    torch.testing.assert_close(out_p, out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(alignments_p[:, :, :9], alignments, atol=1e-6, rtol=1e-5)
    assert not alignments_p[:, :, 9:].any()


def test_the_loop_runs_eagerly_wherever_no_graph_can_serve() -> None:
    """Evaluation, a shape with no graph, and a batch of another size all run the eager loop."""
    from training.tacotron2_steps import DecoderLoop

    model = Tacotron2(T2["tiny"])
    graphs = DecoderGraphs(model, Dropouts(), [Shape(16, 12)], batch_size=2, autocast=contextlib.nullcontext)

    def never(*inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise AssertionError("only selected here, never run")

    graphs.graphs[16] = never
    inputs = (torch.zeros(16, 2, model.params.prenet_dim), torch.zeros(2, 9, 32), torch.zeros(2, 9, 16),
              torch.zeros(2, 9, dtype=torch.bool))
    model.eval()
    assert isinstance(graphs(*inputs), DecoderLoop)  # evaluation: never a graph
    model.train()
    assert isinstance(graphs(inputs[0][:12], *inputs[1:]), DecoderLoop)  # 12 frames: padded to no shape
    wide = (torch.zeros(2, 13, 32), torch.zeros(2, 13, 16), torch.zeros(2, 13, dtype=torch.bool))
    assert isinstance(graphs(inputs[0], *wide), DecoderLoop)  # 13 symbols: more than the shape holds
    assert isinstance(graphs(inputs[0][:, :1], *(x[:1] for x in inputs[1:])), DecoderLoop)  # batch of 1
    assert not isinstance(graphs(*inputs), DecoderLoop) and graphs.replays == 0  # the graph's shape: the graph


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure where no CUDA device is")
def test_a_capture_that_fails_raises_and_captures_nothing() -> None:
    graphs = DecoderGraphs(Tacotron2(T2["tiny"]), Dropouts(), [Shape(16, 12)], batch_size=2,
                           autocast=contextlib.nullcontext)
    with pytest.raises(CaptureFailed, match="not a CUDA device"):
        graphs.capture()
    assert graphs.graphs == {}


def test_every_parameter_of_the_loop_module_gets_a_gradient() -> None:
    """The loop's output depends on each of its parameters and inputs.

    make_graphed_callables differentiates by all of them and refuses one that is unused (the
    first H200 check failed so).
    """
    from training.tacotron2_steps import DecoderLoop, encode

    torch.manual_seed(0)
    model = Tacotron2(T2["tiny"]).train()
    batch = random_batch(torch.device("cpu"), 3)
    # Leaves, as the capture sees them: detached from the encoder that made them.
    memory, processed, mask = (x.detach().requires_grad_(x.is_floating_point())
                               for x in encode(model, batch.text, batch.text_lengths, 0.0))
    prenet_out = torch.randn(12, 2, model.params.prenet_dim, requires_grad=True)
    loop = DecoderLoop(model, Dropouts())
    params = dict(loop.named_parameters())
    assert params, "the loop owns the model's recurrent layers"
    out, alignments = loop(prenet_out, memory, processed, mask)
    inputs = (prenet_out, memory, processed)
    grads = torch.autograd.grad((out.sum() + alignments.sum(),), (*inputs, *params.values()), allow_unused=True)
    unused = [name for name, g in zip(["prenet_out", "memory", "processed", *params], grads, strict=True) if g is None]
    assert unused == []
    # The model's parameters are the loop's own, shared, not copies.
    model_params = {id(p) for p in model.parameters()}
    assert all(id(p) in model_params for p in params.values())
