"""Where installed voices live, and ``--voice NAME`` to folder.

A voice is a folder holding ``voice.json``; its name is the folder's name. Voices are
looked for, first match wins, in:

1. folders named on the command line (``rtvoice voices DIR...``);
2. ``$RTVOICE_VOICES``: folders separated by ``os.pathsep`` (``:`` on Linux);
3. ``$XDG_DATA_HOME/rtvoice/voices`` (default ``~/.local/share/rtvoice/voices``);
4. the voices shipped inside the package (``default``).

``--voice`` takes a path to a voice folder as well: an existing folder always wins over a
name, and a name never contains a path separator.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .config import VOICE_FILE
from .errors import VoiceError
from .voice_schema import show

VOICES_ENV: Final = "RTVOICE_VOICES"
PACKAGED: Final = Path(__file__).parent / "voices"


@dataclass(frozen=True)
class InstalledVoice:
    """One voice folder found on the search path."""

    name: str
    folder: Path
    source: str
    """Where it was found: ``given``, ``$RTVOICE_VOICES``, ``XDG data`` or ``packaged``."""
    shadowed: bool = False
    """Another voice of the same name comes earlier on the search path, so ``--voice NAME`` is not this one."""


def user_voices_dir() -> Path:
    """``$XDG_DATA_HOME/rtvoice/voices``, or ``~/.local/share/rtvoice/voices`` (the XDG default)."""
    data = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data) if os.path.isabs(data) else Path.home() / ".local" / "share"  # the spec ignores relative ones
    return base / "rtvoice" / "voices"


def search_path(extra: Sequence[Path] = ()) -> list[tuple[Path, str]]:
    """The folders searched for voices, in order, each with where it came from."""
    folders = [(Path(p), "given") for p in extra]
    folders += [(Path(p), f"${VOICES_ENV}") for p in os.environ.get(VOICES_ENV, "").split(os.pathsep) if p]
    folders.append((user_voices_dir(), "XDG data"))
    folders.append((PACKAGED, "packaged"))
    return folders


def installed(extra: Sequence[Path] = ()) -> list[InstalledVoice]:
    """Every voice folder on the search path, in search order; later ones of a taken name are ``shadowed``."""
    found: list[InstalledVoice] = []
    seen: set[str] = set()
    for root, source in search_path(extra):
        try:
            children = sorted(root.iterdir()) if root.is_dir() else []
        except OSError:  # unreadable: nothing found there
            children = []
        for folder in children:
            try:
                is_voice = (folder / VOICE_FILE).is_file()
            except OSError:
                is_voice = False
            if is_voice:
                found.append(InstalledVoice(folder.name, folder, source, shadowed=folder.name in seen))
                seen.add(folder.name)
    return found


def resolve_voice(ref: str, extra: Sequence[Path] = ()) -> Path:
    """The folder ``--voice REF`` means: an existing voice folder, or an installed voice's name.

    Raises:
        VoiceError: no folder and no installed voice goes by ``ref``; the message lists the names.
    """
    if not ref.strip() or "\0" in ref:
        raise VoiceError("the voice is empty: give a voice name (see: rtvoice voices) or a folder")
    path = Path(ref)
    try:
        is_dir = path.is_dir()
    except OSError:
        is_dir = False
    if is_dir:
        if not (path / VOICE_FILE).is_file():
            raise VoiceError(f"{_show(ref)} is a folder without {VOICE_FILE}, not a voice", path=ref)
        return path
    looks_like_path = os.sep in ref or (os.altsep is not None and os.altsep in ref) or ref.startswith(".")
    if not looks_like_path:
        for voice in installed(extra):
            if voice.name == ref and not voice.shadowed:
                return voice.folder
    names = sorted({v.name for v in installed(extra)})
    what = "the voice folder does not exist" if looks_like_path else "no installed voice and no folder of that name"
    raise VoiceError(f"{_show(ref)}: {what}. Note: installed voices: {', '.join(names) or 'none'}. "
                     f"Hint: `rtvoice voices` lists them; a folder needs {VOICE_FILE}.", path=ref)


def _show(text: str) -> str:
    return show(text, 60)
