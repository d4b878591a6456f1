"""training/scoring.py: one canonical form for a sentence as written, as spoken, and as Whisper writes it.

The pairs are real: the written text of corpus.tsv / corpus-extra.tsv (or a sentence like them)
and a hypothesis in the style Whisper tiny.en wrote for the Piper teacher (eval/teacher-piper*.json).
The old scorer (corpus text, rtvoice cleaning, lowercase words) counted 1-8 errors on each of the
first sixteen, though nothing was mis-spoken.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.data import TRANSCRIPTS, clean, read_heldout
from training.scoring import WRITTEN, canonical, rescore, score, wer, written_texts

SAID_ALIKE = [
    ("because she thought the FBI was in possession of a great deal of information",  # held-out #2738
     "Because she thought the FBI was in possession of a great deal of information."),
    ("The store closes at 3:55 p.m. tonight.", "The store closes at 3.55 p.m. tonight."),
    ("Your alarm is set for 1:50 p.m.", "Your alarm is set for 1:50 PM."),
    ("Martin's number is (986) 288-9976.", "Martin's number is 986-288, 9976."),
    ("Where is the nearest pharmacy?", "Where's the nearest pharmacy?"),
    ("It is the twenty-first of May.", "It's the 21st of May."),
    ("The fare went up to $8.99.", "The fare went up to eight dollars and ninety-nine cents."),
    ("Oswald left for Mexico City on September twenty-five, nineteen sixty-three,",
     "Oswald left for Mexico City on September 25th, 1963."),
    ("Mrs. Davis said a white male in his early twenties", "Mrs Davis said a white male in his early 20s."),
    ("The head of the debtors' prison", "The head of the debtor's prison."),
    ("Vice President Lyndon B. Johnson was in Dallas", "Vice President Lyndon B Johnson was in Dallas."),
    ("WDSU has no program of any kind", "W.D.S.U. has no program of any kind."),
    ("The staff of the Protective Research Section (PRS)", "The staff of the protective research section, PRS."),
    ("at about four:thirty p.m.,", "At about 4:30 p.m."),
    ("Set an alarm for 8:05.", "Set an alarm for 8.05."),
    ("He won't pay 1,250 dollars.", "He will not pay $1250."),
    ("the second floor", "the 2nd floor"),
    ("We met on October 4, 1974.", "We met on October 4th, 1974."),
]


@pytest.mark.parametrize(("written", "hyp"), SAID_ALIKE)
def test_what_sounds_the_same_scores_no_error(written: str, hyp: str) -> None:
    errors, words = score(written, hyp)
    assert (errors, words) == (0, len(canonical(written))) and words > 0, (canonical(written), canonical(hyp))
    # The corpus's spoken form ("eff bee eye", "three fifty-five pee em") lands on the same words.
    assert canonical(clean(written)) == canonical(written)


@pytest.mark.parametrize(("written", "hyp", "errors"), [
    ("Where is the nearest pharmacy?", "Where was the nearest pharmacy?", 1),
    ("Martin's number is (986) 288-9976.", "Martin's number is 986-288-9975.", 1),       # one wrong digit
    ("Martin's number is (986) 288-9976.", "Martin's number is 986-288-997.", 1),        # one missing digit
    ("the FBI laboratory", "the FBA laboratory", 1),
    ("the second floor", "the two floor", 1),
    ("The store closes at 3:55 p.m. tonight.", "The store closes at 3:55 a.m. tonight.", 1),
    ("The fare went up to $8.99.", "The fair went up to $8.99.", 1),                     # homophones still count
    ("Payment is due by August 16.", "Payment is due by August 60.", 2),                  # a digit per digit
    ("these fibers were examined", "these fibres were examined", 0),                       # British spelling
    ("these fibers were examined", "", 4),
])
def test_real_differences_still_count(written: str, hyp: str, errors: int) -> None:
    assert score(written, hyp)[0] == errors, (canonical(written), canonical(hyp))


def test_canonical_words() -> None:
    assert canonical("The FBI met at 8:15 p.m.") == "the f b i met at 8 1 5 p m".split()
    assert canonical("the eff bee eye met at eight fifteen pee em") == canonical("The FBI met at 8:15 p.m.")
    assert canonical("Call 986-288-9976.") == "call 9 8 6 2 8 8 9 9 7 6".split()
    assert canonical("I'm sure he'd go; they're late") == "i am sure he would go they are late".split()
    assert canonical("") == [] and canonical("...") == []


def test_wer_is_total_errors_over_total_reference_words() -> None:
    assert wer(["the FBI", "a b c"], ["the FBA", "a b c"]) == 1 / 7   # "the f b i" is four words
    with pytest.raises(ValueError):
        wer(["a"], [])


def test_the_heldout_file_is_the_corpus_heldout_as_written() -> None:
    rows = read_heldout()
    written = written_texts(transcripts=Path("/nonexistent"))  # what a fresh clone has
    assert [r.index for r in rows] == [int(line.split("\t")[0]) for line in WRITTEN.read_text().splitlines()[1:]]
    assert all(r.index in written for r in rows)
    assert written[2738].startswith("because she thought the FBI was")
    if TRANSCRIPTS.exists():
        lines = TRANSCRIPTS.read_text(encoding="utf-8").splitlines()
        assert all(written[r.index] == lines[r.index].strip() for r in rows)
    extra = [i for i in written if i >= 100_000]
    assert len(extra) == 3000 and written[100000] == "Please stand clear of the closing doors."


def _report() -> dict:
    rows = [{"index": 2738, "ref": "because she thought the eff bee eye was in possession",
             "hyp": "Because she thought the FBI was in possession.", "errors": 3, "words": 10, "set": "heldout"},
            {"index": 9, "ref": "not in the written table", "hyp": "not on the written table", "errors": 1,
             "words": 5, "set": "heldout"}]
    extra = [{"index": 100001, "ref": "delayed.", "hyp": "Delayed.", "errors": 0, "words": 1, "set": "extra"}]
    return {"kind": "teacher-piper", "wer": 4 / 15, "errors": 4, "words": 15, "per_sentence": rows,
            "per_sentence_other": extra,
            "sets": {"heldout": {"sentences": 2, "wer": 4 / 15, "errors": 4, "words": 15, "rtf": 5.0},
                     "extra": {"sentences": 1, "wer": 0.0, "errors": 0, "words": 1, "rtf": 4.0}}}


def test_rescore_reuses_the_hypotheses_and_keeps_the_old_figures() -> None:
    written = {2738: "because she thought the FBI was in possession", 100001: "Delayed."}
    new = rescore(_report(), written)
    assert [r["errors"] for r in new["per_sentence"]] == [0, 1]   # #9 is scored against its spoken text
    assert new["per_sentence"][0]["written"] == written[2738]
    assert (new["errors"], new["words"], new["sentences"]) == (1, 15, 2)
    assert new["sets"]["heldout"]["errors"] == 1 and new["sets"]["heldout"]["rtf"] == 5.0
    assert new["sets"]["extra"]["words"] == 1
    assert new["before_rescoring"]["errors"] == 4 and new["before_rescoring"]["sets"]["heldout"]["errors"] == 4
    assert new["scored_against_spoken_text"] == 1 and new["scoring"]["scheme"] == 2
    assert rescore(new, written)["before_rescoring"]["errors"] == 4   # rescoring twice keeps the first history


def test_rescore_leaves_its_input_as_it_was() -> None:
    """A report re-scored before it had sets: its history gets them in the copy, not in the input (review)."""
    import copy

    written = {2738: "because she thought the FBI was in possession", 100001: "Delayed."}
    old = rescore(_report(), written)
    del old["before_rescoring"]["sets"]
    kept = copy.deepcopy(old)
    new = rescore(old, written)
    assert new["before_rescoring"]["sets"] == old["sets"] and old == kept


def test_rescore_command_writes_a_new_file_beside_the_report(tmp_path: Path) -> None:
    report = tmp_path / "teacher-x.json"
    report.write_text(json.dumps(_report()))
    before = report.read_text()
    run = subprocess.run([sys.executable, "-m", "training.scoring", "rescore", str(report)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    assert report.read_text() == before
    new = json.loads((tmp_path / "teacher-x-rescored.json").read_text())
    row = new["per_sentence"][0]   # scored against held-out #2738 as written, which goes on past the hypothesis
    assert row["written"].startswith("because she thought the FBI was in possession of a great deal")
    assert row["errors"] == row["words"] - 10 and new["before_rescoring"]["errors"] == 4
    assert "heldout: WER" in run.stdout


def test_a_voice_is_held_to_its_teacher_scored_alike(tmp_path: Path) -> None:
    """evaluate.teacher_comparison re-scores an old teacher report now, and names what it spoke differently."""
    from training.evaluate import Result, teacher_comparison

    info = {"name": "whisper-tiny.en", "faster_whisper": "1.2.1", "ctranslate2": "4.8.5"}
    report = tmp_path / "teacher.json"
    report.write_text(json.dumps(_report() | {"recognizer": info}))   # errors 3 and 1: the old scorer's
    written = {2738: "because she thought the FBI was in possession"}
    results = [Result(2738, "because she thought the eff bee eye was in possession", "", 10, 10, 1.0, 0.1,
                      written[2738]),
               Result(9, "not in the new table", "", 5, 5, 1.0, 0.1, "not in the new table")]
    out = teacher_comparison(results, report, info, written)
    assert (out["teacher_errors"], out["teacher_words"]) == (1, 15)
    assert out["teacher_wer_same_sentences"] == 1 / 15 and out["teacher_spoke_other_text"] == [9]
    assert teacher_comparison(results, report, info | {"faster_whisper": "1.3"}, written)[
        "teacher_wer_same_sentences"] is None
    assert teacher_comparison(results[:1] + [Result(5, "x", "", 0, 1, 1.0, 0.1, "x")], report, info, written)[
        "teacher_wer_same_sentences"] is None
