"""training/plots.py: no validation images skip the alignment figure, not the training run.

A partial corpus (training/stretch.sh PARTIAL=1) may hold no held-out rows yet.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from training import plots


def test_panels_without_images_skips_the_figure_with_a_log_line(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tacotron2_alignment.png"
    with caplog.at_level(logging.INFO, logger="training.plots"):
        plots.panels(path, [], "Tacotron 2, iteration 10")  # raised ValueError where matplotlib is installed
    assert not path.exists()
    assert any("no validation images" in r.getMessage() and path.name in r.getMessage() for r in caplog.records)


def test_panels_with_images_draws_them(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "tacotron2_alignment.png"
    plots.panels(path, [("align", np.eye(8, 5), "align"), ("mel", np.ones((80, 8)), "mel")], "t")
    assert path.stat().st_size > 0
