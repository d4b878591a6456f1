"""The synthesizer lets the cuda backend's persistent launches stop at the gate, and only without force_steps.

A sentence synthesized normally (``synthesize``, and ``pipeline.stream``) on KernelEngine
in ``persistent`` mode must stop on the device after the step where its gate fired: the
kernel reports fewer steps than the batch asked for, and the audio equals the ``phases``
run's, where every step of the batch is decoded and the synthesizer drops the overshoot.
With ``force_steps`` (the bench, the seams check, export parity use frames past the gate)
every step must be decoded and the audio must equal ``phases``' forced audio.

The gate threshold is chosen from the phases run's own gate logits so that the gate fires
in the middle of a batch, inside the forced length. Mutations (the synthesizer or pipeline
never opting in; opting in despite force_steps) must make the checks fail.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kernel_engines import Recording, kernel_engine  # tests/cuda_backend/kernel_engines.py

from rtvoice import SynthesisConfig, pipeline, synthesizer
from rtvoice.audio import concatenate
from rtvoice.config import VoiceConfig
from rtvoice.engine.cuda_engine import KernelEngine
from rtvoice.errors import InternalError
from rtvoice.synthesizer import SentenceDecoder, synthesize

TEXT = "Our own kernels speak."
RING = 8
"""decoder.gate_check_interval: the steps of one batch, one persistent launch."""
FORCED = 48
"""force_steps (frames) of the forced runs; the gate must fire inside it."""


@dataclass
class Outcome:
    audio: np.ndarray
    gates: np.ndarray
    """The per-frame gate logits the synthesizer read, batch after batch."""
    launches: list[tuple[str, int, int, int]]
    """Recorded launches: (kernel, steps asked, stop_on_gate, steps the kernel reports)."""

    @property
    def decoded(self) -> int:
        """Decoder steps the persistent kernel ran."""
        return sum(ran for kernel, _, _, ran in self.launches if kernel == "k_fused")


def speak(folder: Path, monkeypatch: pytest.MonkeyPatch, mode: str, threshold: float, force: bool,
          launcher: Any = None, via: str = "synthesize") -> Outcome:
    """TEXT through KernelEngine in ``mode`` (``via`` the sync core or the async pipeline)."""
    recording = Recording(launcher)
    engine, inner = kernel_engine(folder, monkeypatch, mode, recording if launcher else None,
                                  decoder={"gate_check_interval": RING, "gate_threshold": threshold})
    if launcher is None:  # the default numpy launcher: record around it
        recording.inner = inner
        engine.kernels.launcher = recording  # type: ignore[union-attr]
    read: list[np.ndarray] = []
    accept = SentenceDecoder.accept
    monkeypatch.setattr(SentenceDecoder, "accept",
                        lambda self, gates: (read.append(gates.copy()), accept(self, gates))[1])
    config = SynthesisConfig(seed=3, force_steps=FORCED if force else None)
    try:
        if via == "synthesize":
            chunks = list(synthesize(engine, TEXT, config))
        else:
            workers = pipeline.Workers("gatestop", engine.config.batching)

            async def stream() -> list[Any]:
                return [c async for c in pipeline.stream(engine, workers, TEXT, config)]

            try:
                chunks = asyncio.run(stream())
            finally:
                workers.close()
    finally:
        monkeypatch.setattr(SentenceDecoder, "accept", accept)
        engine.close()
    return Outcome(concatenate(chunks), np.concatenate(read), recording.log)


def choose_threshold(forced: Outcome, r: int, within: int = FORCED) -> tuple[float, int]:
    """A gate threshold whose first fire is mid-batch, inside FORCED (and before frame ``within``).

    Preferred: after the first batch (the random tiny r = 2 voice's gate peaks at its second
    frame, so there the stop comes after step 1); then the widest gap between gate values
    (robust to a last-bit difference between kernel modes). Returns (threshold, the frame
    where the gate first fires).
    """
    values = np.unique(forced.gates.astype(np.float64))
    found: list[tuple[bool, float, float, int]] = []
    for lo, hi in zip(values[:-1], values[1:], strict=True):
        logit = float((lo + hi) / 2)
        fired = np.flatnonzero(forced.gates > np.float32(logit))
        if fired.size == 0:
            continue
        step = int(fired[0]) // r
        if (step + 1) % RING and (step + 1) * r < min(FORCED, within):
            found.append((step >= RING, hi - lo, logit, int(fired[0])))
    if not found:
        pytest.fail(f"no gate threshold fires mid-batch inside {FORCED} frames: {forced.gates}")
    _, _, logit, frame = max(found)
    return 1.0 / (1.0 + math.exp(-logit)), frame


def check_stopped(run: Outcome, full: Outcome, frame: int, r: int, hop: int, atol: float = 0.0) -> None:
    """A normal sentence: the persistent run stopped after the gate's step and sounds like phases."""
    stop = frame // r + 1
    assert len(full.audio) == len(run.audio) == (frame + 1) * hop  # both ended at the gate's frame
    np.testing.assert_allclose(run.audio, full.audio, rtol=0, atol=atol)
    assert run.decoded == stop, run.launches  # not the whole last batch
    assert all(stop_flag == 1 for kernel, _, stop_flag, _ in run.launches if kernel == "k_fused"), run.launches
    assert np.all(np.isposinf(run.gates[stop * r:])), run.gates  # the synthesizer was told: never decoded
    asked = len(full.gates) // r
    assert asked > stop and asked % RING == 0  # phases decoded the rest of that batch


def check_forced(run: Outcome, full: Outcome, r: int, hop: int, atol: float = 0.0) -> None:
    """A force_steps request: every step decoded, on the device and in the audio."""
    steps = -(-FORCED // r)
    assert len(run.audio) == len(full.audio) == FORCED * hop
    assert run.decoded == steps, run.launches
    assert all(stop_flag == 0 for _, _, stop_flag, _ in run.launches), run.launches
    assert np.isfinite(run.gates).all()
    np.testing.assert_allclose(run.audio, full.audio, rtol=0, atol=atol)


def references(folder: Path, monkeypatch: pytest.MonkeyPatch, launcher: Any = None
               ) -> tuple[float, int, Outcome, Outcome]:
    """(threshold, gate frame, phases forced, phases normal): the threshold from the forced gates."""
    r = VoiceConfig.load(folder).decoder.frames_per_step
    forced = speak(folder, monkeypatch, "phases", 0.5, True, launcher)  # forced: the threshold changes nothing
    threshold, frame = choose_threshold(forced, r)
    normal = speak(folder, monkeypatch, "phases", threshold, False, launcher)
    return threshold, frame, forced, normal


@pytest.mark.parametrize("voice", ["tiny_voice_dir", "tiny_r2_voice_dir"])
def test_synthesize_stops_at_the_gate_on_the_device_unless_force_steps(
        voice: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(voice)
    config = VoiceConfig.load(folder)
    r, hop = config.decoder.frames_per_step, config.audio.hop_length
    threshold, frame, forced, normal = references(folder, monkeypatch)
    stopped = speak(folder, monkeypatch, "persistent", threshold, False)
    check_stopped(stopped, normal, frame, r, hop)  # the same numpy kernels: equal to the last bit
    check_forced(speak(folder, monkeypatch, "persistent", threshold, True), forced, r, hop)


def test_the_async_pipeline_stops_at_the_gate_too(monkeypatch: pytest.MonkeyPatch, tiny_voice_dir: Path) -> None:
    config = VoiceConfig.load(tiny_voice_dir)
    threshold, frame, _, normal = references(tiny_voice_dir, monkeypatch)
    stopped = speak(tiny_voice_dir, monkeypatch, "persistent", threshold, False, via="stream")
    check_stopped(stopped, normal, frame, 1, config.audio.hop_length)


def _opens_without_opting_in(engine: Any, sentence: Any, settings: Any) -> Any:
    return engine.open_utterance(sentence.ids, settings.max_decoder_steps)


def _always_opts_in(engine: Any, sentence: Any, settings: Any) -> Any:
    utterance = engine.open_utterance(sentence.ids, settings.max_decoder_steps)
    engine.stop_at_gate(utterance)
    return utterance


@pytest.mark.parametrize("mutation", ["engine_ignores_the_opt_in", "pipeline_never_opts_in",
                                      "opts_in_despite_force_steps"])
def test_a_wrongly_wired_gate_stop_fails_the_checks(mutation: str, monkeypatch: pytest.MonkeyPatch,
                                                    tiny_voice_dir: Path) -> None:
    """The checks above are not vacuous: each wiring mistake is caught."""
    hop = VoiceConfig.load(tiny_voice_dir).audio.hop_length
    threshold, frame, forced, normal = references(tiny_voice_dir, monkeypatch)
    if mutation == "engine_ignores_the_opt_in":
        monkeypatch.setattr(KernelEngine, "stop_at_gate", lambda self, utterance: None)
        run = speak(tiny_voice_dir, monkeypatch, "persistent", threshold, False)
        with pytest.raises(AssertionError):
            check_stopped(run, normal, frame, 1, hop)
    elif mutation == "pipeline_never_opts_in":
        monkeypatch.setattr(pipeline, "open_sentence", _opens_without_opting_in)
        run = speak(tiny_voice_dir, monkeypatch, "persistent", threshold, False, via="stream")
        with pytest.raises(AssertionError):
            check_stopped(run, normal, frame, 1, hop)
    else:
        monkeypatch.setattr(synthesizer, "open_sentence", _always_opts_in)
        # the engine refuses the next batch of a sentence it stopped (or, in a last batch, the check sees it)
        with pytest.raises((AssertionError, InternalError)):
            check_forced(speak(tiny_voice_dir, monkeypatch, "persistent", threshold, True), forced, 1, hop)


def test_the_cuda_source_stops_at_the_gate_through_synthesize(monkeypatch: pytest.MonkeyPatch, tiny_voice_dir: Path,
                                                              tmp_path: Path) -> None:
    """The normal sentence with decoder_step.cu compiled for the CPU (one host thread per CUDA thread).

    The threshold comes from the numpy kernels' forced gates (cheap); the emulated phases run
    (seven launches a step, the slow part) is the reference. force_steps' side is the
    engine's (no stop flag), checked with the numpy kernels above.
    """
    from kernel_emulation import EmulatedLauncher, build

    lib = build(tmp_path)
    hop = VoiceConfig.load(tiny_voice_dir).audio.hop_length
    # A stop in the second batch: the emulation costs about a second a step, and the widest gap
    # stopped the tiny voice in the fifth (40 phases steps, not 16). Its gates equal the numpy
    # kernels' bitwise, so a narrower gap (19 float32 steps at frame 8) cannot move the stop.
    forced = speak(tiny_voice_dir, monkeypatch, "phases", 0.5, True)
    threshold, frame = choose_threshold(forced, 1, within=2 * RING)
    normal = speak(tiny_voice_dir, monkeypatch, "phases", threshold, False, EmulatedLauncher(lib))
    stopped = speak(tiny_voice_dir, monkeypatch, "persistent", threshold, False, EmulatedLauncher(lib))
    assert frame >= RING  # the stop still comes after a whole batch
    check_stopped(stopped, normal, frame, 1, hop, atol=1e-5)  # same device functions; measured: equal bitwise
