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

from rtvoice.engine.cuda_step import DEFAULT_SHAPE, KernelShape
from rtvoice.engine.step_reference import reference_step
from rtvoice.engine.step_weights import load_packed
from rtvoice.ort.sessions import open_session

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
         stop_on_gate: float | None = None, shape: KernelShape = DEFAULT_SHAPE, text_length: int | None = None,
         holes: tuple[tuple[int, int], ...] = (),
         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], EmulatedLauncher]:
    """``holes``: (row, position) of symbols masked as padding inside the text (the mask's own say)."""
    packed = load_packed(folder / "decoder_step.onnx")
    cases = step_cases(folder, lengths, steps=steps, text_length=text_length)
    inputs = dict(cases[0].inputs)
    inputs["mask"] = inputs["mask"].copy()
    for row, t in holes:
        inputs["mask"][row, t] = True
    masks = np.stack([c.inputs["prenet_masks"] for c in cases])
    want = cuda_backend_check._reference_run(packed, inputs, masks)
    launcher = EmulatedLauncher(library)
    # fused: a grid as wide as the work (11 blocks on the tiny voice), so some blocks idle in some
    # phases, as on a GPU; persistent: 4 blocks, each looping over several items per phase
    sms = 16 if mode == "fused" else 4
    h = Harness(packed, launcher, sms, len(lengths), inputs["memory"].shape[1], steps, mode, shape)
    try:
        if shape.warp_scan and inputs["mask"].shape[1] % 16 == 0:
            assert h.mask.ptr % 16 == 0  # the warp scan's 16-byte path is the one exercised
        h.load(inputs, masks)
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
    """R = 2 (tiny) and r = 3 (the default voice: 384- and 512-wide LSTMs, 128 attention channels)."""
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


SHAPES = {
    # TILE 8, narrower context items, the warp scan on 16-byte aligned rows of 32, a register cap,
    # the query folded into the energies (no query phase, one grid barrier less)
    "tile8-ctx32-warp-foldq-reg64": (KernelShape(tile=8, ctx_channels=32, warp_scan=True, fused_max_registers=64,
                                                 fold_query=True), "fused", 32),
    # TILE 4 of QUAD 2, 16-channel context items, the warp scan's byte path (rows of 17), no query phase
    "tile4-quad2-ctx16-warp-foldq": (KernelShape(tile=4, quad=2, ctx_channels=16, warp_scan=True, fold_query=True,
                                                 inner_unroll=8), "phases", None),
    # TILE 4 of one QUAD (half the threads idle), the block scan, rows of 48 across several tiles,
    # one LSTM weight chunk in flight
    "tile4-quad4-block-unroll1": (KernelShape(tile=4, quad=4, lstm_unroll=1, fused_max_registers=80),
                                  "persistent", 48),
}


@pytest.mark.parametrize("name", SHAPES)
def test_other_kernel_shapes_match_the_reference(name: str, emulated: EmulatedRuntime, tiny_voice_dir: Path,
                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """The GPU sweep's shapes (tools/gpu/kernel_variants.py) compute the same step, each in one mode."""
    shape, mode, text_length = SHAPES[name]
    library = build(tmp_path_factory.mktemp("emulation"), shape)
    got, want, launcher = _run(tiny_voice_dir, library, mode, 2, [7, 3, 12], shape=shape, text_length=text_length)
    _close(got, want)
    assert sum(launcher.launches.values()) == {"phases": 2 * len(shape.phases), "fused": 2, "persistent": 1}[mode]
    assert launcher.launches.get("k_query", 0) == (0 if shape.fold_query or mode != "phases" else 2)


@pytest.mark.parametrize("shape", [DEFAULT_SHAPE, KernelShape(tile=8, warp_scan=True)], ids=["block", "warp"])
def test_masked_positions_inside_the_text_get_no_attention(shape: KernelShape, emulated: EmulatedRuntime,
                                                           tiny_voice_dir: Path,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    """A mask with holes: each scan takes the text up to its last unmasked symbol, holes get -inf.

    The ONNX step masks every position the mask sets (masked_fill before the softmax); the
    engine's masks are prefixes, but the kernels keep the same meaning for any mask.
    """
    holes = ((0, 0), (0, 4), (1, 1), (2, 11), (2, 10))  # row 2's last symbols masked: its text ends at 10
    library = build(tmp_path_factory.mktemp("emulation"), shape)
    got, want, _ = _run(tiny_voice_dir, library, "phases", 2, [7, 3, 12], shape=shape, text_length=32, holes=holes)
    _close(got, want)
    aw = got["next_attention_weights"]
    assert all(aw[row, t] == 0 for row, t in holes) and np.all(aw[:, 12:] == 0)
    # and the reference keeps the ONNX step's meaning of such a mask (fp16 weights against fp32)
    case = step_cases(tiny_voice_dir, [7, 3, 12], steps=1, text_length=32)[0]
    inputs = {**case.inputs, "mask": case.inputs["mask"].copy()}
    for row, t in holes:
        inputs["mask"][row, t] = True
    session = open_session(tiny_voice_dir / "decoder_step.onnx", ["CPUExecutionProvider"])
    onnx = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs), strict=True))
    mine = reference_step(load_packed(tiny_voice_dir / "decoder_step.onnx"), inputs)
    assert all(onnx["next_attention_weights"][row, t] == 0 for row, t in holes)
    for name in ("mel_frame", "next_attention_weights", "next_attention_context"):
        np.testing.assert_allclose(mine[name], onnx[name], atol=2e-2 * np.abs(onnx[name]).max(), err_msg=name)
