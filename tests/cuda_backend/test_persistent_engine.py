"""The cuda backend's persistent mode in the engine (issue 26): one launch a batch of steps.

A scenario of continuous batching runs on KernelEngine over the fake device: two sentences
decode together (only A opted in to the device-side gate stop, so that batch never stops),
A leaves, C and D join (the rows are compacted), opt in and decode with B's row parked;
the stop comes mid-batch once both their gates fired; B then decodes on alone. The persistent run
must give the phases run's gates and frames (up to the stop) and the CPU engine's within
fp16 error; the steps after the stop are never decoded. The gate threshold is chosen from
the phases run's own gate logits so that the stop lands mid-batch. Two mutations (wrong
ring strides, stop flag not passed) must make the checks fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kernel_engines import IDS, Recording, kernel_engine, masks

from rtvoice.config import VoiceConfig
from rtvoice.engine import gpu_decoder
from rtvoice.engine.cuda_step import BoundSteps
from rtvoice.errors import InternalError
from rtvoice.ort.cpu_engine import CpuEngine

NAMES = ("A", "B", "C", "D")
SOURCES = {"A": (IDS[0], 0), "B": (IDS[1], 1), "C": (IDS[2], 2), "D": (IDS[2], 7)}
"""Sentence -> (symbol ids, prenet-mask seed)."""


@dataclass
class Run:
    gates: dict[str, np.ndarray]
    mels: dict[str, np.ndarray]
    log: list[tuple[str, int, int, int]]
    cooperative: int
    ended: dict[str, bool]


def scenario(folder: Path, monkeypatch: pytest.MonkeyPatch | None, mode: str, ring: int, threshold: float,
             launcher: Any = None, open_engine: Any = None) -> Run:
    """A, B decode ``ring`` steps (A opted in); A leaves; C, D join, opt in, decode (B parked); B decodes.

    On the fake device (``monkeypatch``, launches recorded), or ``open_engine(mode, decoder
    fields, batching fields)`` (the GPU test; nothing recorded).
    """
    decoder = {"gate_check_interval": ring, "gate_threshold": threshold}
    batching = {"max_rows": 4, "max_batch": 4, "buckets": (1, 2, 4)}
    recording = Recording(launcher)
    if open_engine is not None:
        engine = open_engine(mode, decoder, batching)
    else:
        assert monkeypatch is not None
        engine, inner = kernel_engine(folder, monkeypatch, mode, recording if launcher else None, decoder=decoder,
                                      **batching)
        if launcher is None:  # the default numpy launcher: record around it
            recording.inner = inner
            engine.kernels.launcher = recording  # type: ignore[union-attr]
    d = engine.config.decoder
    r, k = d.frames_per_step, ring
    mask = {name: masks(seed, 2 * k, d.prenet_dim) for name, (_, seed) in SOURCES.items()}
    gates: dict[str, list[np.ndarray]] = {name: [] for name in NAMES}
    mels: dict[str, np.ndarray] = {}
    try:
        u = {name: engine.open_utterance(SOURCES[name][0], 2 * k * r) for name in "AB"}
        engine.stop_at_gate(u["A"])  # B is not: the batch never stops, whatever A's gate does
        for name, g in zip("AB", engine.decode_batch([(u[n], mask[n][:k]) for n in "AB"]), strict=True):
            gates[name].append(g)
        mels["A"] = u["A"].mel(0, k * r)
        u["A"].close()
        u |= {name: engine.open_utterance(SOURCES[name][0], 2 * k * r) for name in "CD"}
        for name in "CD":
            engine.stop_at_gate(u[name])
        for name, g in zip("CD", engine.decode_batch([(u[n], mask[n][:k]) for n in "CD"]), strict=True):
            gates[name].append(g)
        gates["B"].append(engine.decode_batch([(u["B"], mask["B"][k:])])[0])
        mels["B"] = u["B"].mel(0, 2 * k * r)
        for name in "CD":
            mels[name] = u[name].mel(0, k * r)
        ended = {name: u[name].member.ended for name in "BCD"}
        if ended["C"]:
            with pytest.raises(InternalError, match="stopped this sentence at its gate"):
                engine.decode_batch([(u["C"], mask["C"][k:])])
        for name in "BCD":
            u[name].close()
    finally:
        engine.close()
    return Run({n: np.concatenate(g) for n, g in gates.items()}, mels, recording.log, recording.cooperative,
               ended)


def first_fire(gates: np.ndarray, logit: float, r: int) -> int | None:
    """The step whose gate first exceeds ``logit`` (as the synthesizer compares: fp32), or None."""
    fired = np.flatnonzero(gates > np.float32(logit))
    return None if fired.size == 0 else int(fired[0]) // r


def choose_threshold(full: Run, ring: int, r: int) -> tuple[float, int]:
    """A gate threshold at which C and D both fire before the end of their batch.

    Preferred: A fires too (its batch must still run to the end: B did not opt in), and C
    and D fire at different steps (the stop waits for the later); then the widest gap
    between gate values, so a last-bit difference between kernel modes (FMA contraction on
    a GPU) cannot move the stop. Returns (threshold, the step count the device stops after).
    """
    values = np.unique(np.concatenate([g for g in full.gates.values()]).astype(np.float64))
    found: list[tuple[int, float, float, int]] = []
    for lo, hi in zip(values[:-1], values[1:], strict=True):
        logit = float((lo + hi) / 2)
        fires = [first_fire(full.gates[n][: ring * r], logit, r) for n in "CD"]
        if all(f is not None for f in fires) and max(f for f in fires if f is not None) + 1 < ring:
            score = (first_fire(full.gates["A"], logit, r) is not None) + (fires[0] != fires[1])
            found.append((score, hi - lo, logit, max(f for f in fires if f is not None) + 1))
    if not found:
        pytest.fail(f"no gate threshold stops C and D mid-batch: {full.gates}")
    _, _, logit, stop = max(found)
    return 1.0 / (1.0 + math.exp(-logit)), stop


def check(run: Run, full: Run, stop: int, ring: int, r: int, atol: float = 0.0, launches: bool = True) -> None:
    """The persistent run against the phases run (``full``, no stop), with the stop after ``stop`` steps.

    ``launches``: also the recorded launches (the fake device; a GPU run records none).
    """
    for name in "AB":
        np.testing.assert_allclose(run.gates[name], full.gates[name], rtol=0, atol=atol, err_msg=name)
        np.testing.assert_allclose(run.mels[name], full.mels[name], rtol=0, atol=atol, err_msg=name)
    for name in "CD":
        np.testing.assert_allclose(run.gates[name][: stop * r], full.gates[name][: stop * r], rtol=0, atol=atol)
        assert np.all(np.isposinf(run.gates[name][stop * r:])), name  # never decoded
        np.testing.assert_allclose(run.mels[name][:, : stop * r], full.mels[name][:, : stop * r], rtol=0, atol=atol)
    assert run.ended == {"B": False, "C": True, "D": True}
    if not launches:
        return
    # one cooperative launch per batch: AB (B not opted in: no stop), CD (stops), B alone
    assert run.log == [("k_fused", ring, 0, ring), ("k_fused", ring, 1, stop), ("k_fused", ring, 0, ring)], run.log
    assert run.cooperative == 3


def _against_cpu(folder: Path, run: Run, ring: int, stop: int, r: int) -> None:
    config = VoiceConfig.load(folder)
    cpu = CpuEngine(folder, config)
    lengths = {"A": ring, "B": 2 * ring, "C": stop, "D": stop}
    for name, (ids, seed) in SOURCES.items():
        n = lengths[name]
        u = cpu.open_utterance(ids, n * r)
        want_gates = u.decode(masks(seed, 2 * ring, config.decoder.prenet_dim)[:n])
        want_mel = u.mel(0, n * r)
        np.testing.assert_allclose(run.gates[name][: n * r], want_gates, atol=3e-2 * np.abs(want_gates).max())
        np.testing.assert_allclose(run.mels[name][:, : n * r], want_mel, atol=3e-2 * np.abs(want_mel).max() + 1e-3)


@pytest.mark.parametrize("voice", ["tiny_voice_dir", "tiny_r2_voice_dir"])
def test_persistent_engine_stops_mid_batch_like_phases_and_the_cpu(
        voice: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(voice)
    ring = 8
    r = VoiceConfig.load(folder).decoder.frames_per_step
    full = scenario(folder, monkeypatch, "phases", ring, 1.0)  # threshold 1: never fires
    threshold, stop = choose_threshold(full, ring, r)
    run = scenario(folder, monkeypatch, "persistent", ring, threshold)
    check(run, full, stop, ring, r)  # the same numpy phases: equal to the last bit
    _against_cpu(folder, run, ring, stop, r)


@pytest.mark.parametrize("mutation", ["masks_stride", "stop_flag"])
def test_a_mutated_persistent_path_fails_the_check(mutation: str, monkeypatch: pytest.MonkeyPatch,
                                                   tiny_voice_dir: Path) -> None:
    """The checks above are not vacuous: a wrong stride or a lost stop flag is caught."""
    ring, r = 8, 1
    full = scenario(tiny_voice_dir, monkeypatch, "phases", ring, 1.0)
    threshold, stop = choose_threshold(full, ring, r)
    if mutation == "masks_stride":
        real = gpu_decoder.Ring
        monkeypatch.setattr(gpu_decoder, "Ring", lambda **kw: real(**{**kw, "drop_step": 0}))
    else:
        real_run = BoundSteps.run
        monkeypatch.setattr(BoundSteps, "run", lambda self, steps, stop_on_gate: real_run(self, steps, False))
    run = scenario(tiny_voice_dir, monkeypatch, "persistent", ring, threshold)
    with pytest.raises(AssertionError):
        check(run, full, stop, ring, r)


def test_persistent_engine_runs_the_cuda_source_itself(monkeypatch: pytest.MonkeyPatch, tiny_voice_dir: Path,
                                                       tmp_path: Path) -> None:
    """The same scenario with decoder_step.cu compiled for the CPU (one host thread per CUDA thread)."""
    from kernel_emulation import EmulatedLauncher, build

    lib = build(tmp_path)
    ring, r = 5, 1
    full = scenario(tiny_voice_dir, monkeypatch, "phases", ring, 1.0, EmulatedLauncher(lib))
    threshold, stop = choose_threshold(full, ring, r)
    run = scenario(tiny_voice_dir, monkeypatch, "persistent", ring, threshold, EmulatedLauncher(lib))
    check(run, full, stop, ring, r, atol=1e-6)  # the same device functions: equal up to float order
    _against_cpu(tiny_voice_dir, run, ring, stop, r)
