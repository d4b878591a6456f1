"""WaveGlow with frame-rate conditioning (upsample_kernel 0, n_group == hop): built, loaded, run.

The variant the default voice may train (training/README.md); the runtime must run it as
any WaveGlow: same graph inputs and outputs, noise of (B, 256, frames).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rtvoice import SynthesisConfig, Voice  # noqa: E402
from rtvoice.export.checkpoint import load_waveglow  # noqa: E402
from rtvoice.export.parity import compare  # noqa: E402
from rtvoice.export.voice_builder import build_voice, random_models  # noqa: E402
from rtvoice.export.waveglow import WaveGlow, WaveGlowParams  # noqa: E402

FRAME = WaveGlowParams(n_flows=4, n_group=256, n_early_every=2, n_early_size=64, n_layers=2, n_channels=16,
                       upsample_kernel=0)


def frame_waveglow(seed: int = 0) -> WaveGlow:
    torch.manual_seed(seed)
    model = WaveGlow(FRAME).eval()
    with torch.no_grad():
        for wn in model.WN:  # tame random couplings, as random_models does
            wn.end.weight.mul_(0.1)
            wn.end.bias.zero_()
    return model


def test_frame_rate_waveglow_has_no_upsampler_and_needs_a_group_per_hop() -> None:
    model = frame_waveglow()
    assert model.upsample is None and "upsample.weight" not in model.state_dict()
    mel = torch.randn(1, 80, 5)
    assert model.condition(mel) is mel  # the WN networks read the mel itself, one step per frame
    with torch.no_grad():
        audio = model.infer(mel, torch.randn(1, 256, 5))
    assert audio.shape == (1, 5 * 256)
    with pytest.raises(ValueError, match="n_group == hop_length"):
        WaveGlow(WaveGlowParams(n_group=8, upsample_kernel=0))


def test_frame_rate_checkpoint_loads_with_or_without_config(tmp_path: Path) -> None:
    model = frame_waveglow()
    for name, extra in (("bare.pt", {}), ("config.pt", {"config": FRAME.to_dict()})):
        torch.save({"state_dict": model.state_dict(), **extra}, tmp_path / name)
        loaded = load_waveglow(tmp_path / name)
        assert loaded.params == FRAME  # read off the shapes when there is no config
        mel, noise = torch.randn(1, 80, 4), torch.randn(1, 256, 4)
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval().infer(mel, noise), model.infer(mel, noise))


def test_frame_rate_voice_matches_pytorch_and_streams(tmp_path: Path) -> None:
    tacotron2, _ = random_models("tiny", seed=0)
    waveglow = frame_waveglow()
    build_voice(tacotron2, waveglow, tmp_path / "frame")
    report = compare(tmp_path / "frame", tacotron2, waveglow, "Frame rate, please.", seed=3, steps=60)
    assert report.mel_max_abs <= 1e-5 * report.mel_peak
    assert report.audio_max_abs <= 1e-5 * report.audio_peak

    text = "Streamed in chunks, as the runtime plays it."
    with Voice.load(tmp_path / "frame", device="cpu") as voice:
        assert voice.config.vocoder.n_group == 256
        whole = np.concatenate([c.samples for c in voice.synthesize(text, SynthesisConfig(
            seed=1, force_steps=150, whole=True))])
        chunks = list(voice.synthesize(text, SynthesisConfig(seed=1, force_steps=150)))
    streamed = np.concatenate([c.samples for c in chunks])
    assert len(chunks) > 2 and streamed.shape == whole.shape
    snr = 10 * np.log10(np.sum(whole**2) / np.sum((streamed - whole) ** 2))
    assert snr > 40, snr  # each chunk's context covers the flows' receptive field
