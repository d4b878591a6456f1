"""Score NeMo's WFST normalizer on rtvoice's case table (tests/text/normalize_cases.tsv).

Not a test: NeMo is not a dependency. Run it in a throwaway venv, then score:

    python -m venv /tmp/nemo-venv && /tmp/nemo-venv/bin/pip install nemo-text-processing
    /tmp/nemo-venv/bin/python tests/text/compare_nemo.py run /tmp/nemo-cache > /tmp/nemo.json
    python tests/text/compare_nemo.py score /tmp/nemo.json

"run" needs only nemo-text-processing; "score" needs rtvoice. The score is "loose"
(lowercase, hyphens as spaces, punctuation dropped), and "lenient" also runs NeMo's output
through rtvoice's acronym and symbol pass (a char-based voice cannot say "BBC" or "PM"
as written) and ignores "and" and "oh"/"o" (British "one hundred and one" is fine).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

TABLE = Path(__file__).with_name("normalize_cases.tsv")


def rows() -> list[tuple[str, str, list[str]]]:
    lines = [line.rstrip("\n").split("\t") for line in TABLE.read_text().splitlines(keepends=True)
             if line.strip() and not line.startswith("#")]
    return [(cls, raw, [alt.strip() for alt in expected.split(" | ")]) for cls, raw, expected in lines]


def loose(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split())


def lenient(text: str) -> str:
    return " ".join(w for w in loose(text).replace(" o ", " oh ").split() if w != "and")


def run(cache: str) -> None:
    import logging

    logging.disable(logging.INFO)
    from nemo_text_processing.text_normalization.normalize import Normalizer

    start = time.perf_counter()
    normalizer = Normalizer(input_case="cased", lang="en", cache_dir=cache, overwrite_cache=False)
    build = time.perf_counter() - start
    outputs = []
    start = time.perf_counter()
    for _, raw, _ in rows():
        outputs.append(normalizer.normalize(raw, punct_post_process=True))
    per = (time.perf_counter() - start) / len(outputs)
    json.dump({"build_s": build, "per_sentence_s": per, "outputs": outputs}, sys.stdout)


def score(path: str) -> None:
    from rtvoice.text import normalize
    from rtvoice.text.words import expand_acronyms, expand_symbols

    data = json.loads(Path(path).read_text())
    table = rows()
    ours = sum(loose(normalize(raw)) in {loose(a) for a in alts} for _, raw, alts in table)
    nemo = sum(loose(out) in {loose(a) for a in alts} for (_, _, alts), out in zip(table, data["outputs"], strict=True))
    nemo_lenient = sum(lenient(expand_symbols(expand_acronyms(out))) in {lenient(a) for a in alts}
                       for (_, _, alts), out in zip(table, data["outputs"], strict=True))
    start = time.perf_counter()
    for _ in range(5):
        for _, raw, _ in table:
            normalize(raw)
    per = (time.perf_counter() - start) / (5 * len(table))
    print(json.dumps({"cases": len(table), "rtvoice_loose": ours, "nemo_loose": nemo, "nemo_lenient": nemo_lenient,
                      "rtvoice_ms_per_sentence": round(per * 1000, 3),
                      "nemo_ms_per_sentence": round(data["per_sentence_s"] * 1000, 2),
                      "nemo_build_s": round(data["build_s"], 2)}))


if __name__ == "__main__":
    {"run": run, "score": score}[sys.argv[1]](sys.argv[2])
