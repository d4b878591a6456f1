"""The voices a server owns, found once at start and looked up by name only.

Names are folder names chosen by whoever runs the server. A client's voice name is only
ever a key into :class:`VoiceSet`'s dictionary, never part of a path, so no name can
reach a file outside the voice folders.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from ..config import VOICE_FILE
from ..errors import VoiceError
from ..voice import Voice, default_voice_path
from .config import ServerConfig

log = logging.getLogger("rtvoice.server")

#: Folder names served as voices: short, printable, no path separators.
VOICE_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

#: OpenAI's built-in voice names (openai 2.x ``speech_create_params.Voice``). Drop-in clients
#: hard-code them, so each is an alias of the default voice unless ``--voice-alias`` says otherwise.
OPENAI_VOICES: Final = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer",
                        "verse", "marin", "cedar")


def aliases_for(voices: Iterator[str] | list[str], default: str, given: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Alias -> served voice name: OpenAI's names to ``default``, then ``given``; real voice names win.

    Raises:
        VoiceError: an alias names a voice that is not served.
    """
    served = list(voices)
    aliases = {name: default for name in OPENAI_VOICES}
    for alias, target in given:
        if target not in served:
            raise VoiceError(f"--voice-alias {alias}={target}: no voice {target!r} is served. "
                             f"Note: the voices are {', '.join(served)}.")
        aliases[alias] = target
    return {alias: target for alias, target in aliases.items() if alias not in served}


def discover(config: ServerConfig) -> list[tuple[str, Path]]:
    """List the voices to serve as ``(name, folder)``, the default first.

    Args:
        config: ``voice`` and ``voices_dir`` say where to look; with neither, the voice
            shipped with rtvoice is served.

    Returns:
        One entry per voice folder (one holding ``voice.json``), in a stable order.

    Raises:
        VoiceError: ``voices_dir`` is missing or holds no voice, or two voices share a name.
    """
    found: list[tuple[str, Path]] = []
    if config.voice is not None:
        name = config.voice.resolve().name
        if not VOICE_NAME_RE.fullmatch(name):
            raise VoiceError(f"Voice folder name {name!r} cannot be served as a voice name. Hint: rename the folder "
                             "to letters, digits, '.', '_' or '-' (at most 64).", path=str(config.voice))
        found.append((name, config.voice))
    if config.voices_dir is not None:
        if not config.voices_dir.is_dir():
            raise VoiceError(f"Voices folder {config.voices_dir} does not exist.", path=str(config.voices_dir))
        for folder in sorted(config.voices_dir.iterdir()):
            if not (folder / VOICE_FILE).is_file():
                continue
            if not VOICE_NAME_RE.fullmatch(folder.name):
                log.warning("skipping voice folder %s: its name is not a valid voice name", folder)
                continue
            found.append((folder.name, folder))
        if not any(folder.parent == config.voices_dir for _, folder in found):
            raise VoiceError(f"Voices folder {config.voices_dir} holds no voice folder (none has {VOICE_FILE}).",
                             path=str(config.voices_dir))
    if not found:
        folder = default_voice_path()
        found.append((folder.name, folder))
    names = [name for name, _ in found]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise VoiceError(f"Two voices are named {duplicates[0]!r}. Hint: rename one of the folders.")
    return found


class VoiceSet:
    """Loaded voices by name; ``close()`` is idempotent and closes every voice.

    Use :meth:`open`, which loads all or none.
    """

    def __init__(self, voices: dict[str, Voice], aliases: tuple[tuple[str, str], ...] = ()) -> None:
        if not voices:
            raise VoiceError("A server needs at least one voice.")
        self._voices: dict[str, Voice] | None = voices
        self.default_name = next(iter(voices))
        self.aliases = aliases_for(list(voices), self.default_name, aliases)
        """Alias -> voice name (OpenAI's voice names, ``--voice-alias``); looked up by :meth:`get`."""

    @classmethod
    def open(cls, config: ServerConfig) -> VoiceSet:
        """Load every voice of ``config`` on its backend and device.

        Raises:
            VoiceError: a folder is missing, incomplete or corrupt.
            BackendError: the backend or device cannot be used.
        """
        found = discover(config)
        aliases_for([name for name, _ in found], found[0][0], config.voice_aliases)  # bad aliases: before loading
        voices: dict[str, Voice] = {}
        try:
            for name, folder in found:
                voices[name] = Voice.load(folder, backend=config.backend, device=config.device)
                log.info("serving voice %r from %s", name, folder)
        except BaseException:
            for voice in voices.values():
                voice.close()
            raise
        return cls(voices, config.voice_aliases)

    @property
    def _open(self) -> dict[str, Voice]:
        if self._voices is None:
            raise VoiceError("The server's voices are closed.")
        return self._voices

    @property
    def names(self) -> list[str]:
        return list(self._open)

    def get(self, name: str | None) -> Voice | None:
        """The voice called ``name`` (``None``: the default), or ``None`` if there is none."""
        name = self.default_name if name is None else self.aliases.get(name, name)
        return self._open.get(name)

    def items(self) -> Iterator[tuple[str, Voice]]:
        yield from self._open.items()

    def close(self) -> None:
        if self._voices is None:
            return
        voices, self._voices = self._voices, None
        for voice in voices.values():
            voice.close()
