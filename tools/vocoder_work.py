"""The vocoder's time per second of audio heard: whole, fixed 64-frame chunks, doubling chunks.

    python tools/vocoder_work.py [FRAMES] [ROUNDS]

Default voice, ONNX Runtime CPU, one process, the three modes interleaved in every round
(for a shared, loaded machine); prints medians, per-round ratios, the frames vocoded per
frame heard, and each mode's SNR against whole audio. docs/design.md quotes it.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rtvoice import SynthesisConfig, Voice
from rtvoice.audio import concatenate
from rtvoice.ort import cpu_engine
from rtvoice.seams import snr_db, vocoded_per_heard

FOLDER = Path(__file__).resolve().parents[1] / "rtvoice" / "voices" / "default"
TEXT = "The quick brown fox jumps over the lazy dog, and then it runs far away into the woods."
MODES: dict[str, dict[str, Any]] = {"whole": {"whole": True},
                                    "fixed 64": {"chunk_frames": 64, "first_chunk_frames": 16}, "doubling": {}}


def main(frames: int, rounds: int) -> None:
    spent = [0.0]
    vocode = cpu_engine.CpuUtterance.vocode

    def timed(self: cpu_engine.CpuUtterance, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return vocode(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    cpu_engine.CpuUtterance.vocode = timed  # type: ignore[method-assign]
    ms: dict[str, list[float]] = {mode: [] for mode in MODES}
    audio = {}
    with Voice.load(FOLDER, backend="onnxruntime", device="cpu") as voice:
        for r in range(rounds + 1):  # round 0 warms up
            for mode, extra in MODES.items():
                spent[0] = 0.0
                config = SynthesisConfig(seed=0, force_steps=frames, sentence_pause_s=0.0, **extra)
                audio[mode] = concatenate(voice.synthesize(TEXT, config))
                if r:
                    ms[mode].append(1e3 * spent[0] / (len(audio[mode]) / voice.sample_rate))
        for mode, extra in MODES.items():
            heard = vocoded_per_heard(voice.config, SynthesisConfig(**extra).resolve(voice.config), frames)
            snr = snr_db(audio["whole"], audio[mode])
            print(f"{mode:9s} {statistics.median(ms[mode]):6.2f} ms per audio second (median of {rounds}); "
                  f"{heard:.2f} frames vocoded per frame heard; SNR vs whole {snr:.1f} dB")

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(ms[a], ms[b], strict=True))

    print(f"per-round ratios (medians): fixed/whole {ratio('fixed 64', 'whole'):.2f}, "
          f"doubling/whole {ratio('doubling', 'whole'):.2f}, doubling/fixed {ratio('doubling', 'fixed 64'):.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 600, int(sys.argv[2]) if len(sys.argv) > 2 else 21)
