"""``rtvoice.bench.first_audio_parts``: clipping to the request's span, counting, and the union."""

from __future__ import annotations

import pytest

from rtvoice.bench import Call, first_audio_parts


def test_parts_are_clipped_to_the_span_and_outside_is_the_uncovered_time() -> None:
    calls = [
        Call("encoder", 1.0, 1.5),
        Call("decoder", 1.5, 3.0),
        Call("decoder", 3.0, 4.5),   # runs past the first audio at 4.0: clipped
        Call("vocoder", 3.5, 4.0),   # overlaps the decoder's second call (their own threads)
        Call("decoder", 4.5, 5.0),   # after the first audio: not a part of it
        Call("vocoder", 0.0, 0.5),   # before the request (another round): not a part
    ]
    parts = first_audio_parts(calls, start=0.75, first=4.0)
    assert parts["encoder_s"] == pytest.approx(0.5) and parts["encoder_calls"] == 1
    assert parts["decoder_s"] == pytest.approx(2.5) and parts["decoder_calls"] == 2
    assert parts["vocoder_s"] == pytest.approx(0.5) and parts["vocoder_calls"] == 1
    # Covered: 1.0-4.0 (the vocoder's 0.5 s lies inside the decoder's call), so 0.25 s outside.
    assert parts["outside_s"] == pytest.approx(0.25)


def test_gaps_between_calls_count_as_outside() -> None:
    calls = [Call("encoder", 0.1, 0.2), Call("decoder", 0.3, 0.6), Call("vocoder", 0.8, 0.9)]
    parts = first_audio_parts(calls, start=0.0, first=1.0)
    assert parts["outside_s"] == pytest.approx(1.0 - 0.1 - 0.3 - 0.1)


def test_no_calls_is_all_outside() -> None:
    parts = first_audio_parts([], start=2.0, first=2.5)
    assert parts["outside_s"] == pytest.approx(0.5)
    assert all(parts[f"{k}_calls"] == 0 and parts[f"{k}_s"] == 0 for k in ("encoder", "decoder", "vocoder"))
