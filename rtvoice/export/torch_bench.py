"""The PyTorch side of ``rtvoice bench --compare torch`` (build extra: torch).

Times rtvoice's PyTorch reference models, on the same weights as the voice, the way
NVIDIA's own inference script runs them: encoder, a forced number of decoder steps, postnet,
WaveGlow over the whole mel, one synchronize at the end.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ..config import VoiceConfig
from ..engine.randomness import PrenetMasks, noise
from ..text import text_to_ids
from .checkpoint import load_tacotron2, load_waveglow
from .tacotron2 import Tacotron2
from .voice_builder import random_models
from .waveglow import WaveGlow


def reference_models(config: VoiceConfig, checkpoints: tuple[Path, Path] | None = None) -> tuple[Tacotron2, WaveGlow]:
    """The PyTorch models a voice was built from: regenerated for random voices, else loaded."""
    if checkpoints is not None:
        return load_tacotron2(checkpoints[0]), load_waveglow(checkpoints[1])
    source = config.source
    if "random" not in source:
        raise ValueError("This voice was built from checkpoints: pass them with --checkpoints T.pt W.pt.")
    channels = int(source.get("waveglow", {}).get("n_channels", 256))
    return random_models(source["random"], int(source.get("seed", 0)), channels)


def time_torch(config: VoiceConfig, text: str, steps: int, device: str, runs: int = 5, warmup: int = 2,
               fp16: bool = False, checkpoints: tuple[Path, Path] | None = None) -> dict[str, Any]:
    """Median latency of the PyTorch reference for ``text`` with ``steps`` forced decoder steps."""
    tacotron2, waveglow = reference_models(config, checkpoints)
    dev = torch.device("cuda" if device.startswith("cuda") else "cpu",
                       int(device.split(":")[1]) if ":" in device else 0)
    tacotron2, waveglow = tacotron2.to(dev).eval(), waveglow.to(dev).eval()
    waveglow.freeze_inverses()
    ids = torch.tensor([text_to_ids(text, config.text.symbols)], device=dev)
    masks = torch.from_numpy(PrenetMasks(0, 0, config.decoder.prenet_dim).take(steps)).to(dev)
    cols = config.audio.hop_length // config.vocoder.n_group
    z = torch.from_numpy(noise(0, 0, config.vocoder.n_group, 0, steps * cols, config.vocoder.sigma)).to(dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    latencies, decoder_times = [], []
    with torch.no_grad(), torch.autocast(dev.type, enabled=fp16, dtype=torch.float16):
        for i in range(warmup + runs):
            sync()
            t0 = time.perf_counter()
            _, mel_postnet, _ = tacotron2.infer(ids, masks, n_steps=steps)
            sync()
            t1 = time.perf_counter()
            waveglow.infer(mel_postnet, z.to(mel_postnet.dtype))
            sync()
            t2 = time.perf_counter()
            if i >= warmup:
                latencies.append(t2 - t0)
                decoder_times.append(t1 - t0)
    latency = statistics.median(latencies)
    audio_s = steps * config.audio.hop_length / config.audio.sample_rate
    return {"latency_s": latency, "tacotron2_s": statistics.median(decoder_times),
            "decoder_us_per_step": 1e6 * statistics.median(decoder_times) / steps,
            "rtf": audio_s / latency, "precision": "fp16 autocast" if fp16 else "fp32", "runs": runs}
