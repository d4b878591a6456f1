"""A checkpoint with exactly NVIDIA's NGC layout (random values) becomes a voice (issue #2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from rtvoice.errors import CheckpointError  # noqa: E402
from rtvoice.export.checkpoint import load_tacotron2, load_waveglow  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "ngc-checkpoint-state-dicts.json"
REPO = Path(__file__).resolve().parents[2]


def _ngc_checkpoint(model: str, path: Path, *, prefix: str = "module.", break_tensor: str | None = None) -> Path:
    """Write a checkpoint laid out as DeepLearningExamples' training script saves it."""
    spec = json.loads(FIXTURE.read_text())[model]
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in spec["state_dict"].items():
        if name == break_tensor:
            shape = [shape[0] + 1, *shape[1:]]
        if name.endswith("num_batches_tracked"):
            state[prefix + name] = torch.tensor(0)
        elif name.endswith("running_var"):
            state[prefix + name] = torch.rand(shape, generator=gen) + 0.5
        else:
            # WaveGlow's coupling outputs (WN.k.end) near zero keep twelve random flows finite,
            # as a trained model's are; every other tensor is plain random.
            scale = 1e-3 if ".end." in name else 0.05
            state[prefix + name] = torch.randn(shape, generator=gen) * scale
    torch.save({"epoch": 1, "cuda_rng_state_all": [], "random_rng_states_all": [], "config": spec["config"],
                "state_dict": state, "optimizer": {}, "scaler": {}}, path)
    return path


@pytest.mark.parametrize("model", ["waveglow256", "waveglow512"])
def test_waveglow_ngc_layout_loads_with_weight_norm_folded(tmp_path: Path, model: str) -> None:
    wg = load_waveglow(_ngc_checkpoint(model, tmp_path / "wg.pt"))
    spec = json.loads(FIXTURE.read_text())[model]
    assert wg.params.n_channels == spec["config"]["WN_config"]["n_channels"]
    assert wg.params.n_flows == 12 and wg.params.n_early_every == 4 and wg.params.n_early_size == 2
    # weight_g/weight_v pairs became one weight with the shape of weight_v
    assert tuple(wg.WN[0].in_layers[0].weight.shape) == tuple(spec["state_dict"]["WN.0.in_layers.0.weight_v"])


def test_tacotron2_params_come_from_shapes_without_config(tmp_path: Path) -> None:
    path = _ngc_checkpoint("tacotron2", tmp_path / "t2.pt", prefix="")
    raw = torch.load(path, weights_only=True)
    raw["config"] = {}
    torch.save(raw, path)
    model = load_tacotron2(path)
    assert model.params.attention_rnn_dim == 1024 and model.params.attention_location_kernel_size == 31


def test_mismatched_checkpoint_names_tensor_and_shapes(tmp_path: Path) -> None:
    path = _ngc_checkpoint("tacotron2", tmp_path / "bad.pt", break_tensor="decoder.attention_rnn.weight_hh")
    with pytest.raises(CheckpointError) as err:
        load_tacotron2(path)
    assert err.value.tensor == "decoder.attention_rnn.weight_hh"
    assert "(4097, 1024)" in str(err.value) and "(4096, 1024)" in str(err.value)


def test_build_engines_reports_mismatch_without_traceback(tmp_path: Path) -> None:
    t2 = _ngc_checkpoint("tacotron2", tmp_path / "bad.pt", break_tensor="embedding.weight")
    wg = tmp_path / "missing.pt"
    out = subprocess.run([sys.executable, str(REPO / "build_engines.py"), "--tacotron2", str(t2), "--waveglow", str(wg),
                          "--out", str(tmp_path / "v")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "embedding.weight" in out.stderr and "(149, 512)" in out.stderr


def test_full_size_ngc_checkpoints_become_a_voice_that_speaks_without_torch(tmp_path: Path) -> None:
    t2 = _ngc_checkpoint("tacotron2", tmp_path / "nvidia_tacotron2.pt")
    wg = _ngc_checkpoint("waveglow256", tmp_path / "nvidia_waveglow256.pt")
    voice = tmp_path / "ngc"
    build = subprocess.run([sys.executable, str(REPO / "build_engines.py"), "--tacotron2", str(t2),
                            "--waveglow", str(wg), "--out", str(voice)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    assert "parity with PyTorch: ok" in build.stdout
    assert "TensorRT engines: skipped" in build.stdout or "TensorRT engine:" in build.stdout
    config = json.loads((voice / "voice.json").read_text())
    assert config["audio"]["sample_rate"] == 22050 and config["audio"]["hop_length"] == 256
    assert len(config["text"]["symbols"]) == 148
    wav = tmp_path / "out.wav"
    code = ("import runpy, sys; sys.argv = ['rtvoice', 'say', 'Hello.', '--voice', sys.argv[1], '--out', sys.argv[2],"
            " '--device', 'cpu', '--max-steps', '12'];"
            "from rtvoice.cli import main; rc = main(sys.argv[1:]);"
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    say = subprocess.run([sys.executable, "-c", code, str(voice), str(wav)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert say.returncode == 0, say.stderr
    from rtvoice.audio import read_wav

    samples, rate = read_wav(wav)
    assert rate == 22050 and len(samples) == 12 * 256
    assert samples.std() > 0.01  # noise-like speech, not silence
