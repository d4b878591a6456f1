"""Size and CPU speed of candidate natural-voice presets, with random weights (issue 22).

Speed does not depend on what the weights learned, so a voice of random weights, forced to a
fixed number of mel frames (``rtvoice bench --steps``), times the runtime as the trained voice
will run. Each candidate is exported float32 and with float16 storage
(training/fp16_voice.py), and benched in alternating rounds with the shipped default voice,
so a busy shared CPU slows all of them alike::

    python -m training.natural_sizes [--rounds 3] [--steps 400]    # -> training/eval/natural-sizes.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtvoice.export.tacotron2 import Tacotron2
from rtvoice.export.voice_builder import build_voice
from rtvoice.export.waveglow import WaveGlow
from training.evaluate import REPORTS
from training.fp16_voice import convert_folder
from training.train_tacotron2 import PRESETS as T2
from training.train_waveglow import PRESETS as WG

log = logging.getLogger("training.natural_sizes")

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = {"natural": ("natural", "natural"), "natural-t2+frame": ("natural", "frame")}
"""name -> (Tacotron 2 preset, WaveGlow preset); each at 3 frames per decoder step."""


def export(t2: str, wg: str, out: Path, max_steps: int) -> None:
    torch.manual_seed(0)
    tacotron2 = Tacotron2(dataclasses.replace(T2[t2], n_frames_per_step=3, max_decoder_steps=max_steps)).eval()
    waveglow = WaveGlow(WG[wg]).eval()
    build_voice(tacotron2, waveglow, out, out.name, {"trained_by": "random weights (training/natural_sizes.py)"})


def bench(voice: Path, steps: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "rtvoice", "bench", "--voice", str(voice), "--device", "cpu",
                           "--steps", str(steps), "--runs", "3", "--warmup", "1", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=True)
    runs = json.loads(done.stdout[done.stdout.index("{"):])["runs"]
    return {k: float(np.median([r[k] for r in runs])) for k in ("rtf", "time_to_first_audio_s",
                                                                  "decoder_us_per_step", "waveglow_us_per_audio_s")}


SWEEP = [(256, 256, 128), (384, 384, 128), (384, 512, 256), (512, 512, 256), (512, 768, 256), (768, 768, 256)]
"""(attention_rnn_dim, decoder_rnn_dim, prenet_dim) timed by ``--sweep``; the encoder stays 256."""


def decoder_sweep(rounds: int, steps: int = 200, text_length: int = 60) -> dict[str, Any]:
    """Median microseconds per decoder step (one ONNX Runtime thread) of each size in :data:`SWEEP`."""
    import onnxruntime as ort

    from rtvoice.export.onnx_export import export_tacotron2

    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for a, d, pre in SWEEP:
            params = dataclasses.replace(T2["default"], attention_rnn_dim=a, decoder_rnn_dim=d, prenet_dim=pre,
                                         n_frames_per_step=3)
            folder = Path(tmp) / f"{a}-{d}-{pre}"
            folder.mkdir()
            export_tacotron2(Tacotron2(params).eval(), folder)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            sess = ort.InferenceSession(str(folder / "decoder_step.onnx"), opts, providers=["CPUExecutionProvider"])
            feeds = {}
            for i in sess.get_inputs():
                shape = [1 if s == "batch" else text_length if isinstance(s, str) else s for s in i.shape]
                feeds[i.name] = (np.ones(shape, bool) if i.type == "tensor(bool)" else np.zeros(shape, np.float32))
            sessions[f"{a}/{d}/{pre}"] = (sess, feeds, (folder / "decoder_step.onnx").stat().st_size)
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(rounds):
            for name, (sess, feeds, _size) in sessions.items():
                sess.run(None, feeds)
                start = time.perf_counter()
                for _ in range(steps):
                    sess.run(None, feeds)
                times[name].append(1e6 * (time.perf_counter() - start) / steps)
    return {name: {"us_per_step": float(np.median(t)), "rounds": t, "decoder_step_mb": sessions[name][2] / 1e6}
            for name, t in times.items()}


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.natural_sizes", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=400, help="mel frames per sentence (4.6 s of audio)")
    p.add_argument("--out", type=Path, default=REPORTS / "natural-sizes.json")
    p.add_argument("--sweep", action="store_true", help="instead: time decoder steps of several RNN sizes "
                   "(-> natural-decoder-sweep.json)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.sweep:
        result = decoder_sweep(args.rounds)
        path = args.out.with_name("natural-decoder-sweep.json")
        path.write_text(json.dumps({"command": "python -m training.natural_sizes --sweep", "date":
                                    time.strftime("%Y-%m-%d %H:%M:%S"), "sizes": result}, indent=1) + "\n")
        for name, r in result.items():
            print(f"attention/decoder/prenet {name:12s} {r['us_per_step']:7.0f} us per step (r=3: 34.8 ms of audio), "
                  f"decoder_step.onnx {r['decoder_step_mb']:.1f} MB")
        print(f"-> {path}")
        return 0
    report: dict[str, Any] = {"command": "python -m training.natural_sizes " + " ".join(argv or sys.argv[1:]),
                              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "voices": {}}
    with tempfile.TemporaryDirectory() as tmp:
        voices = {"shipped default (r=3)": ROOT / "rtvoice" / "voices" / "default"}
        for name, (t2, wg) in CANDIDATES.items():
            folder = Path(tmp) / name
            export(t2, wg, folder, args.steps + 30)
            voices[f"{name} fp32"] = folder
            convert_folder(folder, Path(tmp) / f"{name}-fp16")
            voices[f"{name} fp16"] = Path(tmp) / f"{name}-fp16"
        timings: dict[str, list[dict[str, Any]]] = {k: [] for k in voices}
        for r in range(args.rounds):
            for name, folder in voices.items():
                timings[name].append(bench(folder, args.steps))
                log.info("round %d %-28s %s", r + 1, name, timings[name][-1])
        for name, folder in voices.items():
            med = {k: float(np.median([t[k] for t in timings[name]])) for k in timings[name][0]}
            report["voices"][name] = {"mb": round(folder_mb(folder), 2), "median": med, "rounds": timings[name]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, v in report["voices"].items():
        m = v["median"]
        print(f"{name:30s} {v['mb']:6.2f} MB  rtf {m['rtf']:6.2f}x  first audio "
              f"{1000 * m['time_to_first_audio_s']:6.1f} ms  decoder {m['decoder_us_per_step']:7.0f} us/step  "
              f"waveglow {m['waveglow_us_per_audio_s']:8.0f} us per s")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
