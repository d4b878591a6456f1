"""The ``rtvoice`` command: a thin shell over one library function per job.

Each subcommand lives in ``rtvoice/commands/<name>.py`` with ``register(subparsers)``,
which sets ``func`` to a ``(args) -> int`` handler. Errors rtvoice reports (RtvoiceError)
and usage errors (a bad option, a number out of range) become one line on stderr and exit
status 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import TYPE_CHECKING, NoReturn

from .errors import RtvoiceError

if TYPE_CHECKING:
    from .config import SynthesisConfig

COMMANDS = ("say", "info", "devices", "voices", "repl", "mqtt", "serve", "bench")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``rtvoice say: error: argument --seed: ...``), exit 2.

    Subparsers made by ``add_parser`` are of the same class, so every command gets this.
    """

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())  # argparse's messages may span lines; ours stay one
        self.exit(2, f"{self.prog}: error: {line} (see: {self.prog} --help)\n")


def add_voice_options(p: argparse.ArgumentParser) -> None:
    """The options every command that loads a voice shares."""
    from .commands.options import voice

    p.add_argument("--voice", type=voice, metavar="NAME|DIR",
                   help="an installed voice's name (see: rtvoice voices) or a voice folder "
                        "(default: the voice shipped with rtvoice)")
    p.add_argument("--backend", default="auto", choices=("auto", "cuda", "tensorrt", "onnxruntime"),
                   help="auto: TensorRT engines if present, then cuda (our fused decoder), ONNX Runtime CUDA, the CPU")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def add_synthesis_options(p: argparse.ArgumentParser) -> None:
    """``--seed``, ``--chunk-frames``, ``--sigma``, ``--max-steps``, ``--rate``, ``--max-spoken-chars``.

    Their ranges come from SynthesisConfig, so the CLI and the library agree.
    """
    from .commands.options import config_number
    from .config import (
        CHUNK_FRAMES_RANGE,
        MAX_DECODER_STEPS_RANGE,
        MAX_SPOKEN_CHARS,
        RATE_RANGE,
        SEED_RANGE,
        SIGMA_RANGE,
        SPOKEN_CHARS_RANGE,
        SynthesisConfig,
    )

    def span(r: tuple[float, float]) -> str:
        return f"{r[0]:g}-{r[1]:g}" if isinstance(r[0], float) else f"{r[0]}-{r[1]}"

    p.add_argument("--seed", type=config_number(SynthesisConfig, "seed"), default=0,
                   help=f"seed for the prenet dropout and WaveGlow noise, {span(SEED_RANGE)} (default 0)")
    p.add_argument("--chunk-frames", type=config_number(SynthesisConfig, "chunk_frames"),
                   help=f"mel frames per streamed chunk, {span(CHUNK_FRAMES_RANGE)} (voice default if unset)")
    p.add_argument("--sigma", type=config_number(SynthesisConfig, "sigma", float),
                   help=f"WaveGlow noise scale, {span(SIGMA_RANGE)} (voice default if unset)")
    p.add_argument("--max-steps", type=config_number(SynthesisConfig, "max_decoder_steps"),
                   help=f"most mel frames per sentence, the decoder's limit, {span(MAX_DECODER_STEPS_RANGE)} "
                        "(voice default if unset)")
    p.add_argument("--rate", type=config_number(SynthesisConfig, "rate", float),
                   help=f"speaking rate, {span(RATE_RANGE)}: 2 says it in half the time at the same pitch "
                        "(voice default if unset, usually 1)")
    p.add_argument("--max-spoken-chars", type=config_number(SynthesisConfig, "max_spoken_chars"),
                   default=MAX_SPOKEN_CHARS, metavar="N",
                   help=f"longest text of one request as read out (\"½\" is 9 characters), {span(SPOKEN_CHARS_RANGE)}; "
                        f"longer text is refused before any audio (default {MAX_SPOKEN_CHARS})")


def synthesis_options(args: argparse.Namespace) -> SynthesisConfig:
    """The :class:`~rtvoice.config.SynthesisConfig` that :func:`add_synthesis_options`'s flags name.

    say, repl, serve and mqtt all take those flags; read in this one place, a flag added
    there reaches every command. A command adds its own fields (say's ``--volume``) with
    :func:`dataclasses.replace`.
    """
    from .config import SynthesisConfig

    return SynthesisConfig(seed=args.seed, chunk_frames=args.chunk_frames, sigma=args.sigma,
                           max_decoder_steps=args.max_steps, rate=args.rate, max_spoken_chars=args.max_spoken_chars)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``only``) one with just the command being run.

    With ``only``, a command never pays for importing the others (the server's web stack,
    prompt_toolkit...).
    """
    parser = Parser(prog="rtvoice", description="Streaming Tacotron 2 + WaveGlow text-to-speech.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS if only not in COMMANDS else (only,):
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("rtvoice.commands"):
                continue  # a command not written yet
            _register_missing(sub, name, exc.name or "a package")
            continue
        module.register(sub)
    return parser


def _version() -> str:
    """The installed distribution's version (the source tree's pyproject when run from a checkout)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("rtvoice")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _register_missing(sub: argparse._SubParsersAction, name: str, missing: str) -> None:  # type: ignore[type-arg]
    """A command whose optional dependency is not installed still shows up, and says so."""

    def fail(_args: argparse.Namespace) -> int:
        raise RtvoiceError(f"'rtvoice {name}' needs the {missing!r} package, which is not installed. "
                           "Hint: pip install 'rtvoice' with its default dependencies.")

    p = sub.add_parser(name, help=f"(unavailable: {missing} is not installed)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=fail)


def main(argv: list[str] | None = None) -> int:
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.func(args)
        return result
    except RtvoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
