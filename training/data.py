"""The training corpus and the teacher dataset (espeak-ng audio + mels + symbol ids).

Two steps, two places:

``corpus`` (here, once; its output training/corpus.tsv is committed):
    LJSpeech's transcripts -> rtvoice's own text cleaning -> one line per sentence:
    ``index<TAB>split<TAB>text``, where ``text`` is the cleaned symbol string (each
    character one symbol of rtvoice.text.SYMBOLS), ``split`` is ``train`` or ``heldout``
    (a seeded pick of 300, kept out of training for the evaluation). espeak-ng speaks
    exactly this text, so the model hears what it reads.

``make`` (on the GPU machine, at the start of each stretch; about half a minute there):
    corpus.tsv -> espeak-ng over N processes -> mels -> shards of ``--shard-size``
    utterances in ``--out`` (default training/data/). Resumable: finished shards are
    skipped, so an interrupted run, or a second call on a still-warm machine, costs
    nothing. Each shard is one .npz: int16 audio, float16 mels (frames, 80), int16 ids.

``heldout``: print the held-out sentences (for the WER evaluation).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.espeak import SAMPLE_RATE, Teacher
from training.shard_workers import ShardWorkers, WorkerDied

log = logging.getLogger("training.data")

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus.tsv"
DATA = HERE / "data"
TRANSCRIPTS = Path("/work/shared/data/ljspeech-transcripts-train.txt")
HELDOUT = 300
HELDOUT_SEED = 20251125
MANIFEST = "manifest.json"
POLL_S = 0.5
"""How often ``make``, while it waits for a shard, checks its deadline and its worker processes."""
FIRST_SHARD_GRACE_S = 60.0
"""How long past the deadline ``make`` still waits for its first shard (about one Piper shard of 64
sentences on one CPU core of the H100 machine, 40 s, plus a margin): a run stopped by a deadline
then leaves at least one more shard for the next, unless that shard is stuck."""


@dataclass(frozen=True)
class Row:
    index: int
    split: str
    text: str


def clean(line: str) -> str:
    """``line`` as synthesis reads it, one character per symbol.

    rtvoice.text's ``normalize`` with the runtime's default reading (``TextConfig``: spelled
    letters by their names, month-first dates), as ``rtvoice.synthesizer`` normalizes before
    it maps symbols; the student then reads in training what it will be given at run time.
    Raises TextError when nothing speakable is left.
    """
    from rtvoice.config import TextConfig
    from rtvoice.text import SYMBOLS, normalize, text_to_ids

    ids = text_to_ids(normalize(line, letter_names=TextConfig().letter_names), normalized=True)
    symbols = [SYMBOLS[k] for k in ids]
    if any(len(s) != 1 for s in symbols):
        raise ValueError(f"{line[:60]!r} holds ARPAbet; the corpus stores one character per symbol.")
    return "".join(symbols)


def build_corpus(transcripts: Path, out: Path, heldout: int = HELDOUT, seed: int = HELDOUT_SEED) -> list[Row]:
    """Clean every transcript line with rtvoice.text (:func:`clean`) and write ``out`` (see the module doc)."""
    from rtvoice.errors import TextError

    lines = transcripts.read_text(encoding="utf-8").splitlines()
    picked = set(random.Random(seed).sample(range(len(lines)), heldout))
    logging.getLogger("rtvoice.text").setLevel(logging.ERROR)  # dropped quotes etc.: counted below
    rows: list[Row] = []
    skipped = 0
    for i, line in enumerate(lines):
        try:
            text = clean(line)
        except TextError:
            skipped += 1
            continue
        rows.append(Row(i, "heldout" if i in picked else "train", text))
    with out.open("w", encoding="utf-8") as f:
        f.write("index\tsplit\ttext\n")
        for r in rows:
            f.write(f"{r.index}\t{r.split}\t{r.text}\n")
    n_held = sum(r.split == "heldout" for r in rows)
    log.info("%s: %d sentences (%d held out), %d skipped as unspeakable", out, len(rows), n_held, skipped)
    return rows


def read_corpus(path: Path = CORPUS) -> list[Row]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != "index\tsplit\ttext":
        raise ValueError(f"{path} is not a corpus (header {lines[:1]}). Hint: python -m training.data corpus")
    rows = []
    for line in lines[1:]:
        index, split, text = line.split("\t", 2)
        rows.append(Row(int(index), split, text))
    return rows


def read_heldout(path: Path = CORPUS) -> list[Row]:
    """The sentences kept out of training, in corpus order: what every WER evaluation speaks."""
    return [r for r in read_corpus(path) if r.split == "heldout"]


def select(rows: list[Row], limit: int | None, max_chars: int | None = None) -> list[Row]:
    """All rows, or a tiny run's: the first ``limit`` training rows and a tenth as many held out.

    With ``max_chars``, only rows of at most that many symbols are taken.
    """
    if max_chars is not None:
        rows = [r for r in rows if len(r.text) <= max_chars]
    if limit is None:
        return rows
    train = [r for r in rows if r.split == "train"][:limit]
    held = [r for r in rows if r.split == "heldout"][: max(2, limit // 10)]
    return sorted(train + held, key=lambda r: r.index)


def symbol_ids(text: str) -> np.ndarray:
    from rtvoice.text import SYMBOLS

    table = {s: i for i, s in enumerate(SYMBOLS)}
    unknown = sorted(set(text) - set(table))
    if unknown:
        raise ValueError(f"Text {text[:40]!r} has characters that are no symbol: {unknown}. "
                         "Hint: corpus.tsv holds cleaned text; rebuild it with python -m training.data corpus.")
    return np.array([table[c] for c in text], dtype=np.int16)


def _speak_shard(job: tuple[str, Teacher, list[str]]) -> tuple[str, list[np.ndarray], float]:
    name, teacher, texts = job
    start = time.perf_counter()
    clips = [teacher.speak(t) for t in texts]
    return name, clips, time.perf_counter() - start


def make(out: Path, rows: list[Row], teacher: Teacher | Any, jobs: int, shard_size: int, device: str,
         deadline: float | None = None, order_seed: int | None = None) -> dict | None:
    """Generate the missing shards of ``rows`` into ``out``; returns the manifest.

    The missing shards are made in corpus order, or, with ``order_seed``, in an order shuffled
    by it. Why: a time-boxed GPU call makes only the first few thousand sentences of a cold
    corpus, so in corpus order every session's calls train on the same first third of LJSpeech
    and never on our own sentences (corpus-extra.tsv, at the end); shuffled, each session's
    partial corpus is another draw from all of it. The shards themselves are the same either way.

    With ``deadline`` (a ``time.monotonic()`` value), stops there and returns None if shards
    are still missing: the finished ones stay, listed in a manifest with ``"complete": false``
    (trainable as they are), and the next call makes only the rest. Until this call made its
    first shard, it waits past the deadline up to :data:`FIRST_SHARD_GRACE_S` for it.

    A worker process that dies (killed, out of memory, an abort inside ONNX Runtime) takes its
    shard with it; ``make`` then stops the same way, with an error line, instead of waiting for
    that shard forever (training/shard_workers.py).
    """
    import torch

    from training.mel import MelSpectrogram, int16_to_float

    out.mkdir(parents=True, exist_ok=True)
    # A teacher with settings() (training.teacher.PiperTeacher) records those; espeak-ng its fields.
    described = teacher.settings() if hasattr(teacher, "settings") else asdict(teacher) | {"espeak": None}
    settings = {"teacher": described, "sample_rate": SAMPLE_RATE,
                "mel": "training.mel v1 (rtvoice AudioConfig)"}
    path = out / MANIFEST
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("settings") != settings:
            raise ValueError(f"{out} was made with other settings ({old.get('settings')}). "
                             "Hint: pass another --out, or delete that folder.")
    shards = {f"shard-{c[0].index:05d}-{c[-1].index:05d}-{len(c)}.npz": c
              for c in (rows[i : i + shard_size] for i in range(0, len(rows), shard_size))}
    stale = [name for name, chunk in shards.items() if (out / name).exists() and not _holds(out / name, chunk)]
    for name in stale:  # its rows' texts changed (a rebuilt corpus): made again, not mixed in
        (out / name).unlink()
    if stale:
        log.info("%d shards hold texts the corpus no longer has: made again", len(stale))
    finished = {name: chunk for name, chunk in shards.items() if (out / name).exists()}
    todo = [(name, teacher, [r.text for r in chunk]) for name, chunk in shards.items() if name not in finished]
    if order_seed is not None:
        random.Random(order_seed).shuffle(todo)
    log.info("%d of %d shards to make in %s with %d processes%s", len(todo), len(shards), out, jobs,
             "" if order_seed is None else f", in an order shuffled with seed {order_seed}")
    mel_fn = MelSpectrogram().to(device)
    start, cpu = time.perf_counter(), 0.0
    if todo:
        with ShardWorkers(_speak_shard, jobs) as workers:
            workers.submit(todo)
            done, died = 0, ""
            while workers.pending:
                try:
                    result = workers.next(timeout=POLL_S)
                except WorkerDied as exc:
                    result, died = None, str(exc)
                if result is not None:
                    name, clips, seconds = result
                    done += 1
                    cpu += seconds
                    chunk = shards[name]
                    with torch.no_grad():
                        mels = [mel_fn(int16_to_float(c).to(device)[None])[0].T.half().cpu().numpy() for c in clips]
                    save_shard(out / name, [r.index for r in chunk], clips, mels, [symbol_ids(r.text) for r in chunk])
                    finished[name] = chunk
                    if done < len(todo):  # a trainer following the corpus (--follow-data) sees each new shard
                        _write_manifest(path, settings, finished, len(shards))
                    if done % 10 == 0 or done == len(todo):
                        log.info("  %d/%d shards, %.0f s", done, len(todo), time.perf_counter() - start)
                now = time.monotonic()
                if died:
                    log.error("error: a teacher process died (%s) and took its shard with it: %d of %d shards made "
                              "this time; the finished ones stay, the next call makes the rest", died, done, len(todo))
                elif (deadline is not None and now > deadline and workers.pending
                      and (done or now > deadline + FIRST_SHARD_GRACE_S)):
                    log.warning("out of time: %d of %d shards made this time; the next call makes the rest", done,
                                len(todo))
                else:
                    continue
                workers.stop()  # (shards in flight are lost; each takes seconds)
                if finished:
                    _write_manifest(path, settings, finished, len(shards))
                else:
                    path.unlink(missing_ok=True)
                return None
    manifest = _write_manifest(path, settings, shards, len(shards))
    if todo:
        log.info("teacher: %.1f ms of one core per sentence; wall %.0f s for %d sentences",
                 1000 * cpu / sum(len(t[2]) for t in todo), time.perf_counter() - start, sum(len(t[2]) for t in todo))
    return manifest


def _write_manifest(path: Path, settings: dict, shards: dict[str, list[Row]], planned: int) -> dict:
    """Write the manifest over ``shards`` (name -> rows) of the ``planned`` ones.

    ``"complete": false`` marks a deadline-stopped corpus (fewer shards than planned).

    A partial manifest lets a call train on the finished shards (training/stretch.sh PARTIAL=1);
    the next ``make`` still makes the rest and writes a complete one.
    """
    manifest = {"settings": settings, "complete": len(shards) == planned, "planned": planned,
                "shards": sorted(shards),
                "heldout": sorted(r.index for chunk in shards.values() for r in chunk if r.split == "heldout")}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, path)
    return manifest


def _holds(path: Path, rows: list[Row]) -> bool:
    """Whether the shard at ``path`` was made from exactly these rows' texts (by their symbol ids)."""
    try:
        with np.load(path) as shard:
            ids, index = shard["ids"], shard["index"]
    except (OSError, ValueError, KeyError):
        return False
    want = [symbol_ids(r.text) for r in rows]
    return index.tolist() == [r.index for r in rows] and np.array_equal(ids, np.concatenate(want))


def save_shard(path: Path, index: list[int], audio: list[np.ndarray], mels: list[np.ndarray],
               ids: list[np.ndarray]) -> None:
    """Write one shard (the only writer of the layout :meth:`Dataset.load` reads), atomically.

    ``audio`` int16 clips, ``mels`` float16 (frames, n_mel), ``ids`` int16 symbol ids, per item.
    """
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, index=np.array(index, np.int32),
             audio=np.concatenate(audio), audio_len=np.array([c.size for c in audio], np.int32),
             mel=np.concatenate(mels), mel_len=np.array([m.shape[0] for m in mels], np.int32),
             ids=np.concatenate(ids), ids_len=np.array([i.size for i in ids], np.int32))
    os.replace(tmp, path)


@dataclass(frozen=True)
class Dataset:
    """The whole dataset in packed arrays; utterance ``i`` is ``x[x_off[i]:x_off[i + 1]]``."""

    index: np.ndarray
    heldout: np.ndarray
    ids: np.ndarray
    ids_off: np.ndarray
    mel: np.ndarray
    mel_off: np.ndarray
    audio: np.ndarray
    audio_off: np.ndarray
    shards: tuple[str, ...] = ()
    """The shard files it holds, in order (what :meth:`grown` leaves out)."""

    @classmethod
    def load(cls, folder: Path = DATA, with_audio: bool = True) -> Dataset:
        return cls.load_shards(folder, None, with_audio)

    @classmethod
    def load_shards(cls, folder: Path, names: list[str] | None, with_audio: bool = True) -> Dataset:
        """The shards ``names`` of ``folder`` (all of them for None)."""
        path = folder / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{folder} holds no dataset. Hint: python -m training.data make --out {folder}")
        manifest = json.loads(path.read_text())
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("index", "audio", "audio_len", "mel", "mel_len",
                                                               "ids", "ids_len")}
        shard_names = list(manifest["shards"] if names is None else names)
        for name in shard_names:
            with np.load(folder / name) as shard:
                for key, value in parts.items():
                    if key != "audio" or with_audio:
                        value.append(shard[key])

        def offsets(lengths: list[np.ndarray]) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(np.concatenate(lengths).astype(np.int64))])

        index = np.concatenate(parts["index"])
        return cls(index=index, heldout=np.isin(index, manifest["heldout"]),
                   ids=np.concatenate(parts["ids"]), ids_off=offsets(parts["ids_len"]),
                   mel=np.concatenate(parts["mel"]), mel_off=offsets(parts["mel_len"]),
                   audio=np.concatenate(parts["audio"]) if with_audio else np.zeros(0, np.int16),
                   audio_off=offsets(parts["audio_len"]), shards=tuple(shard_names))

    def grown(self, folder: Path) -> Dataset | None:
        """This dataset with the shards ``folder``'s manifest lists beyond its own appended; None if none.

        Why: a GPU call's teacher goes on making the corpus while the models train on the shards
        made so far (training/stretch.sh TEACHER_BACKGROUND); a trainer with ``--follow-data``
        takes each new shard in. Rows stay where they were, so indices into this dataset keep
        meaning the same utterance.
        """
        try:
            listed = json.loads((folder / MANIFEST).read_text())["shards"]
        except (OSError, ValueError, KeyError):
            return None  # (being replaced this instant, or gone: the next look sees it)
        have = set(self.shards)
        new = [n for n in listed if n not in have]
        if not new:
            return None
        more = Dataset.load_shards(folder, new, with_audio=self.audio.size == int(self.audio_off[-1]))

        def joined(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.concatenate([a, b[1:] + a[-1]])

        return Dataset(index=np.concatenate([self.index, more.index]),
                       heldout=np.concatenate([self.heldout, more.heldout]),
                       ids=np.concatenate([self.ids, more.ids]), ids_off=joined(self.ids_off, more.ids_off),
                       mel=np.concatenate([self.mel, more.mel]), mel_off=joined(self.mel_off, more.mel_off),
                       audio=np.concatenate([self.audio, more.audio]),
                       audio_off=joined(self.audio_off, more.audio_off), shards=self.shards + more.shards)

    def __len__(self) -> int:
        return int(self.index.size)

    def split(self, key: str) -> list[np.ndarray]:
        """One array per utterance of ``key`` ("ids", "mel" or "audio")."""
        values, off = getattr(self, key), getattr(self, f"{key}_off")
        return [values[off[i] : off[i + 1]] for i in range(len(self))]

    def mel_lengths(self) -> np.ndarray:
        return np.diff(self.mel_off)

    def ids_lengths(self) -> np.ndarray:
        return np.diff(self.ids_off)

    def describe(self) -> str:
        hours = self.mel.shape[0] * 256 / SAMPLE_RATE / 3600
        nbytes = self.mel.nbytes + self.audio.nbytes + self.ids.nbytes
        return (f"{len(self)} utterances ({int(self.heldout.sum())} held out), {hours:.2f} h, "
                f"{self.mel.shape[0]} mel frames; {nbytes / 2**20:.0f} MiB in memory")


class CorpusFollower:
    """Looks, at most every ``every_s`` seconds, for shards a teacher has finished since the last look.

    A trainer run with ``--follow-data`` calls :meth:`poll` between steps and trains on what it
    returns. Why: on a GPU call the teacher's first minutes made only 21-36 of the corpus's 244
    shards, and Tacotron 2 then took 55-100 passes over those 1,300-2,300 sentences while 16 CPU
    cores sat idle; made beside the training, the corpus grows through the call.
    """

    def __init__(self, folder: Path, every_s: float) -> None:
        self.folder, self.every_s = folder, every_s
        self.last = time.monotonic()

    def poll(self, data: Dataset) -> Dataset | None:
        """``data`` grown by the new shards, or None (nothing new, not due yet, or following is off)."""
        if self.every_s <= 0 or time.monotonic() - self.last < self.every_s:
            return None
        self.last = time.monotonic()
        grown = data.grown(self.folder)
        if grown is not None:
            log.info("data: %d more shards from the teacher: %s", len(grown.shards) - len(data.shards),
                     grown.describe())
        return grown


def max_decoder_steps(data: Dataset, max_chars: int = 300) -> int:
    """A decoder step limit for the voice, from the data.

    The slowest frames-per-symbol rate seen in sentences of 40+ symbols (99.5th
    percentile), times the runtime's longest sentence (TextConfig.sentence_max_chars),
    plus a quarter, rounded up to a hundred.
    """
    lengths = data.ids_lengths()
    long = lengths >= 40
    rate = data.mel_lengths()[long] / lengths[long] if long.any() else data.mel_lengths() / np.maximum(lengths, 1)
    steps = float(np.percentile(rate, 99.5)) * max_chars * 1.25
    return int(-(-steps // 100) * 100)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.data", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus", help="transcripts -> training/corpus.tsv (run once, commit the result)")
    c.add_argument("--transcripts", type=Path, default=TRANSCRIPTS)
    c.add_argument("--out", type=Path, default=CORPUS)
    m = sub.add_parser("make", help="corpus -> espeak-ng audio + mels, in resumable shards (exit 4: a worker "
                       "process died; the finished shards stay under a partial manifest, the next run makes the rest)")
    m.add_argument("--corpus", type=Path, default=CORPUS)
    m.add_argument("--out", type=Path, default=DATA)
    m.add_argument("--espeak", default="espeak-ng", help="espeak-ng program or the bundled wrapper")
    m.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="espeak-ng processes")
    m.add_argument("--limit", type=int, help="tiny run: this many training sentences (and a tenth held out)")
    m.add_argument("--max-chars", type=int, help="tiny run: only sentences this short")
    m.add_argument("--shard-size", type=int, default=128)
    m.add_argument("--device", default="cuda" if cuda_available() else "cpu", help="where mels are computed")
    h = sub.add_parser("heldout", help="print the held-out sentences, one a line")
    h.add_argument("--corpus", type=Path, default=CORPUS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "corpus":
        build_corpus(args.transcripts, args.out)
    elif args.cmd == "make":
        rows = select(read_corpus(args.corpus), args.limit, args.max_chars)
        if make(args.out, rows, Teacher(espeak=args.espeak), args.jobs, args.shard_size, args.device) is None:
            return 4  # a worker died: the finished shards stay under a partial manifest
        data = Dataset.load(args.out)
        log.info("%s: %s; on disk %.0f MiB", args.out, data.describe(),
                 sum(f.stat().st_size for f in args.out.glob("*.npz")) / 2**20)
    else:
        for row in read_heldout(args.corpus):
            print(row.text)
    return 0


def cuda_available() -> bool:
    """Whether torch sees a GPU; False where torch is not installed (so argument defaults work without it)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


if __name__ == "__main__":
    sys.exit(main())
