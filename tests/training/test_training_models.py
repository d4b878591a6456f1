"""The training passes agree with rtvoice's inference code.

Teacher forcing matches Decoder.step; WaveGlow's audio -> z inverts its z -> audio.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rtvoice.export.tacotron2 import DecoderState, Tacotron2  # noqa: E402
from rtvoice.export.waveglow import WaveGlow  # noqa: E402
from training.decoder_graphs import random_batch  # noqa: E402
from training.tacotron2_steps import (  # noqa: E402
    Batch,
    Dropouts,
    free_run,
    guide_weights,
    losses,
    prenet_masks,
    teacher_forced,
)
from training.train_tacotron2 import PRESETS as T2  # noqa: E402
from training.train_waveglow import PRESETS as WG  # noqa: E402
from training.waveglow_flow import flow_loss, forward_flow, inverse_flow, spectral_loss  # noqa: E402


def test_training_teacher_forcing_equals_decoder_steps() -> None:
    """Each item of a padded batch is what the runtime computes for that sentence alone."""
    torch.manual_seed(0)
    model = Tacotron2(T2["tiny"]).eval()
    batch = random_batch(torch.device("cpu"))
    masks = prenet_masks(12, 2, model.params.prenet_dim, 0.5, torch.device("cpu"))
    with torch.no_grad():
        out = teacher_forced(model, batch, masks, Dropouts())
        for b in range(2):
            n, frames = int(batch.text_lengths[b]), int(batch.mel_lengths[b])
            memory, processed, mask = model.encode(batch.text[b : b + 1, :n], batch.text_lengths[b : b + 1])
            state = DecoderState.zeros(model.params, 1, n, memory)
            frame, stepped = torch.zeros(1, 80), []
            for t in range(frames):
                mel, gate, state = model.decoder.step(frame, state, memory, processed, mask, masks[t, b : b + 1])
                torch.testing.assert_close(out.mel[b, :, t], mel[0], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(out.gate[b, t], gate[0, 0], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(out.alignments[b, t, :n], state.attention_weights[0], atol=1e-6, rtol=1e-5)
                stepped.append(mel)
                frame = batch.mel[b : b + 1, :, t]
            assert not out.alignments[b, :, n:].any() and not out.mel[b, :, frames:].any()  # padding: nothing
            torch.testing.assert_close(out.mel_postnet[b, :, :frames], model.postnet(torch.stack(stepped, dim=2))[0],
                                       atol=1e-5, rtol=1e-5)


def test_training_padding_a_batch_further_changes_no_loss() -> None:
    """Why CUDA-graph training may pad every batch to a few fixed shapes (training/decoder_graphs.py)."""
    torch.manual_seed(0)
    model = Tacotron2(T2["tiny"]).eval()
    batch = random_batch(torch.device("cpu"))
    masks = prenet_masks(12 + 5, 2, model.params.prenet_dim, 0.5, torch.device("cpu"))
    padded = Batch(torch.nn.functional.pad(batch.text, (0, 4)), batch.text_lengths,
                   torch.nn.functional.pad(batch.mel, (0, 5)), batch.mel_lengths)
    with torch.no_grad():
        plain = losses(teacher_forced(model, batch, masks[:12], Dropouts()), batch, 8.0, 0.2)
        more = losses(teacher_forced(model, padded, masks, Dropouts()), padded, 8.0, 0.2)
    for name in ("mel", "mel_postnet", "gate", "guide"):
        torch.testing.assert_close(more[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)


def test_training_guide_weights_follow_the_diagonal() -> None:
    w = guide_weights(torch.tensor([10]), torch.tensor([20]), 12, 25, 0.2)[0]
    assert w[0, 0] == 0 and w[10, 5] == pytest.approx(0, abs=1e-6)  # on the diagonal
    assert w[19, 0] > 0.9  # last frame still on the first symbol
    assert not w[20:].any() and not w[:, 10:].any()  # padding costs nothing


def test_training_tacotron2_step_learns() -> None:
    torch.manual_seed(0)
    model = Tacotron2(T2["tiny"]).train()
    batch = random_batch(torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        masks = prenet_masks(12, 2, model.params.prenet_dim, 0.5, torch.device("cpu"))
        parts = losses(teacher_forced(model, batch, masks, Dropouts()), batch, 8.0, 0.2)
        loss = sum(parts.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert all(torch.isfinite(v) for v in parts.values()) and float(loss.detach()) < first
    mel, gate, align, _ = free_run(model.eval(), batch.text[0, :9], max_steps=20)
    assert mel.shape[0] == 80 and align.shape == (mel.shape[1], 9) and gate.shape == (mel.shape[1],)


@pytest.mark.parametrize("preset", ["tiny", "frame"])
def test_training_waveglow_forward_inverts_to_inference(preset: str) -> None:
    torch.manual_seed(0)
    model = WaveGlow(WG[preset]).eval()
    g = model.params.n_group
    with torch.no_grad():
        for wn in model.WN:  # non-trivial couplings (training starts them at zero)
            wn.end.weight.normal_(0, 0.05)
            wn.end.bias.normal_(0, 0.05)
    frames = 6
    mel = torch.randn(2, 80, frames)
    audio = torch.randn(2, frames * 256) * 0.1
    with torch.no_grad():
        z, log_s, logdet = forward_flow(model, audio, mel)
        back = model.infer(mel, z)
    assert z.shape == (2, g, frames * 256 // g)
    torch.testing.assert_close(back, audio, atol=1e-4, rtol=1e-4)
    assert torch.isfinite(flow_loss(z, log_s, logdet))


def test_training_waveglow_loss_is_gaussian_nll_at_identity() -> None:
    from training.waveglow_flow import zero_init_couplings

    model = WaveGlow(WG["tiny"])
    zero_init_couplings(model)
    audio = torch.randn(1, 4 * 256)
    with torch.no_grad():
        z, log_s, logdet = forward_flow(model, audio, torch.randn(1, 80, 4))
    assert float(log_s) == 0.0 and abs(float(logdet)) < 1e-3  # orthogonal 1x1 convs
    assert float(flow_loss(z, log_s, logdet)) == pytest.approx(float((audio**2).mean() / 2), rel=1e-4)
    assert np.isclose(float((z**2).sum()), float((audio**2).sum()), rtol=1e-4)


def test_training_waveglow_inverse_flow_is_inference_and_differentiable() -> None:
    torch.manual_seed(0)
    model = WaveGlow(WG["tiny"])
    with torch.no_grad():
        for wn in model.WN:
            wn.end.weight.normal_(0, 0.05)
            wn.end.bias.normal_(0, 0.05)
    mel = torch.randn(2, 80, 6)
    noise = torch.randn(2, 8, 6 * 32) * 0.6
    audio = inverse_flow(model, noise, mel)
    with torch.no_grad():
        torch.testing.assert_close(audio, model.infer(mel, noise), atol=1e-5, rtol=1e-5)
    audio.square().mean().backward()
    assert model.convinv[0].conv.weight.grad is not None and model.WN[0].end.weight.grad is not None
    assert float(model.WN[0].end.weight.grad.abs().sum()) > 0


def test_training_spectral_loss_is_zero_only_for_the_same_spectrum() -> None:
    t = torch.arange(8192) / 22050
    tone = torch.sin(2 * torch.pi * 220 * t)[None]
    assert float(spectral_loss(tone, tone)) < 1e-6
    shifted = torch.sin(2 * torch.pi * 220 * t + 1.0)[None]  # same magnitudes, another phase
    other = torch.sin(2 * torch.pi * 440 * t)[None]
    assert float(spectral_loss(shifted, tone)) < 0.5 * float(spectral_loss(other, tone))


def test_training_waveglow_weight_norm_is_exact_and_exports_under_nvidia_names() -> None:
    from rtvoice.export.checkpoint import fold_weight_norm
    from training.waveglow_flow import add_weight_norm, from_nvidia_names, has_weight_norm, to_nvidia_names

    torch.manual_seed(0)
    model = WaveGlow(WG["tiny"]).eval()
    for p in model.parameters():  # away from the identity start, so every convolution matters
        p.data += 0.05 * torch.randn_like(p)
    mel, noise = torch.randn(1, 80, 6), torch.randn(1, 8, 6 * 256 // 8)
    with torch.no_grad():
        before = model.infer(mel, noise)
        add_weight_norm(model)
        model.freeze_inverses()
        after = model.infer(mel, noise)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)  # the same function, reparametrized

    saved = to_nvidia_names(model.state_dict())
    assert has_weight_norm(saved) and not any("parametrizations" in k for k in saved)
    assert "WN.0.in_layers.0.weight_g" in saved and "WN.0.end.weight" in saved  # NVIDIA's names
    plain = WaveGlow(WG["tiny"]).eval()
    plain.load_state_dict(fold_weight_norm(saved))  # what rtvoice's loader and the export do
    again = WaveGlow(WG["tiny"]).eval()
    add_weight_norm(again)
    again.load_state_dict(from_nvidia_names(saved))  # what a resumed run does
    with torch.no_grad():
        torch.testing.assert_close(plain.infer(mel, noise), before, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(again.infer(mel, noise), before, atol=1e-5, rtol=1e-5)


def test_training_waveglow_dequantization_fills_each_int16_step() -> None:
    from training.train_waveglow import dequantize

    audio = torch.zeros(4, 4096)  # digital silence, which a flow could otherwise collapse onto
    noisy = dequantize(audio, 1.0, torch.Generator().manual_seed(0))
    step = 1 / 32768
    assert noisy.abs().max() <= step / 2 and noisy.std() > step / 4  # spread over one int16 step
    torch.testing.assert_close(noisy, dequantize(audio, 1.0, torch.Generator().manual_seed(0)))  # seeded
    assert dequantize(audio, 0.0) is audio


def test_training_frame_waveglow_conditioning_starts_standardized() -> None:
    from training.waveglow_flow import standardize_conditioning

    torch.manual_seed(0)
    model = WaveGlow(WG["frame"])
    cond = model.WN[0].cond_layers[0]
    weight, bias = cond.weight.detach().clone(), cond.bias.detach().clone()
    mel = torch.randn(1, 80, 50) * 2.4 - 5.0  # log mel's level and spread
    mean = mel[0].mean(1)
    before = cond(mel).detach()
    standardize_conditioning(model, mean, 2.4)
    after = cond(mel).detach()
    # The gates now see the original layer applied to standardized mel.
    expected = torch.nn.functional.conv1d((mel - mean[None, :, None]) / 2.4, weight, bias)
    torch.testing.assert_close(after, expected, atol=1e-4, rtol=1e-4)
    assert before.abs().gt(2).float().mean() > 0.3 and after.abs().gt(2).float().mean() < 0.05  # unsaturated
    with pytest.raises(ValueError):
        standardize_conditioning(WaveGlow(WG["tiny"]), mean, 2.4)


def _saved_bytes(fn: object, *args: torch.Tensor) -> tuple[int, object]:
    """Bytes autograd keeps for backward while ``fn(*args)`` runs: new tensors, each storage once.

    The arguments themselves (memory, processed memory) exist once per sentence, and a module's
    parameters once, not per frame.
    """
    shared = [*args, *(fn.parameters() if isinstance(fn, torch.nn.Module) else ())]
    given = {t.untyped_storage().data_ptr() for t in shared}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in given:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)  # type: ignore[operator]
    return sum(storages.values()), out


def test_training_attention_step_recomputes_its_features_with_the_same_gradients() -> None:
    """AttentionStep (LocationEnergies) gives Attention.forward's outputs and gradients, keeping far less."""
    from rtvoice.export.tacotron2 import Attention
    from training.tacotron2_steps import AttentionStep, LocationEnergies

    torch.manual_seed(0)
    p = T2["default"]
    attention = Attention(p).double()
    b, n = 4, 60
    query = torch.randn(b, p.attention_rnn_dim, dtype=torch.float64)
    memory = torch.randn(b, n, p.encoder_embedding_dim, dtype=torch.float64)
    weights_cat = torch.rand(b, 2, n, dtype=torch.float64)
    mask = torch.zeros(b, n, dtype=torch.bool)
    mask[1, 45:] = True
    leaves = [t.requires_grad_() for t in (query, memory, weights_cat)]

    def run(module: torch.nn.Module) -> tuple[int, list[torch.Tensor]]:
        for t in [*leaves, *attention.parameters()]:
            t.grad = None
        processed = attention.memory_layer(memory).detach().requires_grad_()  # the leaf both share
        saved, (context, weights) = _saved_bytes(module, query, memory, processed, weights_cat, mask)
        (context.square().sum() + (weights * torch.arange(n)).sum()).backward()
        grads = [t.grad for t in [*leaves, processed, *attention.parameters()] if t.grad is not None]
        return saved, [context, weights, *grads]

    plain_saved, plain = run(attention)
    step_saved, step = run(AttentionStep(attention))
    assert len(step) == len(plain) == 2 + 4 + 4  # outputs; query, memory, weights, processed; 4 weights
    for a, c in zip(step, plain, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-9)
    # Autograd's own attention keeps the (B, N, attention_dim) features per frame, 644 bytes per item and
    # symbol in float32; this one keeps (B, A) and (B, 2, N): 51 times less at this size.
    assert step_saved * 40 < plain_saved, (step_saved, plain_saved)

    args = [torch.randn(2, 8, dtype=torch.float64), torch.rand(2, 2, 7, dtype=torch.float64),
            torch.randn(2, 7, 8, dtype=torch.float64), torch.randn(3, 2, 5, dtype=torch.float64),
            torch.randn(8, 3, dtype=torch.float64), torch.randn(1, 8, dtype=torch.float64)]
    assert torch.autograd.gradcheck(LocationEnergies.apply, [a.requires_grad_() for a in args])
