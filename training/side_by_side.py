"""A voice and its Piper teacher timed side by side on this CPU, in one run (issue 22, item 4).

Each of the first N held-out sentences is spoken by both, in alternating order (voice first on
even sentences, Piper first on odd ones), so that a busy machine slows both alike. Piper runs
as a user runs it: ``piper-tts``'s ``PiperVoice.synthesize`` with onnxruntime's default
threads, phonemization included; its first audio is its first sentence, whole. rtvoice
runs its voice with the voice's own settings (``Voice.load``, CPU) and streams; its first audio
is its first chunk. One warm-up sentence each is not timed::

    python -m training.side_by_side --voice DIR [--sentences 20]   # -> training/eval/side-by-side-NAME.json

``rtf`` is seconds of audio per second of wall time, as everywhere in rtvoice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.data import CORPUS, read_heldout
from training.evaluate import REPORTS
from training.teacher import piper_voice


def timed(chunks: Callable[[], Iterable[Any]], samples: Callable[[Any], int], rate: int) -> dict[str, float]:
    """Wall time to the first chunk and to the last, and seconds of audio, of one synthesis."""
    start = time.perf_counter()
    first, n = None, 0
    for chunk in chunks():
        if first is None:
            first = time.perf_counter() - start
        n += samples(chunk)
    total = time.perf_counter() - start
    return {"first_audio_s": first or total, "wall_s": total, "audio_s": n / rate}


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    audio, wall = sum(r["audio_s"] for r in runs), sum(r["wall_s"] for r in runs)
    return {"sentences": len(runs), "audio_s": round(audio, 2), "wall_s": round(wall, 3), "rtf": round(audio / wall, 2),
            "first_audio_median_ms": round(1000 * float(np.median([r["first_audio_s"] for r in runs])), 1),
            "first_audio_max_ms": round(1000 * max(r["first_audio_s"] for r in runs), 1)}


def compare(voice: Any, piper: Any, texts: Sequence[str]) -> dict[str, Any]:
    """Time ``voice`` (a loaded rtvoice Voice) and ``piper`` (a PiperVoice) on each text, in alternating order.

    Returns each one's :func:`summary` and the per-sentence runs. One warm-up sentence each, untimed.
    """
    rate = piper.config.sample_rate

    def ours(text: str) -> dict[str, float]:
        return timed(lambda: voice.synthesize(text), lambda c: int(c.samples.size), voice.sample_rate)

    def theirs(text: str) -> dict[str, float]:
        return timed(lambda: piper.synthesize(text), lambda c: int(c.audio_float_array.size), rate)

    ours("A warm-up sentence, not timed.")
    theirs("A warm-up sentence, not timed.")
    runs: dict[str, list[dict[str, float]]] = {"voice": [], "piper": []}
    for n, text in enumerate(texts):
        order = (("voice", ours), ("piper", theirs)) if n % 2 == 0 else (("piper", theirs), ("voice", ours))
        for name, speak in order:
            runs[name].append(speak(text))
        print(f"{n + 1:3d} voice {runs['voice'][-1]['wall_s']:6.3f} s, piper {runs['piper'][-1]['wall_s']:6.3f} s "
              f"for {runs['voice'][-1]['audio_s']:.1f} / {runs['piper'][-1]['audio_s']:.1f} s of audio", flush=True)
    return {**{name: summary(r) for name, r in runs.items()}, "per_sentence": runs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.side_by_side", description=__doc__.split("\n\n")[0])
    p.add_argument("--voice", type=Path, required=True, help="rtvoice voice folder")
    p.add_argument("--sentences", type=int, default=20, help="the first N held-out sentences")
    p.add_argument("--out", type=Path, default=REPORTS)
    args = p.parse_args(argv)
    from rtvoice import Voice

    texts = [r.text for r in read_heldout(CORPUS)][: args.sentences]
    piper = piper_voice()
    with Voice.load(args.voice, backend="onnxruntime", device="cpu") as voice:
        measured = compare(voice, piper, texts)
    report = {"kind": "side-by-side", "voice": str(args.voice), "teacher": "piper-tts PiperVoice, en_US-joe-medium",
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": "python -m training.side_by_side " + " ".join(sys.argv[1:] if argv is None else argv),
              **measured}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"side-by-side-{args.voice.name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    for name in ("voice", "piper"):
        s = report[name]
        print(f"{name:6s} {s['rtf']:6.2f}x real time, first audio median {s['first_audio_median_ms']:.1f} ms "
              f"(max {s['first_audio_max_ms']:.1f}) over {s['sentences']} sentences")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
