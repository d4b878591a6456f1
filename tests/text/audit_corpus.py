"""Dump what the normalizer says for every audit sentence, to read and to diff between versions.

The sentences: the 300 held-out LJSpeech sentences as written (training/heldout-written.tsv),
the raw column of training/corpus-extra.tsv, the voice-assistant and announcement sentences of
assistant_sentences.txt, and LJSpeech's transcripts where they exist
(/work/shared/data; a fresh clone lacks them). Not a test: misreadings are found by reading
the dump (and diffing it against a dump from the previous normalizer); each one fixed becomes
a row of normalize_cases.tsv.

    python tests/text/audit_corpus.py /tmp/now.tsv     # id, written, spoken per line
"""

from __future__ import annotations

import sys
from pathlib import Path

from rtvoice.text import normalize

ROOT = Path(__file__).resolve().parents[2]
TRANSCRIPTS = Path("/work/shared/data/ljspeech-transcripts-train.txt")


def sentences() -> list[tuple[str, str]]:
    """(id, written) for every audit sentence: H<index>, X<index>, A<line>, L<line>."""
    rows = [("H" + line.split("\t", 1)[0], line.split("\t", 1)[1])
            for line in (ROOT / "training/heldout-written.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    for line in (ROOT / "training/corpus-extra.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        rows.append(("X" + parts[0], parts[4]))
    assistant = Path(__file__).with_name("assistant_sentences.txt").read_text(encoding="utf-8").splitlines()
    rows += [(f"A{n}", line) for n, line in enumerate(assistant) if line and not line.startswith("# ")]
    if TRANSCRIPTS.exists():
        rows += [(f"L{n}", line.strip())
                 for n, line in enumerate(TRANSCRIPTS.read_text(encoding="utf-8").splitlines())]
    return rows


def main(out: str) -> None:
    with open(out, "w", encoding="utf-8") as f:
        for key, written in sentences():
            f.write(f"{key}\t{written}\t{normalize(written)}\n")


if __name__ == "__main__":
    main(sys.argv[1])
