"""Speaking rate on a GPU backend: each rate's audio against the CPU's, streamed and batched.

The time-scaled frames reach the GPU postnet through a host copy (VocodeItem.mel); the CPU
suite checks that path on an emulated CUDA runtime (tests/gpu/test_gpu_rate_emulated.py).
This runs it on a real GPU: ``python tools/gpu/rate_check.py [--backend onnxruntime|tensorrt]``.
Prints one line per text and rate; exits 1 unless every duration is within 3 % of 1 / rate
(against rate 1 on the GPU) and streamed and batched audio is within 40 dB of whole.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

import numpy as np

from rtvoice import SynthesisConfig, Voice
from rtvoice.audio import concatenate
from rtvoice.seams import snr_db

TEXTS = ["The train to Leeds leaves from platform three.", "Mind the gap between the train and the platform."]
RATES = (0.5, 0.8, 1.0, 1.5, 2.0)


async def together(voice: Voice, configs: list[SynthesisConfig]) -> list[np.ndarray]:
    async def one(text: str, config: SynthesisConfig) -> np.ndarray:
        return concatenate([c async for c in voice.stream(text, config)])

    return await asyncio.gather(*(one(t, c) for t in TEXTS for c in configs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    configs = [SynthesisConfig(seed=3, rate=r) for r in RATES]
    with Voice.load(None, backend="onnxruntime", device="cpu") as cpu:
        reference = [concatenate(cpu.synthesize(t, c)) for t in TEXTS for c in configs]
    with Voice.load(None, backend=args.backend, device=args.device) as gpu:
        print(f"{gpu.choice.backend} on {gpu.choice.device}")
        whole = [concatenate(gpu.synthesize(t, dataclasses.replace(c, whole=True))) for t in TEXTS for c in configs]
        alone = [concatenate(gpu.synthesize(t, c)) for t in TEXTS for c in configs]
        batched = asyncio.run(together(gpu, configs))
    ok = True
    for i, (ref, w, a, b) in enumerate(zip(reference, whole, alone, batched, strict=True)):
        rate = RATES[i % len(RATES)]
        base = whole[i - i % len(RATES) + RATES.index(1.0)]
        ratio = len(w) / len(base) * rate  # 1.0 when the duration scales as 1 / rate
        seams = min(snr_db(w, a), snr_db(w, b)) if len(w) == len(a) == len(b) else float("-inf")
        ok &= abs(ratio - 1) <= 0.03 and seams >= 40.0
        cpu = f"{snr_db(ref, a):.1f} dB" if len(ref) == len(a) else f"length {len(ref)} vs {len(a)}"
        print(f"text {i // len(RATES)} rate {rate}: {len(w) / 22050:.2f} s (x rate / rate-1 length = {ratio:.3f}), "
              f"streamed and batched vs whole {seams:.1f} dB; vs the CPU (informative) {cpu}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
