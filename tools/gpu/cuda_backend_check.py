#!/usr/bin/env python3
"""Issue 26 on the GPU machine: compile, parity and timing of the cuda backend's decoder kernels.

    python3 tools/gpu/cuda_backend_check.py STAGE [--dry-run] [--out DIR]

Stages (tools/gpu/cuda_backend_check.sh runs each under its own timeout):
  env      GPU name, NVRTC version, compile times (cold and cached) for sm_80, sm_90 and this GPU
  voices   the tiny random voice and a full-size random decoder (ONNX export, no WaveGlow)
  parity   kernel vs ONNX Runtime (CPU) and vs the numpy reference with the same fp16 weights:
           one step from each of ONNX Runtime's states, then 12 steps fed back, per mode
  bench    µs per decoder step, full-size voice, batch 1/4/16/64, rows of 512 symbols holding
           130: phase kernels in a CUDA graph, fused kernel per step in a graph, persistent
           kernel, and PyTorch fp16 autocast with cudnn.benchmark (NVIDIA's way); and each
           phase kernel alone (64 launches in a graph) at batch 1 and 16: where the time goes
  sweep    the candidate kernel shapes of tools/gpu/kernel_variants.py beside the engine's, the
           bench's way: ptxas registers and spills, parity, µs a step at batch 1/16 (64 for
           register caps), the energy and context kernels alone; within its own time budget
  engine   Voice.load(backend="cuda") in each kernel mode (phases, fused, persistent) side by side,
           then ONNX Runtime CUDA (the same GPU engine, only the decoder step differs) and the
           CPU engine: time to first audio and to the last chunk, the decoder's µs per step as
           the engine runs it (decode_batch at batch 1/4/16, CUDA events), SNR between them
           (needs onnxruntime-gpu); then once without force_steps: the gate stop (on the device
           in persistent mode), steps decoded per mode, persistent's audio equal to phases';
           within its own time budget (tools/gpu/engine_timing.py)
  profile  where a step's time goes in the engine, per kernel mode: decode_batch at batch 1 under
           torch.profiler (CUPTI), reduced to device busy and idle time, gaps, launches, kernel and
           copy times and host CUDA API time per step (tools/gpu/step_profile.py); kept under
           "profile" in engine.json (no file of its own: the device brings back 8)
  table    issue 26's target table (ENGINE_BENCH=1 in cuda_backend_check.sh): the full-size voice
           with WaveGlow 512 on the cuda backend, ONNX Runtime CUDA and PyTorch fp16, one stream
           and the most streams within TTFA p99 150 ms, in $TABLE_BUDGET_S (tools/gpu/issue_table.py)
  summary  the figures that matter from the stages above, in OUT/summary.json
Each stage writes OUT/<stage>.json as it goes, so a stage cut off by its timeout leaves
what it had. --dry-run does everything but CUDA calls (what the CPU tests run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "cuda_backend"), str(Path(__file__).parent)]

from rtvoice.engine.cuda_engine import NVRTC_OPTIONS  # noqa: E402
from rtvoice.engine.cuda_step import DEFAULT_SHAPE, KERNEL_SOURCE, KERNELS, PHASES  # noqa: E402
from rtvoice.engine.graphs import STATE_NAMES  # noqa: E402
from rtvoice.engine.step_reference import reference_step  # noqa: E402
from rtvoice.engine.step_weights import load_packed  # noqa: E402

WORK = Path("/tmp/rtvoice-cuda-check")
VOICES = {"tiny": WORK / "tiny", "default": ROOT / "rtvoice" / "voices" / "default", "full": WORK / "full"}
BENCH_VOICE = "full"
BENCH_BATCHES = (1, 4, 16, 64)
BENCH = {"text_length": 512, "symbols": 130, "steps": 64}
"""Rows of 512 symbols holding 130 (the 128-character phrase), 64 steps per CUDA graph."""
SWEEP_BUDGET_S = float(os.environ.get("SWEEP_BUDGET_S", "110"))
"""The sweep stops starting shapes after this; cuda_backend_check.sh gives the stage 140 s.

The environment may lower it: the CPU test of the files left in $OUT passes 0 (a sweep.json of
skipped shapes), since tests/cuda_backend/test_kernel_shapes.py compiles every shape already."""
SWEEP_PARITY = {"lengths": [60, 23], "text_length": 64, "steps": 4}
"""Each shape's parity case: two rows (partial energy tiles at every TILE), 4 steps fed back."""


class Report:
    """A stage's results, rewritten to OUT/<stage>.json after every addition.

    With ``into``, they go under the key ``stage`` of OUT/<into>.json instead, beside that
    stage's own results (the device brings back at most 8 files).
    """

    def __init__(self, out: Path, stage: str, into: str | None = None) -> None:
        self.path = out / f"{into or stage}.json"
        self.into = into
        self.data: dict[str, Any] = {"stage": stage, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.save()

    def add(self, key: str, value: Any) -> None:
        self.data[key] = value
        print(f"[{self.data['stage']}] {key}: {json.dumps(value, default=str)[:400]}", flush=True)
        self.save()

    def save(self) -> None:
        data = self.data
        if self.into is not None:
            try:
                data = json.loads(self.path.read_text()) if self.path.is_file() else {"stage": self.into}
            except ValueError:  # the other stage was cut off mid-write: keep what is readable of it
                data = {"stage": self.into, "unreadable": self.path.read_text()[-2000:]}
            data[self.data["stage"]] = self.data
        self.path.write_text(json.dumps(data, indent=1, default=str))


def _device() -> tuple[Any, int, int, str]:
    from rtvoice.cuda import get_device_info, set_device
    from rtvoice.engine.cuda_engine import load_module

    set_device(0)
    info = get_device_info(0)
    module, sms = load_module(0)
    return module, sms, info.compute_capability[0] * 10 + info.compute_capability[1], info.name


def stage_env(report: Report, dry: bool) -> None:
    from rtvoice.cuda import nvrtc

    report.add("nvrtc", list(nvrtc.version()))
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        smi = f"nvidia-smi failed: {exc}"
    report.add("nvidia_smi", smi)
    source = KERNEL_SOURCE.read_text()
    archs = [80, 90]
    if not dry:
        from rtvoice.cuda import get_device_info

        cc = get_device_info(0).compute_capability
        report.add("device", {"name": get_device_info(0).name, "compute_capability": list(cc)})
        archs.append(cc[0] * 10 + cc[1])
    options = (*NVRTC_OPTIONS, *DEFAULT_SHAPE.defines())  # the engine's cubin
    for arch in dict.fromkeys(archs):
        cache = WORK / "kernel-cache"
        for f in cache.glob(f"*sm{arch}-*.cubin"):
            f.unlink()
        cold = nvrtc.cached_cubin(source, KERNEL_SOURCE.name, arch, options, cache_dir=cache)
        warm = nvrtc.cached_cubin(source, KERNEL_SOURCE.name, arch, options, cache_dir=cache)
        report.add(f"compile_sm{arch}", {"cold_s": round(cold.seconds, 3), "cached_s": round(warm.seconds, 4),
                                         "cubin_bytes": len(cold.cubin), "cached": warm.cached})
    if not dry:
        module, sms, arch, name = _device()
        smem = 12 * 1024  # about what the full-size voice with 512-symbol rows asks (cuda_step.smem_bytes)
        report.add("occupancy", {k: module.max_blocks_per_sm(k, 256, smem) for k in KERNELS} | {"sms": sms})


def stage_voices(report: Report, dry: bool) -> None:
    from rtvoice.export.onnx_export import export_tacotron2
    from rtvoice.export.voice_builder import build_voice, random_models, voice_config

    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not (VOICES["tiny"] / "voice.json").is_file():
        tacotron2, waveglow = random_models("tiny", seed=0)
        build_voice(tacotron2, waveglow, VOICES["tiny"], "tiny", {"random": "tiny", "seed": 0})
    report.add("tiny_s", round(time.perf_counter() - t0, 2))
    t0 = time.perf_counter()
    if not (VOICES["full"] / "voice.json").is_file():
        tacotron2, waveglow = random_models("full", seed=0)
        VOICES["full"].mkdir(parents=True, exist_ok=True)
        export_tacotron2(tacotron2, VOICES["full"])  # the decoder is what is measured: no WaveGlow export
        voice_config("full-random", tacotron2, waveglow, {"random": "full", "seed": 0}).save(VOICES["full"])
    report.add("full_s", round(time.perf_counter() - t0, 2))


def _errors(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, float]:
    """Max abs error relative to the largest |value| of each output."""
    return {k: float(np.abs(got[k] - want[k]).max() / (np.abs(want[k]).max() + 1e-6)) for k in want}


def _reference_run(packed: Any, inputs: dict[str, np.ndarray], masks: np.ndarray) -> dict[str, np.ndarray]:
    """The numpy reference fed back for len(masks) steps, as the harness reads its results."""
    x, mels, gates = dict(inputs), [], []
    for m in masks:
        x["prenet_masks"] = m
        y = reference_step(packed, x)
        mels.append(y["mel_frame"])
        gates.append(y["gate"])
        x = {**x, "decoder_input": y["mel_frame"], **{n: y[f"next_{n}"] for n in STATE_NAMES}}
    final = {f"next_{n}": x[n] for n in STATE_NAMES}
    return {"mel": np.stack(mels), "gate": np.stack(gates), **final}


def stage_parity(report: Report, dry: bool) -> None:
    """Every voice in the safe mode first, then each riskier mode (a hang loses the least)."""
    from step_cases import step_cases

    device = None if dry else _device()
    setups = {}
    for voice, folder in VOICES.items():
        packed = load_packed(folder / "decoder_step.onnx")
        lengths = [60] if voice == "full" else [7, 3, 12]
        cases = step_cases(folder, lengths, steps=12, text_length=64 if voice == "full" else None)
        masks = np.stack([c.inputs["prenet_masks"] for c in cases])
        ref = _reference_run(packed, cases[0].inputs, masks)
        onnx_run = {"mel": np.stack([c.outputs["mel_frame"] for c in cases]),
                    "gate": np.stack([c.outputs["gate"] for c in cases])}
        report.add(f"{voice}_reference_fp16_vs_onnx_12_steps", _errors(ref, onnx_run))
        setups[voice] = (packed, lengths, cases, masks, ref, onnx_run)
    if device is None:
        return
    from kernel_harness import Harness

    module, sms, _, _ = device
    for mode in ("phases", "fused", "persistent", "persistent_coop"):
        for voice, (packed, lengths, cases, masks, ref, onnx_run) in setups.items():
            t = cases[0].inputs["memory"].shape[1]
            try:
                h = Harness(packed, module, sms, len(lengths), t, len(cases), mode)
                try:
                    one: dict[str, Any] = {}
                    for i, case in enumerate(cases[:4]):  # one step from ONNX Runtime's own state
                        h.load(case.inputs, case.inputs["prenet_masks"][None])
                        h.enqueue(1)
                        got = h.read(1)
                        want = {"mel": case.outputs["mel_frame"][None], "gate": case.outputs["gate"][None],
                                **{f"next_{n}": case.outputs[f"next_{n}"] for n in STATE_NAMES}}
                        one[f"step{i}_vs_onnx"] = max(_errors(got, want).values())
                        mine = reference_step(packed, case.inputs)
                        mine = {"mel": mine["mel_frame"][None], "gate": mine["gate"][None],
                                **{f"next_{n}": mine[f"next_{n}"] for n in STATE_NAMES}}
                        one[f"step{i}_vs_reference"] = _errors(got, mine)
                    report.add(f"{voice}_{mode}_one_step", one)
                    h.load(cases[0].inputs, masks)
                    h.enqueue(len(cases))
                    got = h.read(len(cases))
                    report.add(f"{voice}_{mode}_12_steps_vs_reference", _errors(got, ref))
                    report.add(f"{voice}_{mode}_12_steps_vs_onnx", _errors(got, onnx_run))
                    if mode.startswith("persistent"):
                        h.load(cases[0].inputs, masks)
                        h.enqueue(len(cases), stop_on_gate=1e-9)  # every gate fires at once: one step
                        report.add(f"{voice}_{mode}_gate_stop_steps", int(h.read(1)["steps_done"][0]))
                finally:
                    h.close()
            except Exception as exc:  # one mode failing must not hide the others' results
                report.add(f"{voice}_{mode}_error", "".join(traceback.format_exception(exc))[-2000:])


def stage_bench(report: Report, dry: bool) -> None:
    from step_cases import encode

    from rtvoice.config import VoiceConfig

    folder = VOICES[BENCH_VOICE]
    packed = load_packed(folder / "decoder_step.onnx")
    config = VoiceConfig.load(folder)
    T, L, k = BENCH["text_length"], BENCH["symbols"], BENCH["steps"]
    report.add("setup", {"voice": BENCH_VOICE, "text_length": T, "symbols": L, "steps_per_graph": k})
    if dry:
        return
    from kernel_harness import Harness

    module, sms, _, name = _device()
    report.add("gpu", name)
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {}
    statics = {B: encode(folder, config, [L] * B, T) for B in BENCH_BATCHES}
    for mode in ("phases", "fused", "persistent", "persistent_coop"):
        for B in BENCH_BATCHES:
            try:
                inputs, masks = _bench_inputs(packed, statics[B], B, T, k, rng)
                h = Harness(packed, module, sms, B, T, k, mode)
                try:
                    h.load(inputs, masks)
                    h.capture(k)
                    h.time_us_per_step(k, 2, graph=True)
                    results.setdefault(mode, {})[f"b{B}"] = round(h.time_us_per_step(k, 5, graph=True), 2)
                    if mode != "phases" and B == 1:  # direct launches, no graph
                        results[mode]["b1_no_graph"] = round(h.time_us_per_step(k, 5, graph=False), 2)
                    if mode == "phases" and B in (1, 16):  # where the time goes, phase by phase
                        report.add(f"phase_us_b{B}", {name: round(h.phase_us(name), 2) for name in PHASES})
                finally:
                    h.close()
            except Exception as exc:
                results.setdefault(mode, {})[f"b{B}_error"] = str(exc)[-500:]  # type: ignore[assignment]
            report.add("us_per_step", results)
    report.add("torch_fp16_us_per_step", _torch_step_us(folder, T=L, steps=k))


def _bench_inputs(packed: Any, static: dict[str, np.ndarray], B: int, T: int, k: int,
                  rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Step 0's inputs (zero state, the encoder's output) and ``k`` steps of prenet masks."""
    d = packed.dims
    inputs = {"decoder_input": np.zeros((B, d.r * d.n_mel), np.float32), **static,
              **{n: np.zeros((B, e), np.float32) for n, e in {
                  "attention_hidden": d.attention_rnn, "attention_cell": d.attention_rnn,
                  "decoder_hidden": d.decoder_rnn, "decoder_cell": d.decoder_rnn,
                  "attention_weights": T, "attention_weights_cum": T,
                  "attention_context": d.encoder}.items()}}
    return inputs, ((rng.random((k, B, 2, d.prenet)) >= 0.5) * 2.0).astype(np.float32)


def _gpu() -> tuple[int, int]:
    """(SMs, sm_XY as XY) of device 0."""
    from cuda.bindings import runtime

    from rtvoice.cuda import call, get_device_info, set_device

    set_device(0)
    cc = get_device_info(0).compute_capability
    sms = int(call(runtime.cudaDeviceGetAttribute, runtime.cudaDeviceAttr.cudaDevAttrMultiProcessorCount, 0))
    return sms, cc[0] * 10 + cc[1]


def _variant_launcher(cubin: bytes, shape: Any) -> Any:
    """The kernels of one shape, loaded from its cubin (CPU tests put an emulation here)."""
    from rtvoice.cuda.module import CudaModule

    return CudaModule(cubin, KERNELS)


def stage_sweep(report: Report, dry: bool) -> None:
    """Kernel shapes side by side in one run (tools/gpu/kernel_variants.py); the engine's shape first.

    Per shape: ptxas's registers and spills (NVRTC's log), the fused kernel's blocks an SM,
    parity against the numpy reference (two rows, 4 steps fed back, in each mode timed), µs a
    step at its batches (the bench's method: 64 steps in a CUDA graph, CUDA events, medians),
    and its phase kernels alone. Stops starting shapes after SWEEP_BUDGET_S.
    """
    from kernel_harness import Harness
    from kernel_variants import SWEEP, build
    from step_cases import encode, step_cases

    from rtvoice.config import VoiceConfig
    from rtvoice.engine.cuda_step import smem_bytes

    deadline = time.monotonic() + SWEEP_BUDGET_S
    folder = VOICES[BENCH_VOICE]
    packed = load_packed(folder / "decoder_step.onnx")
    config = VoiceConfig.load(folder)
    T, L, k = BENCH["text_length"], BENCH["symbols"], BENCH["steps"]
    report.add("setup", {"voice": BENCH_VOICE, "text_length": T, "symbols": L, "steps_per_graph": k,
                         "shapes": {v.name: v.shape.name for v in SWEEP}, "parity": SWEEP_PARITY})
    sms, arch = (4, 90) if dry else _gpu()
    cases = step_cases(folder, SWEEP_PARITY["lengths"], steps=SWEEP_PARITY["steps"],
                       text_length=SWEEP_PARITY["text_length"])
    masks = np.stack([c.inputs["prenet_masks"] for c in cases])
    ref = _reference_run(packed, cases[0].inputs, masks)
    batches = sorted({B for v in SWEEP for B in v.batches})
    statics = {} if dry else {B: encode(folder, config, [L] * B, T) for B in batches}
    rng = np.random.default_rng(0)
    ptxas: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for v in SWEEP:
        if time.monotonic() > deadline:
            results[v.name] = "skipped: the sweep's time budget was spent"
            report.add("us_per_step", results)
            continue
        try:
            built = build(v.shape, arch)
            ptxas[v.name] = {"compile_s": round(built.seconds, 2), **built.usage}
            report.add(f"ptxas_sm{arch}", ptxas)
            if dry:
                continue
            launcher = _variant_launcher(built.cubin, v.shape)
            row: dict[str, Any] = {"fused_blocks_per_sm": launcher.max_blocks_per_sm(
                "k_fused", 256, smem_bytes(packed.dims, T, v.shape))}
            results[v.name] = row
            try:
                for mode in v.modes:
                    h = Harness(packed, launcher, sms, len(cases[0].inputs["mask"]), cases[0].inputs["mask"].shape[1],
                                len(cases), mode, v.shape)
                    try:
                        h.load(cases[0].inputs, masks)
                        h.enqueue(len(cases))
                        row[f"{mode}_parity"] = max(_errors(h.read(len(cases)), ref).values())
                    finally:
                        h.close()
                for mode in v.modes:
                    for B in v.batches:
                        inputs, step_masks = _bench_inputs(packed, statics[B], B, T, k, rng)
                        h = Harness(packed, launcher, sms, B, T, k, mode, v.shape)
                        try:
                            h.load(inputs, step_masks)
                            h.capture(k)
                            h.time_us_per_step(k, 2, graph=True)
                            row[f"{mode}_b{B}"] = round(h.time_us_per_step(k, 5, graph=True), 2)
                            if mode == "phases" or (mode == v.modes[0] and "phases" not in v.modes):
                                for name in v.phases:
                                    row[f"{name}_b{B}"] = round(h.phase_us(name), 2)
                        finally:
                            h.close()
                        report.add("us_per_step", results)
            finally:
                close = getattr(launcher, "close", None)
                if close is not None:
                    close()
        except Exception as exc:  # one shape failing must not hide the others' results
            results[v.name] = {**(results.get(v.name) or {}), "error": "".join(traceback.format_exception(exc))[-1500:]}
        report.add("us_per_step", results)


def _torch_step_us(folder: Path, T: int, steps: int, device: str = "cuda") -> dict[str, float]:
    """The PyTorch decoder step rtvoice exports, fp16 autocast, cudnn.benchmark, batch 1 (µs per step)."""
    import torch

    from rtvoice.config import VoiceConfig
    from rtvoice.export.tacotron2 import DecoderState
    from rtvoice.export.torch_bench import reference_models

    torch.backends.cudnn.benchmark = True
    model = reference_models(VoiceConfig.load(folder))[0].to(device).eval()
    p = model.params
    cuda = device.startswith("cuda")
    out: dict[str, float] = {}
    with torch.no_grad(), torch.autocast("cuda" if cuda else "cpu", dtype=torch.float16 if cuda else torch.bfloat16):
        text = torch.randint(1, p.n_symbols, (1, T), device=device)
        memory, processed, mask = model.encode(text, torch.tensor([T], device=device))
        masks = (torch.rand(steps, 1, 2, p.prenet_dim, device=device) >= 0.5).float() * 2
        for run in range(3):
            state = DecoderState.zeros(p, 1, T, memory)
            frame = memory.new_zeros(1, p.n_mel_channels)
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(steps):
                frames, gate, state = model.decoder.step(frame, state, memory, processed, mask, masks[i])
                frame = frames[:, -p.n_mel_channels:]
            if cuda:
                torch.cuda.synchronize()  # host clock around a synchronized loop: what a caller waits
            out[f"run{run}"] = round((time.perf_counter() - t0) * 1e6 / steps, 2)
    return out


def stage_engine(report: Report, dry: bool) -> None:
    """The engine in each kernel mode, ONNX Runtime CUDA and the CPU (tools/gpu/engine_timing.py)."""
    import os

    from engine_timing import ENGINE_BUDGET_S, engine_runs, open_voice, timing_event

    from rtvoice.ort.sessions import available_providers

    if "CUDAExecutionProvider" not in available_providers():
        report.add("skipped", "onnxruntime has no CUDAExecutionProvider (carry onnxruntime-gpu: device-run.sh)")
        return
    if dry:
        return
    os.environ.pop("RTVOICE_CUDA_STEP", None)  # the mode comes from each run's batching.cuda_step
    engine_runs(report, VOICES, open_voice, timing_event, time.monotonic() + ENGINE_BUDGET_S)


def stage_profile(report: Report, dry: bool) -> None:
    """Where a step's time goes in the engine, per kernel mode (tools/gpu/step_profile.py); into engine.json.

    A dry run profiles the CPU engine on the CPU (no CUDA activity): all but the device's part.
    """
    import os

    from engine_timing import open_voice
    from step_profile import DRY_PLAN, GPU_PLAN, profile_runs

    from rtvoice.ort.sessions import available_providers

    if not dry and "CUDAExecutionProvider" not in available_providers():
        report.add("skipped", "onnxruntime has no CUDAExecutionProvider (carry onnxruntime-gpu: device-run.sh)")
        return
    try:
        import torch.profiler  # noqa: F401
    except ImportError:
        report.add("skipped", "no torch here: torch.profiler records the trace")
        return
    os.environ.pop("RTVOICE_CUDA_STEP", None)  # the mode comes from each run's batching.cuda_step
    plan = DRY_PLAN if dry else GPU_PLAN
    report.add("plan", {"voice": plan.voice, "steps": f"{plan.batches} decode_batch calls at batch 1",
                        "cuda_activity": plan.cuda})
    profile_runs(report, VOICES[plan.voice], open_voice, plan, time.monotonic() + plan.budget_s)


def stage_table(report: Report, dry: bool) -> None:
    """Issue 26's table (tools/gpu/issue_table.py); a dry run times the tiny voice on the CPU instead."""
    import dataclasses
    import os

    from issue_table import DRY_PLAN, GPU_PLAN, run_table

    plan = dataclasses.replace(DRY_PLAN, voice=str(VOICES["tiny"]), fp16_voice=str(WORK / "table" / "tiny-fp16"))
    only = [name.strip() for name in os.environ.get("TABLE_ONLY", "").split(",") if name.strip()] or None
    run_table(report, plan if dry else GPU_PLAN, float(os.environ.get("TABLE_BUDGET_S", "400")), WORK / "table", only)


def stage_summary(report: Report, dry: bool) -> None:
    """The figures that matter, from the other stages' JSON, in one place."""
    out = report.path.parent
    data = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json") if p.stem != "summary"}
    env, parity, bench = data.get("env", {}), data.get("parity", {}), data.get("bench", {})
    report.add("gpu", env.get("device") or env.get("nvidia_smi"))
    errors = {stage: "error" in d for stage, d in data.items()}
    if isinstance(data.get("engine", {}).get("profile"), dict):
        errors["profile"] = any(k == "error" or k.endswith("_error") for k in data["engine"]["profile"])
    report.add("errors", errors)
    worst = {k: (max(v.values()) if isinstance(v, dict) and all(isinstance(x, float) for x in v.values()) else v)
             for k, v in parity.items() if "12_steps" in k or "gate_stop" in k or k.endswith("_error")}
    report.add("parity_worst_relative_error", worst)
    report.add("us_per_step", bench.get("us_per_step"))
    report.add("phase_us", {k: v for k, v in bench.items() if k.startswith("phase_us")})
    report.add("torch_fp16_us_per_step", bench.get("torch_fp16_us_per_step"))
    sweep = data.get("sweep", {})
    ptxas = next((v for k, v in sweep.items() if k.startswith("ptxas_sm")), {})
    report.add("sweep", {name: {**(row if isinstance(row, dict) else {"note": row}),
                                **{f"k_fused_{key}": ptxas.get(name, {}).get("k_fused", {}).get(key)
                                   for key in ("registers", "spill_loads")}}
                         for name, row in (sweep.get("us_per_step") or {}).items()})
    engine = {k: v for k, v in data.get("engine", {}).items() if k not in ("stage", "started")}
    report.add("engine_modes", {k: {"ttfa_ms": v.get("ttfa_ms"), "total_ms": v.get("total_ms"),
                                    **v.get("decoder_us_per_step", {}),
                                    **{f"unforced_{u}": v.get("unforced", {}).get(u)
                                       for u in ("total_ms", "steps_decoded", "audio_samples")}}
                                for k, v in engine.items() if isinstance(v, dict) and "ttfa_ms" in v})
    report.add("unforced_persistent_equals_phases", {k: v for k, v in engine.items()
                                                     if k.endswith("_unforced_persistent_equals_phases")})
    profile = engine.pop("profile", None)
    report.add("engine", engine)
    if isinstance(profile, dict):
        report.add("profile_per_step", profile_headline(profile))
    if "table" in data:  # here too, in case the table's own file is left out
        report.add("table", {k: v for k, v in data["table"].items() if k not in ("stage", "started")})


def profile_headline(profile: dict[str, Any]) -> dict[str, Any]:
    """Per profiled mode: wall against device busy per step, the gaps, launches, copies and host API time."""
    rows: dict[str, Any] = {}
    for name, run in profile.items():
        if not isinstance(run, dict) or "wall_us_per_step" not in run:
            if name not in ("stage", "started", "finished", "plan"):
                rows[name] = run[-300:] if isinstance(run, str) else "see engine.json"
            continue
        rows[name] = {
            "wall_us": run["wall_us_per_step"], "unprofiled_us": run.get("host_clock_unprofiled_us_per_step"),
            "device_busy_us": run["device_busy_us_per_step"], "device_idle_us": run["device_idle_us_per_step"],
            "gap_median_us": run["gaps"]["median_us"], "gap_p90_us": run["gaps"]["p90_us"],
            "kernels": run["kernels_per_step"], "copies": sum((c["per_step"] or 0.0) for c in run["copies"].values()),
            "host_api_us": run["host_api"]["us_per_step"], "host_wait_us": run["host_api"]["wait_us_per_step"],
            "batch_head_us": run["batches"]["head_us_median"], "batch_tail_us": run["batches"]["tail_us_median"]}
    return rows


STAGES = {"env": stage_env, "voices": stage_voices, "parity": stage_parity, "bench": stage_bench,
          "sweep": stage_sweep, "engine": stage_engine, "profile": stage_profile, "table": stage_table,
          "summary": stage_summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--dry-run", action="store_true", help="no CUDA calls: what the CPU can check")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, args.stage, into="engine" if args.stage == "profile" else None)
    try:
        STAGES[args.stage](report, args.dry_run)
    except Exception as exc:
        report.add("error", "".join(traceback.format_exception(exc))[-3000:])
        return 1
    report.add("finished", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
