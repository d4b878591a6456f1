"""``rtvoice voices``: the voices ``--voice NAME`` can name, and where each one lives."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import VoiceConfig
from ..errors import VoiceError
from ..voices_dir import VOICES_ENV, installed, search_path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "voices", help="list the installed voices",
        description=f"List the voices --voice NAME can name: those in the folders given, in ${VOICES_ENV} "
                    "(folders separated by ':'), in $XDG_DATA_HOME/rtvoice/voices (~/.local/share/rtvoice/voices) "
                    "and the one shipped with rtvoice, first match of a name first.")
    p.add_argument("folders", nargs="*", type=_folder, metavar="DIR", help="more folders of voice folders to search")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _folder(text: str) -> Path:
    """A folder to search, which must exist (a typo should not just list fewer voices)."""
    if not text or not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text[:100]!r} is not a folder")
    return Path(text)


def run(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for v in installed(args.folders):
        try:
            config = VoiceConfig.load(v.folder)
            about = f"{config.audio.sample_rate} Hz, {config.decoder.frames_per_step} frame(s)/step"
            problem = None
        except VoiceError as exc:
            about, problem = "broken", str(exc)
        rows.append({"name": v.name, "folder": str(v.folder), "source": v.source, "shadowed": v.shadowed,
                     "about": about, "error": problem})
    if args.json:
        print(json.dumps({"voices": rows, "search_path": [str(p) for p, _ in search_path(args.folders)]}, indent=2))
        return 0
    if not rows:
        print("no voices found in: " + ", ".join(str(p) for p, _ in search_path(args.folders)))
        return 1
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        note = " (shadowed by the one above)" if r["shadowed"] else ""
        note += f": {r['error']}" if r["error"] else ""
        print(f"{r['name']:<{width}}  {r['about']:<28} {r['source']:<16} {r['folder']}{note}")
    return 0
