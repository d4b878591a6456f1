"""Check that a built voice's ONNX graphs reproduce the PyTorch models (build time, torch).

The same weights, seed and text go through the PyTorch reference (``Tacotron2.infer``,
``WaveGlow.infer``) and through the runtime (ONNX Runtime on the CPU, whole-utterance
mode); the report gives the largest differences of mel, postnet mel and audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import SynthesisConfig
from ..engine.randomness import PrenetMasks, noise
from ..synthesizer import plan
from ..voice import Voice
from .tacotron2 import Tacotron2
from .waveglow import WaveGlow


@dataclass(frozen=True)
class ParityReport:
    steps: int
    mel_max_abs: float
    mel_peak: float
    audio_max_abs: float
    audio_peak: float

    @property
    def audio_snr_db(self) -> float:
        return float("inf") if self.audio_max_abs == 0 else 20 * np.log10(self.audio_peak / self.audio_max_abs)

    def __str__(self) -> str:
        return (f"{self.steps} decoder steps: mel max |diff| {self.mel_max_abs:.2e} (peak {self.mel_peak:.2f}), "
                f"audio max |diff| {self.audio_max_abs:.2e} (peak {self.audio_peak:.2f})")


def compare(voice_dir: str | Path, tacotron2: Tacotron2, waveglow: WaveGlow, text: str, seed: int = 0,
            steps: int = 40) -> ParityReport:
    """Run both paths for the first sentence of ``text`` with ``steps`` forced decoder steps."""
    with Voice.load(voice_dir, backend="onnxruntime", device="cpu") as voice:
        config = voice.config
        sentence = plan(text, config)[0]
        settings = SynthesisConfig(seed=seed, force_steps=steps, whole=True, sentence_pause_s=0.0)
        runtime_audio = np.concatenate([c.samples for c in voice.synthesize(sentence.text, settings)])
        utterance = voice.engine.open_utterance(sentence.ids, steps)
        masks = PrenetMasks(seed, 0, config.decoder.prenet_dim, config.decoder.prenet_dropout)
        n_steps = config.decoder.frame_room(steps) // config.decoder.frames_per_step
        utterance.decode(masks.take(n_steps))
        runtime_mel = utterance.mel(0, steps)
        utterance.close()

    torch_masks = torch.from_numpy(
        PrenetMasks(seed, 0, config.decoder.prenet_dim, config.decoder.prenet_dropout).take(n_steps))
    cols = config.audio.hop_length // config.vocoder.n_group
    z = torch.from_numpy(noise(seed, 0, config.vocoder.n_group, 0, steps * cols, config.vocoder.sigma))
    with torch.no_grad():
        mel, mel_postnet, _ = tacotron2.infer(torch.tensor([sentence.ids]), torch_masks, n_steps=steps)
        audio = waveglow.infer(mel_postnet, z)[0].numpy()
    ref_mel = mel[0].numpy()
    return ParityReport(
        steps=steps,
        mel_max_abs=float(np.abs(runtime_mel - ref_mel).max()),
        mel_peak=float(np.abs(ref_mel).max()),
        audio_max_abs=float(np.abs(runtime_audio - audio).max()),
        audio_peak=float(np.abs(audio).max()),
    )
