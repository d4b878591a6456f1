"""Every command that takes the synthesis flags turns them into the same SynthesisConfig.

say, repl, serve and mqtt read ``--seed``, ``--chunk-frames``, ``--sigma``, ``--max-steps``,
``--rate`` and ``--max-spoken-chars`` through rtvoice.cli.synthesis_options; a flag one of
them dropped would show here as a field left at its default.
"""

from __future__ import annotations

import dataclasses

from rtvoice.cli import build_parser
from rtvoice.config import SynthesisConfig

FLAGS = ["--seed", "7", "--chunk-frames", "24", "--sigma", "0.5", "--max-steps", "300", "--rate", "1.5",
         "--max-spoken-chars", "500"]
NAMED = SynthesisConfig(seed=7, chunk_frames=24, sigma=0.5, max_decoder_steps=300, rate=1.5, max_spoken_chars=500)


def test_serve_and_mqtt_take_every_synthesis_flag() -> None:
    from rtvoice.commands.mqtt import announcer_config
    from rtvoice.commands.serve import server_config

    assert server_config(build_parser().parse_args(["serve", *FLAGS])).synthesis == NAMED
    assert announcer_config(build_parser().parse_args(["mqtt", *FLAGS])).synthesis == NAMED


def test_say_and_repl_take_every_synthesis_flag_with_their_volume_and_ssml() -> None:
    from rtvoice.commands.say import synthesis_config

    for argv in (["say", "Hello.", *FLAGS, "--volume", "0.5", "--ssml"], ["repl", *FLAGS, "--volume", "0.5", "--ssml"]):
        assert synthesis_config(build_parser().parse_args(argv)) == dataclasses.replace(NAMED, volume=0.5, ssml=True)
    plain = synthesis_config(build_parser().parse_args(["say", "Hello.", *FLAGS]))
    assert plain == dataclasses.replace(NAMED, volume=1.0, ssml=None)  # --volume's default; SSML when <speak>
