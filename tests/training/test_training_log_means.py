"""A trainer's logged means are over the steps it summed, also in the short window after a resume."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.training.test_training_data import tiny_corpus  # noqa: E402

LINE = re.compile(r"^it (\d+) .*?\| mel ([0-9.]+) ")


@pytest.mark.timeout(300)
def test_the_first_window_after_a_resume_is_averaged_over_its_own_steps(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    from training import train_tacotron2

    words = ["hello there.", "good morning, sir.", "a cat sat.", "we go home now.", "yes.", "no way."]
    data = tiny_corpus(tmp_path, words, heldout={5})
    common = ["--data", str(data), "--out", str(tmp_path / "ckpt"), "--preset", "tiny", "--reserve-seconds", "0",
              "--resume", "--batch-size", "4", "--lr", "1e-5"]
    assert train_tacotron2.main(["--minutes", "0.001", "--log-every", "1", *common]) == 0  # one iteration, saved
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert train_tacotron2.main(["--minutes", "0.15", "--log-every", "4", *common]) == 0
    logged = [(int(m[1]), float(m[2])) for m in (LINE.match(r.getMessage()) for r in caplog.records) if m]
    assert len(logged) >= 3, logged
    assert logged[0][0] == 4  # iterations 2-4: three steps in a window of four
    later = [mel for _, mel in logged[1:]]
    # At a tiny learning rate the loss hardly moves; a mean over 4 of 3 steps' sum would read 0.75x.
    assert 0.9 < logged[0][1] / (sum(later) / len(later)) < 1.1, logged
