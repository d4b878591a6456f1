"""A reduction factor r (``n_frames_per_step``) in training: r frames per decoder step.

Teacher forcing equals a step-by-step decode, padding stays invisible, an r = 1 checkpoint
converts to r = 2 keeping every weight, and the trainer trains, converts and resumes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rtvoice.export.tacotron2 import DecoderState, Tacotron2, Tacotron2Params  # noqa: E402
from tests.training.test_training_data import tiny_corpus  # noqa: E402
from training.decoder_graphs import random_batch  # noqa: E402
from training.tacotron2_steps import (  # noqa: E402
    Batch,
    Dropouts,
    decoder_steps,
    free_run,
    guide_weights,
    losses,
    prenet_masks,
    step_frames,
    teacher_forced,
)
from training.train_tacotron2 import PRESETS, convert_frames_per_step  # noqa: E402

R2 = dataclasses.replace(PRESETS["tiny"], n_frames_per_step=2)
CPU = torch.device("cpu")
PROJECTION = ("decoder.linear_projection.linear_layer", "decoder.gate_layer.linear_layer")


def test_training_r2_teacher_forcing_equals_a_step_by_step_decode() -> None:
    """Each item (12 frames, and 7: it ends mid-group) is the step-by-step decode of it alone."""
    torch.manual_seed(0)
    model = Tacotron2(R2).eval()
    batch = random_batch(CPU)
    masks = prenet_masks(6, 2, R2.prenet_dim, 0.5, CPU)  # one per decoder step: 12 frames / 2
    with torch.no_grad():
        out = teacher_forced(model, batch, masks, Dropouts())
        assert out.mel.shape == (2, 80, 12) and out.gate.shape == (2, 12) and out.alignments.shape == (2, 6, 9)
        for b in range(2):
            n, frames = int(batch.text_lengths[b]), int(batch.mel_lengths[b])
            memory, processed, mask = model.encode(batch.text[b : b + 1, :n], batch.text_lengths[b : b + 1])
            state = DecoderState.zeros(R2, 1, n, memory)
            frame, stepped = torch.zeros(1, 80), []
            for g in range(decoder_steps(frames, 2)):
                group, gate, state = step_frames(model, frame, state, memory, processed, mask, masks[g, b : b + 1])
                for j in range(2):
                    t = 2 * g + j
                    if t < frames:
                        torch.testing.assert_close(out.mel[b, :, t], group[0, :, j], atol=1e-5, rtol=1e-5)
                        torch.testing.assert_close(out.gate[b, t], gate[0, j], atol=1e-5, rtol=1e-5)
                        stepped.append(group[0, :, j])
                torch.testing.assert_close(out.alignments[b, g, :n], state.attention_weights[0], atol=1e-6, rtol=1e-5)
                frame = batch.mel[b : b + 1, :, 2 * g + 1]  # the teacher's last frame of this group
            assert not out.mel[b, :, frames:].any() and not out.alignments[b, :, n:].any()
            torch.testing.assert_close(out.mel_postnet[b, :, :frames], model.postnet(torch.stack(stepped, 1)[None])[0],
                                       atol=1e-5, rtol=1e-5)


def test_training_r2_padding_a_batch_further_changes_no_loss() -> None:
    torch.manual_seed(0)
    model = Tacotron2(R2).eval()
    batch = random_batch(CPU)
    masks = prenet_masks(9, 2, R2.prenet_dim, 0.5, CPU)
    padded = Batch(torch.nn.functional.pad(batch.text, (0, 4)), batch.text_lengths,
                   torch.nn.functional.pad(batch.mel, (0, 5)), batch.mel_lengths)  # 17 frames: 9 steps
    with torch.no_grad():
        plain = losses(teacher_forced(model, batch, masks[:6], Dropouts()), batch, 8.0, 0.2)
        out = teacher_forced(model, padded, masks, Dropouts())
        more = losses(out, padded, 8.0, 0.2)
    assert out.mel.shape[2] == 17 and out.alignments.shape[1] == 9
    # Guided attention is per decoder step: items of 12 and 7 frames take 6 and 4 steps.
    steps = torch.tensor([6, 4])
    w = guide_weights(batch.text_lengths, steps, 13, 9, 0.2)
    torch.testing.assert_close(more["guide"], (out.alignments * w).sum() / 10, atol=1e-6, rtol=1e-5)
    for name in ("mel", "mel_postnet", "gate", "guide"):
        assert float(plain[name]) > 0, name
        torch.testing.assert_close(more[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)
    with pytest.raises(ValueError, match="5 prenet masks for 6 decoder steps"):
        teacher_forced(model, batch, masks[:5], Dropouts())


def test_training_r1_to_r2_conversion_keeps_every_weight_and_starts_each_frame_as_the_next() -> None:
    torch.manual_seed(0)
    one = Tacotron2(PRESETS["tiny"]).eval()
    with torch.no_grad():
        one.decoder.gate_layer.linear_layer.bias.fill_(0.3)
    state, params = convert_frames_per_step(one.state_dict(), one.params, 2)
    assert params == R2
    two = Tacotron2(params).eval()
    two.load_state_dict(state)  # every name and shape fits
    old = one.state_dict()
    for name, tensor in two.state_dict().items():
        if name.rsplit(".", 1)[0] in PROJECTION:
            rows = old[name].size(0)
            assert tensor.size(0) == 2 * rows
            assert torch.equal(tensor[:rows], old[name]) and torch.equal(tensor[rows:], old[name])
        else:
            assert torch.equal(tensor, old[name]), name
    # The first step sees the same zero frame and state: both frames of its group are r = 1's first frame.
    text = torch.randint(1, 148, (1, 9), generator=torch.Generator().manual_seed(1))
    masks = prenet_masks(1, 1, params.prenet_dim, 0.5, CPU)
    with torch.no_grad():
        mel, _, gate = one.infer(text, masks, n_steps=1)
        memory, processed, mask = two.encode(text, torch.tensor([9]))
        group, gates, _ = step_frames(two, torch.zeros(1, 80), DecoderState.zeros(params, 1, 9, memory), memory,
                                      processed, mask, masks[0])
    torch.testing.assert_close(group, mel.expand(1, 80, 2), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gates, gate.expand(1, 2), atol=1e-6, rtol=1e-6)
    back, params_back = convert_frames_per_step(state, params, 1)  # and back: frame 0's rows
    assert params_back == one.params and all(torch.equal(back[k], v) for k, v in old.items())


def test_training_r2_free_run_stops_mid_group_and_counts_frames() -> None:
    torch.manual_seed(0)
    model = Tacotron2(R2).eval()
    ids = torch.randint(1, 148, (9,), generator=torch.Generator().manual_seed(2))
    bias = model.decoder.gate_layer.linear_layer.bias
    with torch.no_grad():
        bias.copy_(torch.tensor([-30.0, -30.0]))
        mel, gate, align, stopped = free_run(model, ids, max_steps=7)
        assert not stopped and mel.shape == (80, 7) and gate.shape == (7,) and align.shape == (4, 9)
        bias.copy_(torch.tensor([-30.0, 30.0]))  # the second frame of the first group ends it
        mel, gate, align, stopped = free_run(model, ids, max_steps=7)
        assert stopped and mel.shape == (80, 2) and align.shape == (1, 9)
        bias.copy_(torch.tensor([30.0, 30.0]))  # the first frame does
        mel, gate, _, stopped = free_run(model, ids, max_steps=7)
        assert stopped and mel.shape == (80, 1) and gate.shape == (1,)


@pytest.mark.timeout(600)
def test_training_frames_per_step_trains_converts_resumes_and_gta_keeps_lengths(tmp_path: Path) -> None:
    from rtvoice.export.waveglow import WaveGlow
    from training import checkpoint, export_default, gta, train_tacotron2, train_waveglow
    from training.data import Dataset

    words = ["hello there.", "good morning, sir.", "a cat sat.", "we go home now.", "yes.", "no way."]
    data = tiny_corpus(tmp_path, words, heldout={5})
    common = ["--data", str(data), "--preset", "tiny", "--reserve-seconds", "0", "--resume", "--minutes", "0.01",
              "--batch-size", "4", "--log-every", "1"]

    # A new run at r = 2, resumed without the flag: it stays at 2.
    fresh = tmp_path / "fresh"
    assert train_tacotron2.main([*common, "--out", str(fresh), "--frames-per-step", "2"]) == 0
    first = checkpoint.load(fresh / "tacotron2.pt")
    assert first["config"]["n_frames_per_step"] == 2 and first["iteration"] > 0
    assert first["state_dict"]["decoder.gate_layer.linear_layer.weight"].shape[0] == 2
    assert train_tacotron2.main([*common, "--out", str(fresh)]) == 0
    again = checkpoint.load(fresh / "tacotron2.pt")
    assert again["config"]["n_frames_per_step"] == 2 and again["iteration"] > first["iteration"]

    # An r = 1 run converted to r = 2: weights kept, a fresh optimizer warming up again.
    ckpt = tmp_path / "ckpt"
    assert train_tacotron2.main([*common, "--out", str(ckpt)]) == 0
    one = checkpoint.load(ckpt / "tacotron2.pt")
    assert one["config"]["n_frames_per_step"] == 1
    assert train_tacotron2.main([*common, "--out", str(ckpt), "--frames-per-step", "2", "--lr", "0"]) == 0
    log = (ckpt / "tacotron2.log").read_text()
    assert "converting the checkpoint from 1 to 2 frames per decoder step" in log
    assert "(fresh optimizer: warming up again)" in log[log.index("converting the checkpoint") :]
    two = checkpoint.load(ckpt / "tacotron2.pt")
    assert two["config"]["n_frames_per_step"] == 2 and two["iteration"] > one["iteration"]
    converted, _ = convert_frames_per_step(one["state_dict"], Tacotron2Params.from_config(one["config"]), 2)
    for name, tensor in two["state_dict"].items():  # --lr 0: training moved nothing
        if tensor.is_floating_point() and "running_" not in name:
            assert torch.equal(tensor, converted[name]), name

    # GTA mels of an r = 2 model have exactly the teacher's lengths.
    out = tmp_path / "gta"
    gta.make(data, out, ckpt, seed=0, batch_size=2, device="cpu")
    teacher, student = Dataset.load(data), Dataset.load(out)
    np.testing.assert_array_equal(student.mel_off, teacher.mel_off)
    assert np.isfinite(student.mel).all()
    wg = train_waveglow.PRESETS["tiny"]
    checkpoint.save({"state_dict": WaveGlow(wg).state_dict(), "config": wg.to_dict(), "iteration": 1},
                    ckpt / "waveglow.pt")
    # The export makes a voice of 2 frames a step, and the runtime decodes it as training's own step does.
    voice = tmp_path / "voice"
    assert export_default.main(["--checkpoints", str(ckpt), "--out", str(voice), "--max-decoder-steps", "41"]) == 0
    _runtime_decodes_as_training_steps(voice, ckpt / "tacotron2.pt")


def _runtime_decodes_as_training_steps(voice: Path, tacotron2_checkpoint: Path) -> None:
    """The CPU runtime's mel and gates against :func:`step_frames`, each step fed its last frame."""
    from rtvoice import SynthesisConfig, Voice
    from rtvoice.audio import concatenate
    from rtvoice.engine.randomness import PrenetMasks
    from rtvoice.export.checkpoint import load_tacotron2

    model = load_tacotron2(tacotron2_checkpoint)
    p = model.params
    ids = [5, 12, 30, 7, 19, 44, 3]
    masks = PrenetMasks(0, 0, p.prenet_dim, p.prenet_dropout).take(10)
    with Voice.load(voice, backend="onnxruntime", device="cpu") as v:
        assert v.config.decoder.frames_per_step == 2 and v.config.decoder.max_decoder_steps == 41
        utterance = v.engine.open_utterance(ids, 20)
        gates = utterance.decode(masks)
        mel = utterance.mel(0, 20)
        utterance.close()
        # (a text short enough to be one piece: 41 frames at text.frames_per_char 8 hold 5 characters)
        audio = concatenate(v.synthesize("hi.", SynthesisConfig(force_steps=41)))
    assert len(audio) == 41 * v.config.audio.hop_length
    with torch.no_grad():
        text = torch.tensor([ids])
        memory, processed, mask = model.encode(text, torch.tensor([len(ids)]))
        state = DecoderState.zeros(p, 1, len(ids), memory)
        frame = memory.new_zeros(1, p.n_mel_channels)
        frames, logits = [], []
        for i in range(10):
            group, gate, state = step_frames(model, frame, state, memory, processed, mask, torch.from_numpy(masks[i]))
            frame = group[:, :, -1]
            frames.append(group[0])
            logits.append(gate[0])
    np.testing.assert_allclose(mel, torch.cat(frames, dim=1).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gates, torch.cat(logits).numpy(), rtol=1e-4, atol=1e-4)
