"""``rtvoice info``: the voice, the backend that would run it, and the GPU if any."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util

from ..cli import add_voice_options
from ..voice import Voice


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("info", help="show the voice, backend and GPU")
    add_voice_options(p)
    p.set_defaults(func=run)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _gpus() -> list[str]:
    if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
        return ["none (cuda-python not installed)"]
    from ..cuda import device_count, get_device_info, is_available

    if not is_available():
        return ["none visible"]
    out = []
    for i in range(device_count()):
        d = get_device_info(i)
        out.append(f"cuda:{i} {d.name}, compute capability {d.compute_capability[0]}.{d.compute_capability[1]}, "
                   f"{d.total_memory / 2**30:.1f} GiB")
    return out


def run(args: argparse.Namespace) -> int:
    from ..ort.sessions import available_providers

    with Voice.load(args.voice, backend=args.backend, device=args.device) as voice:
        c = voice.config
        print(f"voice:        {c.name} ({voice.folder})")
        print(f"source:       {', '.join(f'{k}={v}' for k, v in c.source.items() if not isinstance(v, dict))}")
        print(f"audio:        {c.audio.sample_rate} Hz, hop {c.audio.hop_length}, "
              f"{c.audio.n_mel_channels} mel channels")
        print(f"decoder:      attention RNN {c.decoder.attention_rnn_dim}, decoder RNN {c.decoder.decoder_rnn_dim}, "
              f"{c.decoder.frames_per_step} frame(s) per step, gate threshold {c.decoder.gate_threshold}, "
              f"max {c.decoder.max_decoder_steps} frames")
        print(f"streaming:    first chunk {c.streaming.first_chunk_frames} frames, then {c.streaming.chunk_frames}, "
              f"context {c.streaming.context_frames}, cross-fade {c.streaming.crossfade_samples} samples")
        print(f"backend:      {voice.choice.backend} on {voice.choice.device} ({voice.choice.reason})")
    ort_version = _version("onnxruntime")
    if ort_version == "not installed":
        ort_version = _version("onnxruntime-gpu")
    print(f"onnxruntime:  {ort_version} (providers: {', '.join(available_providers())})")
    print(f"tensorrt:     {_version('tensorrt')}")
    for line in _gpus():
        print(f"gpu:          {line}")
    return 0
