"""The CUDA C of the decoder step itself, run on the CPU (issue 26).

kernel_emulation.cpp compiles rtvoice/engine/kernels/decoder_step.cu as C++ with one host
thread per CUDA thread (barriers, warp shuffles, atomics and the grid-wide barrier
emulated), over the emulated runtime's host memory. Its results must equal the numpy
reference's on the same fp16 weights to float32 rounding, in all three modes, fed back
step by step through the engine's ring and state parities. What this cannot show: speed,
memory-model subtleties of the real GPU, and whether all blocks of the fused kernel are
resident at once there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from emulated_runtime import EmulatedRuntime, emulate
from kernel_emulation import EmulatedLauncher, build
from step_cases import step_cases

from rtvoice.engine.step_weights import load_packed

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "tools" / "gpu"))
import cuda_backend_check  # noqa: E402
from kernel_harness import Harness  # noqa: E402

DEFAULT_VOICE = ROOT / "rtvoice" / "voices" / "default"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("emulation"))


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedRuntime]:
    yield from emulate(monkeypatch)


def _run(folder: Path, library: Path, mode: str, steps: int, lengths: list[int],
         stop_on_gate: float | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], EmulatedLauncher]:
    packed = load_packed(folder / "decoder_step.onnx")
    cases = step_cases(folder, lengths, steps=steps)
    masks = np.stack([c.inputs["prenet_masks"] for c in cases])
    want = cuda_backend_check._reference_run(packed, cases[0].inputs, masks)
    launcher = EmulatedLauncher(library)
    # fused: a grid as wide as the work (11 blocks on the tiny voice), so some blocks idle in some
    # phases, as on a GPU; persistent: 4 blocks, each looping over several items per phase
    sms = 16 if mode == "fused" else 4
    h = Harness(packed, launcher, sms, len(lengths), cases[0].inputs["memory"].shape[1], steps, mode)
    try:
        h.load(cases[0].inputs, masks)
        h.enqueue(steps, stop_on_gate)
        got = h.read(steps)
    finally:
        h.close()
    return got, want, launcher


def _close(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5 * (np.abs(value).max() + 1e-3),
                                   err_msg=name)


@pytest.mark.parametrize("mode", ["phases", "fused", "persistent"])
def test_kernel_source_matches_the_reference_in_every_mode(mode: str, library: Path, emulated: EmulatedRuntime,
                                                           tiny_voice_dir: Path) -> None:
    """Three rows of 7, 3 and 12 symbols in rows of 17 (a partial attention tile), 3 steps."""
    got, want, launcher = _run(tiny_voice_dir, library, mode, 3, [7, 3, 12])
    _close(got, want)
    assert emulated.blocks == {}
    assert sum(launcher.launches.values()) == {"phases": 21, "fused": 3, "persistent": 1}[mode]
    if mode == "persistent":
        assert int(got["steps_done"][0]) == 3


@pytest.mark.parametrize(("voice", "mode"), [("tiny_r2_voice_dir", "persistent"), ("default", "phases")])
def test_kernel_source_with_several_frames_a_step(voice: str, mode: str, library: Path, emulated: EmulatedRuntime,
                                                  request: pytest.FixtureRequest) -> None:
    """R = 2 (tiny) and r = 3 (the default voice: 256-wide LSTMs, 128 attention channels)."""
    folder = DEFAULT_VOICE if voice == "default" else Path(request.getfixturevalue(voice))
    got, want, _ = _run(folder, library, mode, 2 if voice == "default" else 3, [9, 4])
    _close(got, want)


@pytest.mark.parametrize(("threshold", "steps_done"), [(1e-9, 1), (1 - 1e-7, 4)])
def test_persistent_kernel_stops_on_the_device_when_every_gate_fired(
        threshold: float, steps_done: int, library: Path, emulated: EmulatedRuntime, tiny_voice_dir: Path) -> None:
    """A threshold every logit passes stops after the first step; one none passes runs all steps."""
    got, want, _ = _run(tiny_voice_dir, library, "persistent", 4, [5, 8], stop_on_gate=threshold)
    assert int(got["steps_done"][0]) == steps_done
    np.testing.assert_allclose(got["mel"][:steps_done], want["mel"][:steps_done], rtol=1e-4, atol=1e-6)
