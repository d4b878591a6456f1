"""The cuda backend on a real GPU (issue 26); skipped without one.

The kernels against the fp16 numpy reference in all three modes (tiny and default
voices), ``--backend cuda`` end to end against the CPU engine, each engine mode against
``phases``, and the persistent engine's join/leave/park/gate-stop scenario
(test_persistent_engine.py) on the device (the engine tests need onnxruntime-gpu).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from step_cases import step_cases

from rtvoice.cuda import is_available
from rtvoice.engine.step_weights import load_packed

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).parents[2]
DEFAULT_VOICE = ROOT / "rtvoice" / "voices" / "default"
sys.path.insert(0, str(ROOT / "tools" / "gpu"))


@pytest.fixture(scope="module")
def device() -> tuple[Any, int]:
    if not is_available():
        pytest.skip("needs a CUDA GPU")
    from rtvoice.cuda import set_device
    from rtvoice.engine.cuda_engine import load_module

    set_device(0)
    return load_module(0)


@pytest.mark.parametrize("mode", ["phases", "fused", "persistent"])
@pytest.mark.parametrize("voice", ["tiny_voice_dir", "default"])
def test_kernels_on_the_gpu_match_the_reference(mode: str, voice: str, device: tuple[Any, int],
                                                request: pytest.FixtureRequest) -> None:
    import cuda_backend_check
    from kernel_harness import Harness

    folder = DEFAULT_VOICE if voice == "default" else Path(request.getfixturevalue(voice))
    packed = load_packed(folder / "decoder_step.onnx")
    cases = step_cases(folder, [7, 3, 12], steps=8)
    masks = np.stack([c.inputs["prenet_masks"] for c in cases])
    want = cuda_backend_check._reference_run(packed, cases[0].inputs, masks)
    module, sms = device
    h = Harness(packed, module, sms, 3, cases[0].inputs["memory"].shape[1], len(cases), mode)
    try:
        h.load(cases[0].inputs, masks)
        h.enqueue(len(cases))
        got = h.read(len(cases))
    finally:
        h.close()
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-3, atol=1e-4 * (np.abs(value).max() + 1e-3),
                                   err_msg=name)


def test_cuda_backend_speaks_like_the_cpu_engine(tiny_voice_dir: Path) -> None:
    from rtvoice import SynthesisConfig, Voice
    from rtvoice.audio import concatenate
    from rtvoice.errors import BackendError

    config = SynthesisConfig(seed=3, force_steps=60)
    try:
        gpu = Voice.load(tiny_voice_dir, backend="cuda", device="cuda:0")
    except BackendError as exc:
        pytest.skip(f"cuda backend unavailable here: {exc}")
    with gpu:
        assert gpu.engine.name == "cuda"
        got = concatenate(gpu.synthesize("Our own kernels.", config))
    with Voice.load(tiny_voice_dir, backend="onnxruntime", device="cpu") as cpu:
        want = concatenate(cpu.synthesize("Our own kernels.", config))
    assert len(got) == len(want)
    err = float(np.sum((want.astype(np.float64) - got) ** 2))
    snr = float("inf") if err == 0 else 10 * np.log10(float(np.sum(want.astype(np.float64) ** 2)) / err)
    assert snr > 20.0  # fp16 decoder weights (a wrong kernel gives ~0 dB); the rest as ONNX Runtime CUDA runs it


@pytest.mark.parametrize("mode", ["fused", "persistent"])
def test_cuda_backend_modes_speak_like_phases(mode: str, tiny_voice_dir: Path) -> None:
    """Each kernel mode through the whole engine (batching.cuda_step) gives the phases mode's audio."""
    import dataclasses

    from rtvoice import SynthesisConfig, Voice
    from rtvoice.audio import concatenate
    from rtvoice.config import VoiceConfig
    from rtvoice.errors import BackendError

    config = SynthesisConfig(seed=3, force_steps=60)
    audio = {}
    for m in ("phases", mode):
        batching = dataclasses.replace(VoiceConfig.load(tiny_voice_dir).batching, cuda_step=m)
        try:
            voice = Voice.load(tiny_voice_dir, backend="cuda", device="cuda:0", batching=batching)
        except BackendError as exc:
            pytest.skip(f"cuda backend unavailable here: {exc}")
        with voice:
            audio[m] = concatenate(voice.synthesize("Our own kernels.", config))
    want, got = audio["phases"], audio[mode]
    assert len(got) == len(want)
    np.testing.assert_allclose(got, want, atol=1e-4 * (np.abs(want).max() + 1e-6))  # the same device functions


def test_persistent_engine_stops_mid_batch_on_the_gpu(device: tuple[Any, int], tiny_voice_dir: Path) -> None:
    """tests/cuda_backend/test_persistent_engine.py's scenario on the GPU: joins, leaves, parking, the device stop."""
    import dataclasses

    from test_persistent_engine import check, choose_threshold, scenario

    from rtvoice.config import BatchingConfig, VoiceConfig
    from rtvoice.engine.cuda_engine import KernelEngine
    from rtvoice.errors import BackendError

    def open_engine(mode: str, decoder: dict[str, Any], batching: dict[str, Any]) -> KernelEngine:
        config = VoiceConfig.load(tiny_voice_dir)
        config = dataclasses.replace(config, decoder=dataclasses.replace(config.decoder, **decoder),
                                     batching=BatchingConfig(**batching))
        try:
            return KernelEngine(tiny_voice_dir, config, 0, mode=mode)  # type: ignore[arg-type]
        except BackendError as exc:
            pytest.skip(f"cuda backend unavailable here: {exc}")

    ring = 8
    full = scenario(tiny_voice_dir, None, "phases", ring, 1.0, open_engine=open_engine)
    threshold, stop = choose_threshold(full, ring, 1)
    run = scenario(tiny_voice_dir, None, "persistent", ring, threshold, open_engine=open_engine)
    check(run, full, stop, ring, 1, atol=1e-5, launches=False)
