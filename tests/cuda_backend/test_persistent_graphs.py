"""How the engine drives the persistent kernel: graph replays, and what its step count means.

Run 2 on an H100 (2026-12-07) timed ``persistent`` at 99.6 µs a step in the engine and
51.1 µs in the bench, which replays one launch as a CUDA graph. The engine now does the
same: each launch shape (steps, stop_on_gate) is launched directly once, then captured and
replayed, with the arguments of the capture even after a launch of another shape changed
the bound struct. Results must equal direct launches bit for bit; a refused capture falls
back to direct launches. The GPU speed of this is not yet measured.

The same run reported 72 unforced steps for ``persistent`` though the gate fired in step
70: the engine stage counts ``Utterance.frames``, which grows by the steps a batch asked
for, also when the kernel stopped inside it. The last test pins that.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kernel_engines import IDS, FakeGraph, Recording, kernel_engine, masks
from test_gate_stop import RING, TEXT, references

from rtvoice import SynthesisConfig
from rtvoice.config import VoiceConfig
from rtvoice.engine import cuda_step
from rtvoice.errors import CudaError
from rtvoice.synthesizer import synthesize

sys.path.insert(0, str(Path(__file__).parents[2] / "tools" / "gpu"))
from engine_timing import unforced_times  # noqa: E402  # tools/gpu/engine_timing.py

BATCHES = (8, 8, 3, 8, 8)
"""Steps of each decode: the 3-step launch changes the bound struct between graph replays of 8."""


def decode(folder: Path, monkeypatch: pytest.MonkeyPatch, graphs: bool, graph_class: Any = None
           ) -> tuple[np.ndarray, np.ndarray, Recording]:
    """One sentence through BATCHES on a persistent engine: (gates, frames, launches).

    ``graph_class`` replaces the fake device's CudaGraph in cuda_step.
    """
    recording = Recording(None)
    engine, inner = kernel_engine(folder, monkeypatch, "persistent", decoder={"gate_check_interval": RING},
                                  cuda_graphs=graphs)
    if graph_class is not None:
        monkeypatch.setattr(cuda_step, "CudaGraph", graph_class)
    recording.inner = inner
    engine.kernels.launcher = recording  # type: ignore[union-attr]
    d = engine.config.decoder
    steps = sum(BATCHES)
    drops = masks(5, steps, d.prenet_dim)
    try:
        u = engine.open_utterance(IDS[0], steps * d.frames_per_step)
        gates, done = [], 0
        for k in BATCHES:
            gates.append(u.decode(drops[done:done + k]))
            done += k
        mel = u.mel(0, steps * d.frames_per_step)
        u.close()
    finally:
        engine.close()
    return np.concatenate(gates), mel, recording


def test_persistent_launches_replay_as_graphs_with_the_results_of_direct_launches(
        monkeypatch: pytest.MonkeyPatch, tiny_voice_dir: Path) -> None:
    direct_gates, direct_mel, direct = decode(tiny_voice_dir, monkeypatch, graphs=False)
    assert not FakeGraph.captured  # cuda_graphs off: every launch direct
    gates, mel, replayed = decode(tiny_voice_dir, monkeypatch, graphs=True)
    np.testing.assert_array_equal(gates, direct_gates)
    np.testing.assert_array_equal(mel, direct_mel)
    # 8 steps: direct (warm-up), captured and replayed, then replayed twice; the 3 steps direct
    (graph,) = FakeGraph.captured
    assert graph.launches == 3
    assert graph.closed  # with the engine
    every = [(kernel, steps, stop) for kernel, steps, stop, _ in replayed.log]
    assert every == [("k_fused", k, 0) for k in BATCHES] == [(kernel, steps, stop)
                                                            for kernel, steps, stop, _ in direct.log]
    assert replayed.cooperative == len(BATCHES)  # what is captured is the cooperative launch


def test_a_refused_capture_falls_back_to_direct_launches(monkeypatch: pytest.MonkeyPatch, tiny_voice_dir: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    direct_gates, direct_mel, _ = decode(tiny_voice_dir, monkeypatch, graphs=False)

    class Refused:
        @classmethod
        def capture(cls, stream: object, enqueue: Any) -> Any:
            raise CudaError("capture refused", code="cudaErrorStreamCaptureUnsupported",
                            function="cudaStreamBeginCapture")

    with caplog.at_level(logging.WARNING, logger="rtvoice.gpu"):
        gates, mel, recording = decode(tiny_voice_dir, monkeypatch, graphs=True, graph_class=Refused)
    np.testing.assert_array_equal(gates, direct_gates)
    np.testing.assert_array_equal(mel, direct_mel)
    assert [steps for _, steps, _, _ in recording.log] == list(BATCHES)
    assert sum("persistent decoder launch" in r.getMessage() for r in caplog.records) == 1  # then no more tries


def test_the_engine_stage_counts_whole_batches_though_the_kernel_stopped(
        monkeypatch: pytest.MonkeyPatch, tiny_voice_dir: Path) -> None:
    """engine_timing's ``steps_decoded`` is ``Utterance.frames // r``: requested steps, not run.

    So run 2's 72 unforced steps for ``persistent`` (gate in step 70) are what this count
    shows whether or not the device stopped; the kernel's own count (``steps_done``) is
    what tells, and the engine stage does not read it.
    """
    r = VoiceConfig.load(tiny_voice_dir).decoder.frames_per_step
    threshold, frame, _, _ = references(tiny_voice_dir, monkeypatch)
    recording = Recording(None)
    engine, inner = kernel_engine(tiny_voice_dir, monkeypatch, "persistent",
                                  decoder={"gate_check_interval": RING, "gate_threshold": threshold})
    recording.inner = inner
    engine.kernels.launcher = recording  # type: ignore[union-attr]

    class Voice:  # what unforced_times uses of rtvoice.Voice
        def __init__(self) -> None:
            self.engine = engine

        def synthesize(self, text: str, config: SynthesisConfig) -> Any:
            return synthesize(engine, text, config)

    try:
        times, _ = unforced_times(Voice(), TEXT, SynthesisConfig(seed=3))
    finally:
        engine.close()
    stop = frame // r + 1  # the step whose gate fired, counted from 1
    ran = sum(steps_run for kernel, _, _, steps_run in recording.log if kernel == "k_fused")
    assert ran == stop
    assert stop % RING, "the gate must fire mid-batch for this test to say anything"
    assert times["steps_decoded"] == -(-stop // RING) * RING > ran  # whole batches, as in run 2's 72
