"""Issue 26 part 2 on a GPU: fp16 postnet + WaveGlow against fp32, ONNX Runtime CUDA, one run.

    OUT=$OUT python tools/gpu/fp16_vocoder_check.py [VOICE_DIR ...] [--dry-run]

Per voice (default: the shipped default voice; add e.g. a full-size random voice built with
``build_engines.py --random full --waveglow-channels 512``): makes its fp16 twin
(rtvoice.export.fp16_graphs), then on ``cuda:0`` with the runtime's own ORT CUDA options:

- WaveGlow alone, fp32 and fp16 interleaved: ms per audio second for a streaming window
  (128 frames, batch 1) and a whole utterance (640 frames), medians of 20; fp16's audio SNR
  against fp32 on the same mel and noise;
- the whole voice through ``Voice.load(device="cuda:0")``: fp16 against fp32 (SNR), and
  fp16's streamed against whole (issue 26 wants > 60 dB), 300 forced frames.

Writes ``$OUT/fp16_vocoder.json`` after each voice and prints a summary. ``--dry-run`` uses
the CPU provider (the CPU suite checks the script runs).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rtvoice import SynthesisConfig, Voice  # noqa: E402
from rtvoice.audio import concatenate  # noqa: E402
from rtvoice.export.fp16_graphs import convert_voice  # noqa: E402
from rtvoice.seams import snr_db  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs far away into the woods."


def _session(path: Path, dry: bool) -> Any:
    import onnxruntime as ort

    if dry:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    options = {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC", "cudnn_conv1d_pad_to_nc1d": "1"}
    return ort.InferenceSession(str(path), providers=[("CUDAExecutionProvider", options)])


def waveglow(voice: Path, half: Path, dry: bool, runs: int) -> dict[str, Any]:
    config = json.loads((voice / "voice.json").read_text())
    hop, group = config["audio"]["hop_length"], config["vocoder"]["n_group"]
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for frames in (128, 640):
        mel = (rng.standard_normal((1, config["audio"]["n_mel_channels"], frames)) - 5.0).astype(np.float32)
        noise = (0.6 * rng.standard_normal((1, group, frames * hop // group))).astype(np.float32)
        feeds = {"mel": mel, "noise": noise}
        sessions = {"fp32": _session(voice / config["graphs"]["waveglow"], dry),
                    "fp16": _session(half / config["graphs"]["waveglow"], dry)}
        audio = {name: s.run(None, feeds)[0] for name, s in sessions.items()}  # also the warm-up
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(runs):
            for name, s in sessions.items():
                start = time.perf_counter()
                s.run(None, feeds)
                times[name].append(time.perf_counter() - start)
        seconds = frames * hop / config["audio"]["sample_rate"]
        out[f"{frames}_frames"] = {
            **{f"{name}_ms_per_audio_s": 1e3 * statistics.median(t) / seconds for name, t in times.items()},
            "fp16_snr_db": snr_db(audio["fp32"], audio["fp16"]),
            "fp16_finite": bool(np.isfinite(audio["fp16"]).all())}
    return out


def voice_level(voice: Path, half: Path, dry: bool) -> dict[str, Any]:
    device = "cpu" if dry else "cuda:0"
    stream, whole = SynthesisConfig(seed=0, force_steps=300), SynthesisConfig(seed=0, force_steps=300, whole=True)
    with Voice.load(voice, device=device) as v32, Voice.load(half, device=device) as v16:
        a32 = concatenate(v32.synthesize(TEXT, stream))
        a16 = concatenate(v16.synthesize(TEXT, stream))
        w16 = concatenate(v16.synthesize(TEXT, whole))
        engine = v16._engine
        backend = f"{engine.name} on {engine.device}"
    return {"fp16_vs_fp32_streamed_snr_db": snr_db(a32, a16), "fp16_streamed_vs_whole_snr_db": snr_db(w16, a16),
            "backend": backend}


def main(argv: list[str]) -> int:
    dry = "--dry-run" in argv
    voices = [Path(a) for a in argv if a != "--dry-run"] or [ROOT / "rtvoice" / "voices" / "default"]
    out_dir = Path(os.environ.get("OUT", "/tmp/fp16-check-out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"dry_run": dry, "voices": {}}
    try:
        import subprocess

        report["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                       capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        report["gpu"] = None
    for voice in voices:
        entry: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            half = Path(tmp) / "fp16"
            try:
                convert_voice(voice, half)
                entry["waveglow"] = waveglow(voice, half, dry, 3 if dry else 20)
                entry["voice"] = voice_level(voice, half, dry)
            except Exception as exc:  # one voice's failure is recorded; the next voice still runs
                entry["error"] = f"{type(exc).__name__}: {exc}"
        report["voices"][str(voice)] = entry
        (out_dir / "fp16_vocoder.json").write_text(json.dumps(report, indent=2))
        print(json.dumps({str(voice): entry}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
