"""training/loop.py: what both trainers share when a run starts or resumes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from training.loop import LossWindow, Schedule, restore_optimizer  # noqa: E402


def _trained_optimizer() -> tuple[torch.nn.Linear, torch.optim.AdamW]:
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    return model, opt


def test_a_resume_with_optimizer_state_loads_it_and_keeps_the_warmed_up_rate() -> None:
    model, trained = _trained_optimizer()
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)

    warm_from = restore_optimizer(fresh, trained.state_dict(), iteration=500)

    assert warm_from == 0
    for p in model.parameters():
        torch.testing.assert_close(fresh.state[p]["exp_avg"], trained.state[p]["exp_avg"])
    assert Schedule(1e-3, warmup=100, decay_start=10**6, halflife=1).at(500, warm_from) == 1e-3


def test_a_resume_without_optimizer_state_warms_up_again_from_its_iteration() -> None:
    model, _ = _trained_optimizer()
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)

    warm_from = restore_optimizer(fresh, None, iteration=500)

    assert warm_from == 500
    assert fresh.state_dict()["state"] == {}  # nothing loaded: AdamW's moments start from zero
    assert Schedule(1e-3, warmup=100, decay_start=10**6, halflife=1).at(500, warm_from) == pytest.approx(1e-5)


def test_a_loss_window_averages_the_steps_it_summed_and_starts_again_when_taken() -> None:
    window = LossWindow()
    for mel in (1.0, 2.0, 6.0):  # a short window, as after a resume
        window.add({"mel": torch.tensor(mel, requires_grad=True) * 1, "gate": torch.tensor(0.5)})

    first = window.take()

    assert first.steps == 3 and first.means == {"mel": 3.0, "gate": 0.5} and first.seconds >= 0
    window.add({"mel": torch.tensor(4.0)})
    assert window.take().means == {"mel": 4.0}  # nothing of the first window left
