"""``rtvoice repl --rate --volume --ssml``: piped lines played on the fake ALSA card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from alsa_fake_card import MakeCard, Sink, cpu_voice, run_rtvoice

from rtvoice import SynthesisConfig, Voice

SHORT = ["--max-steps", "40"]


def expected(voice: Voice, line: str, **settings: object) -> np.ndarray:
    config = SynthesisConfig(max_decoder_steps=40, **settings)  # type: ignore[arg-type]
    audio = np.clip(np.concatenate([c.samples for c in voice.synthesize(line, config)]), -1, 1)
    kept: np.ndarray = audio[audio != 0]
    return kept


def test_rate_volume_and_ssml_lines_play_as_the_library_makes_them(
        make_card: MakeCard, tiny_voice: Voice, tiny_voice_dir: Path) -> None:
    card = make_card(Sink(speed=4.0))
    line = '<speak>Hello <break time="200ms"/> <prosody volume="-6dB">there</prosody>.</speak>'
    result = run_rtvoice(card, "repl", *cpu_voice(tiny_voice_dir), *SHORT, "--rate", "1.5", "--volume", "0.5",
                         input=line + "\n")
    assert result.returncode == 0, result.stderr
    sound = card.sound()
    want = expected(tiny_voice, line, rate=1.5, volume=0.5)
    assert len(want) == 2 * round(40 / 1.5) * 256  # two sentences at 1.5x; the break is silence, not kept
    np.testing.assert_allclose(sound, want, atol=1e-4)
