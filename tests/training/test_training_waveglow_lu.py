"""LU-parametrized 1x1 convolutions (training only) and the CUDA-graphed WaveGlow step.

The LU form must be exact on trained weights, give the log-determinant without a
factorization, and save as NVIDIA's plain W, so nothing downstream (rtvoice's loader, the
export) ever sees it.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rtvoice.export.waveglow import WaveGlow  # noqa: E402
from training.loop import CaptureFailed  # noqa: E402
from training.train_waveglow import PRESETS  # noqa: E402
from training.waveglow_flow import (  # noqa: E402
    add_lu,
    flow_loss,
    forward_flow,
    has_lu,
    inverse_flow,
    mixing_inverse,
    mixing_logdet,
    mixing_weight,
    plain_state_dict,
    spectral_loss,
)
from training.waveglow_graph import GraphedStep, compare_with_eager, make_optimizer, training_step  # noqa: E402


def trained_like(seed: int = 0) -> WaveGlow:
    """A tiny WaveGlow whose 1x1 weights are no longer orthogonal, one with a negative determinant."""
    torch.manual_seed(seed)
    model = WaveGlow(PRESETS["tiny"])
    with torch.no_grad():
        for conv in model.convinv:
            conv.conv.weight.add_(0.2 * torch.randn_like(conv.conv.weight))
        model.convinv[1].conv.weight[0].neg_()
    return model


def test_lu_form_is_exact_on_trained_weights() -> None:
    model = trained_like()
    assert torch.det(mixing_weight(model, 1).squeeze(-1)) < 0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    audio, mel = 0.1 * torch.randn(2, 8 * 256 * 2), torch.randn(2, 80, 16)
    loss = flow_loss(*forward_flow(model, audio, mel))
    logdets = [float(mixing_logdet(model, k).detach()) for k in range(len(model.convinv))]
    inverses = [mixing_inverse(model, k).detach() for k in range(len(model.convinv))]
    add_lu(model)
    assert has_lu(model)
    for k in range(len(model.convinv)):
        torch.testing.assert_close(mixing_weight(model, k), before[f"convinv.{k}.conv.weight"], atol=1e-6, rtol=1e-5)
        assert abs(float(mixing_logdet(model, k).detach()) - logdets[k]) < 1e-5
        torch.testing.assert_close(mixing_inverse(model, k).detach(), inverses[k], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(flow_loss(*forward_flow(model, audio, mel)), loss, atol=1e-5, rtol=1e-5)
    saved = plain_state_dict(model)
    assert saved.keys() == before.keys()  # NVIDIA's names, nothing of the LU form
    for name, value in before.items():
        torch.testing.assert_close(saved[name], value, atol=1e-6, rtol=1e-5)


def test_lu_trains_the_factors_and_saves_a_plain_weight_a_plain_model_loads() -> None:
    model = trained_like(1)
    add_lu(model)
    names = {n for n, _ in model.named_parameters()}
    assert "convinv.0.conv.parametrizations.weight.original2" in names  # log_s trains
    assert not any(n.endswith("convinv.0.conv.weight") for n in names)  # W itself is computed
    opt = make_optimizer(model, 1e-2, 0.0, graphed=False)
    audio, mel = 0.1 * torch.randn(2, 8 * 256 * 2), torch.randn(2, 80, 16)
    noise = 0.6 * torch.randn(2, 8, 512)

    def stft(audio: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:  # through W^-1's triangular solves
        return spectral_loss(inverse_flow(model, noise, mel), audio)

    step = training_step(model, opt, sigma=1.0, clip=5.0, stft=stft, stft_weight=0.5)
    w0 = mixing_weight(model, 0).detach().clone()
    for _ in range(3):
        model.zero_grad(set_to_none=True)
        parts = step(audio, mel)
    assert set(parts) == {"loss", "stft", "grad_norm"} and torch.isfinite(parts["loss"] + parts["stft"])
    w = mixing_weight(model, 0).detach()
    assert not torch.allclose(w, w0)  # it trained
    plain = WaveGlow(PRESETS["tiny"])
    plain.load_state_dict(plain_state_dict(model))
    torch.testing.assert_close(mixing_weight(plain, 0), w)


def test_a_graphed_step_without_a_gpu_fails_to_capture_and_changes_nothing() -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the failure where no CUDA device is")
    model = trained_like(2)
    add_lu(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, 1e-3, 0.0, graphed=False)
    with pytest.raises(CaptureFailed, match="not a CUDA device"):
        GraphedStep(training_step(model, opt, sigma=1.0, clip=5.0), torch.zeros(2, 4096), torch.zeros(2, 80, 16),
                    lambda: opt.zero_grad(set_to_none=True))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_graphed_steps_train_as_eager_ones() -> None:
    assert compare_with_eager(torch.device("cuda")) < 1e-3
