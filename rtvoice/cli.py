"""The ``rtvoice`` command: a thin shell over one library function per job.

Each subcommand lives in ``rtvoice/commands/<name>.py`` with ``register(subparsers)``,
which sets ``func`` to a ``(args) -> int`` handler. Errors rtvoice reports (RtvoiceError)
become one line on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import RtvoiceError

COMMANDS = ("say", "info", "devices", "repl", "mqtt", "serve", "bench")


def add_voice_options(p: argparse.ArgumentParser) -> None:
    """The options every command that loads a voice shares."""
    p.add_argument("--voice", help="voice folder (default: the voice shipped with rtvoice)")
    p.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "onnxruntime"),
                   help="auto takes TensorRT engines when present, then ONNX Runtime CUDA, then the CPU")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def add_synthesis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed for the prenet dropout and WaveGlow noise")
    p.add_argument("--chunk-frames", type=int, help="mel frames per streamed chunk (voice default if unset)")
    p.add_argument("--sigma", type=float, help="WaveGlow noise scale (voice default if unset)")
    p.add_argument("--max-steps", type=int,
                   help="most mel frames per sentence, the decoder's limit (voice default if unset)")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``only``) one with just the command being run.

    With ``only``, a command never pays for importing the others (the server's web stack,
    prompt_toolkit...).
    """
    parser = argparse.ArgumentParser(prog="rtvoice", description="Streaming Tacotron 2 + WaveGlow text-to-speech.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
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
