"""Word error rate scoring for training/evaluate.py and training/teacher_eval.py (issue 22).

Whisper writes what it hears the way people write ("the FBI", "8:15 p.m.", "986-288-9976",
"where's"), while the corpus holds what synthesis speaks ("the eff bee eye", "eight fifteen
pee em"). Scoring the one against the other counts spelling, not speaking. So both sides are
brought to one canonical form, by the same function, and the reference is the sentence **as
written** (LJSpeech's transcript, corpus-extra.tsv's ``raw``), not the corpus's spoken form
of it. The spoken form changes whenever rtvoice.text does (corpus.tsv was rebuilt on
2026-12-07 and 19 of the 300 held-out texts changed); the written sentence does not, so a
teacher report and a voice report made on either side of a rebuild are scored against the
same words. The canonical form itself uses rtvoice.text, so compare reports scored by the same
code: :func:`rescore` (and training.evaluate's ratio to the teacher) re-score stored
hypotheses for that.

:func:`canonical`, in this order:

1. Brackets become spaces (Whisper's normalizer would drop a "(PRS)" that was spoken).
2. ``rtvoice.text.normalize`` with letter names off: digits, times, dates, money, units,
   titles and acronyms become words the way synthesis reads them, so "FBI", "F.B.I." and
   "f b i" all become "f b i", and "12:30" becomes "twelve thirty" as in the reference.
3. A possessive loses its apostrophe ("debtor's", "debtors'" -> "debtors"; "James's" ->
   "james"): the forms sound alike, and Whisper's normalizer below would make "'s" "is".
   Contractions of pronouns and question words ("it's", "where's") stay for it to expand.
4. Whisper's own ``EnglishTextNormalizer`` (the ``whisper-normalizer`` package, a copy of
   OpenAI's, the convention of Whisper's paper and the Open ASR leaderboard): contractions
   ("where's" -> "where is"), British spellings, fillers, and number words to digits, so that
   "nine eight six" and "nine hundred eighty-six" both become "986".
5. Letter names to letters ("eff bee eye" -> "f b i"): a name and its letter sound the same,
   so a recogniser cannot tell them apart. This matters when a reference is spoken-form text.
6. Fixes for the recogniser's habits: a decade as digits ("his early 20s", which rtvoice
   would read as seconds) is the decade; an ordinal after a month is its number ("September
   20th" for a spoken "September twenty"); "misess" (rtvoice's "Mrs.") is Whisper's "missus".
7. Every number is split into its digits ("1963" -> "1 9 6 3"), and a decimal point or a "to"
   between two digits goes: how a recogniser groups and punctuates digits is formatting
   ("986-288, 9976", read "nine eight six to two eight eight", for a spoken 986 288 9976;
   "4.45" for "4:45"; "twenty, nineteen sixty-three" joins into "201963"), while each wrong,
   missing or extra digit is still one error.

WER is the total word edit distance over the total reference words (Levenshtein on words;
one function does not justify ``jiwer``, and this one is tested on known cases). Reports keep
each hypothesis, so :func:`rescore` re-scores any report without running the recogniser again::

    python -m training.scoring rescore training/eval/teacher-piper.json   # -> teacher-piper-rescored.json
    python -m training.scoring written      # -> training/heldout-written.tsv (the 300, as written)
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from training.corpus_extra import EXTRA
from training.data import CORPUS, TRANSCRIPTS, read_heldout

log = logging.getLogger("training.scoring")

HERE = Path(__file__).resolve().parent
WRITTEN = HERE / "heldout-written.tsv"
"""The held-out LJSpeech sentences as written (from TRANSCRIPTS, which a fresh clone lacks)."""
SCHEME = 2
"""1: the old scorer (corpus text, rtvoice cleaning, lowercase words). 2: this module."""

_BRACKETS = re.compile(r"[()\[\]{}]")
_MONTHS = frozenset("january february march april may june july august september october november december".split())
_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")
_PIECES = re.compile(r"\d|\D+")
_DECADE = re.compile(r"\b([2-9])0s\b")
_DECADES = dict(zip("23456789", "twenties thirties forties fifties sixties seventies eighties nineties".split(),
                    strict=True))
_BETWEEN_DIGITS = frozenset({".", "to"})
_SAYABLE = re.compile(r"[a-z0-9$%¢£€]")
"""A word holds one of these; a lone "." (from "...") is no word."""
_CONTRACTED = frozenset("it he she that what where there here who how when why let".split())
_POSSESSIVE = re.compile(r"\b([a-z]+)'s\b|\b([a-z]+s)'(?![a-z])")
_WORDS = {"misess": "missus", "cannot": "can not"}


def _letter_names() -> dict[str, str]:
    from rtvoice.text.letters import NAMES

    return {name: letter for letter, name in NAMES.items() if " " not in name}


_LETTERS = _letter_names()
_DOUBLE_YOU = re.compile(r"\bdouble you\b")


@functools.cache
def _whisper_normalizer() -> Callable[[str], str]:
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as exc:
        raise SystemExit(f"{exc}. Hint: pip install -e '.[eval]' (whisper-normalizer)") from exc
    normalizer: Callable[[str], str] = EnglishTextNormalizer()
    return normalizer


def _possessive(m: re.Match[str]) -> str:
    """"debtor's", "debtors'" -> "debtors" and "james's" -> "james" (they sound alike); "where's" stays."""
    if m[2]:
        return m[2]
    if m[1] in _CONTRACTED:
        return m[0]
    return m[1] if m[1].endswith("s") else m[1] + "s"


def scheme() -> dict[str, Any]:
    """What scored a report: compare WERs only between equal schemes."""
    return {"scheme": SCHEME, "whisper_normalizer": version("whisper-normalizer"),
            "reference": "as written (LJSpeech transcript, corpus-extra raw), else the corpus text"}


def canonical(text: str) -> list[str]:
    """``text`` (a reference or a recogniser's hypothesis) as canonical words; see the module doc."""
    from rtvoice.text import normalize

    text = _DECADE.sub(lambda m: _DECADES[m[1]], _BRACKETS.sub(" ", text))
    spoken = _POSSESSIVE.sub(_possessive, normalize(text, letter_names=False))
    words = _whisper_normalizer()(spoken)
    words = _DOUBLE_YOU.sub("w", words)
    tokens = [_WORDS.get(w, _LETTERS.get(w, w)) for w in words.split()]
    pieces: list[str] = []
    for i, token in enumerate(tokens):
        ordinal = _ORDINAL.match(token)
        if ordinal and i > 0 and tokens[i - 1] in _MONTHS:
            token = ordinal[1]
        pieces += _PIECES.findall(token)
    return [p for i, p in enumerate(pieces) if _SAYABLE.search(p)
            and not (p in _BETWEEN_DIGITS and 0 < i < len(pieces) - 1 and pieces[i - 1].isdigit()
                     and pieces[i + 1].isdigit())]


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two word lists (substitutions, insertions, deletions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]


def score(ref: str, hyp: str) -> tuple[int, int]:
    """(word errors, reference words) of one sentence, both sides canonical."""
    ref_words = canonical(ref)
    return edit_distance(ref_words, canonical(hyp)), len(ref_words)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER: all word edits over all reference words."""
    scores = [score(r, h) for r, h in zip(refs, hyps, strict=True)]
    return sum(e for e, _ in scores) / max(sum(n for _, n in scores), 1)


def _read_tsv_column(path: Path, column: str) -> dict[int, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    if "index" not in header or column not in header:
        raise ValueError(f"{path} has no index and {column} columns (header {header})")
    at = header.index(column)
    return {int(f[0]): f[at] for f in (line.split("\t") for line in lines[1:])}


def written_texts(transcripts: Path = TRANSCRIPTS, heldout: Path = WRITTEN, extra: Path = EXTRA) -> dict[int, str]:
    """Index -> the sentence as written: the held-out file, corpus-extra's ``raw``, LJSpeech's lines if present."""
    texts: dict[int, str] = {}
    if transcripts.exists():
        texts |= dict(enumerate(transcripts.read_text(encoding="utf-8").splitlines()))
    if heldout.exists():
        texts |= _read_tsv_column(heldout, "written")
    if extra.exists():
        texts |= _read_tsv_column(extra, "raw")
    return texts


def write_heldout(out: Path = WRITTEN, transcripts: Path = TRANSCRIPTS, corpus: Path = CORPUS) -> int:
    """Write the held-out sentences of ``corpus`` as ``transcripts`` writes them; returns how many."""
    lines = transcripts.read_text(encoding="utf-8").splitlines()
    rows = read_heldout(corpus)
    with out.open("w", encoding="utf-8") as f:
        f.write("index\twritten\n")
        for row in rows:
            f.write(f"{row.index}\t{lines[row.index].strip()}\n")
    return len(rows)


def reference(index: int, spoken: str, written: Mapping[int, str]) -> str:
    """What a sentence is scored against: as written where known, else the spoken (corpus) text."""
    return written.get(index, spoken)


def rescore_rows(rows: Sequence[dict[str, Any]], written: Mapping[int, str]) -> list[dict[str, Any]]:
    """Each report row (``index``, ``ref``: the spoken text, ``hyp``) with errors and words of this scheme."""
    out = []
    for row in rows:
        ref = reference(int(row["index"]), row["ref"], written)
        errors, words = score(ref, row["hyp"])
        out.append(row | {"written": ref, "errors": errors, "words": words})
    return out


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sentences, WER, errors and words of report rows."""
    errors, words = sum(int(r["errors"]) for r in rows), sum(int(r["words"]) for r in rows)
    return {"sentences": len(rows), "wer": errors / max(words, 1), "errors": errors, "words": words}


def rescore(report: dict[str, Any], written: Mapping[int, str]) -> dict[str, Any]:
    """A copy of a training.evaluate / teacher_eval report scored by this scheme (hypotheses reused).

    The old figures stay beside the new, under ``before_rescoring``.
    """
    new = dict(report)
    new["before_rescoring"] = dict(report.get("before_rescoring") or {k: report[k] for k in ("wer", "errors", "words")
                                                                        if k in report})   # a copy: set below
    new["scoring"] = scheme()
    held = rescore_rows(report.get("per_sentence", []), written)
    other = rescore_rows(report.get("per_sentence_other", []), written)
    new["per_sentence"] = held
    if "per_sentence_other" in report:
        new["per_sentence_other"] = other
    if "sets" in report:
        new["before_rescoring"].setdefault("sets", report["sets"])
        new["sets"] = {}
        for name in report["sets"]:
            rows = [r for r in held + other if r.get("set", "heldout") == name]
            new["sets"][name] = report["sets"][name] | totals(rows)
    if held:
        new |= totals(held)
    new["scored_against_spoken_text"] = sum(int(r["index"]) not in written for r in held + other)
    return new


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.scoring", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rescore", help="re-score reports from their stored hypotheses (no recogniser run)")
    r.add_argument("reports", type=Path, nargs="+")
    r.add_argument("--suffix", default="-rescored", help="written beside each report as NAME{suffix}.json")
    w = sub.add_parser("written", help=f"write {WRITTEN.name}: the held-out sentences as written")
    w.add_argument("--transcripts", type=Path, default=TRANSCRIPTS)
    w.add_argument("--out", type=Path, default=WRITTEN)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "written":
        print(f"{write_heldout(args.out, args.transcripts)} sentences -> {args.out}")
        return 0
    written = written_texts()
    for path in args.reports:
        report = json.loads(path.read_text())
        new = rescore(report, written)
        out = path.with_name(f"{path.stem}{args.suffix}.json")
        out.write_text(json.dumps(new, indent=1) + "\n")
        before = new["before_rescoring"]
        for name, s in (new.get("sets") or {"heldout": new}).items():
            old = (before.get("sets") or {}).get(name, before)
            print(f"{path.name} {name}: WER {s['wer']:.3f} ({s['errors']} / {s['words']}, {s['sentences']} "
                  f"sentences); was {old.get('wer', float('nan')):.3f} ({old.get('errors')} / {old.get('words')})")
        print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
