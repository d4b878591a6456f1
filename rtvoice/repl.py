"""``rtvoice repl``: speak each line as soon as it is entered, with barge-in.

Two front ends share one :class:`Speaker`:

- a terminal gets a prompt_toolkit prompt (line editing, history, a status toolbar); Ctrl-C or
  an empty line stops the speech at once and the prompt carries on; Ctrl-D quits;
- anything else (a pipe, a file) is read line by line with no prompt; blank lines are skipped
  (a blank line between paragraphs must not silence the text before it), and the command
  exits once the input has ended and every line has played.

Everything here runs on the event loop thread except the stdin reader thread of the piped
front end, whose lines cross into the loop through ``call_soon_threadsafe``, and the
Player's PortAudio thread (see :mod:`rtvoice.playback`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TextIO

import numpy as np

from .config import SynthesisConfig
from .errors import AudioDeviceError, RtvoiceError
from .playback import Player, rescan_devices
from .voice import Voice

log = logging.getLogger("rtvoice.repl")

PROMPT = "rtvoice> "
KEYS = "Enter: speak · Ctrl-C or empty line: stop · Ctrl-D: quit"


@dataclass(frozen=True)
class Status:
    """A snapshot of the speaker, for the toolbar."""

    speaking: str | None
    """The line being synthesized or still audible; None when silent."""
    queued: int
    """Lines waiting behind it."""
    first_audio_s: float | None
    """Time to first audio of the latest line, in seconds."""
    underruns: int
    """Underruns since the prompt started (synthesis falling behind playback)."""

    def toolbar(self) -> str:
        parts = [f"speaking: {textwrap.shorten(self.speaking, 40)}" if self.speaking else "idle"]
        if self.queued:
            parts.append(f"{self.queued} queued")
        if self.first_audio_s is not None:
            parts.append(f"first audio {self.first_audio_s * 1000:.0f} ms")
        if self.underruns:
            parts.append(f"{self.underruns} underrun(s)")
        return " · ".join(parts) + f"    [{KEYS}]"


class Speaker:
    """Speaks queued lines one after another on one Player; :meth:`stop` is barge-in.

    Use ``async with``: it owns the task ``rtvoice[repl].speaker`` (which owns each line's
    ``rtvoice[repl].utterance`` task) and the player, opened at the first line and kept open.
    A failed line (an error from rtvoice) is reported through ``notify`` and the next line
    goes on; after an audio device error the player is closed and reopened for the next line.

    Args:
        voice: the loaded voice.
        device: output device, as for :class:`~rtvoice.playback.Player`.
        volume: playback gain.
        config: per-line synthesis settings.
        notify: shows one message to the user (above the prompt, or on stderr).
        summaries: also notify a summary line for every line spoken (the piped front end).
    """

    def __init__(self, voice: Voice, *, device: str | int | None = None, volume: float = 1.0,
                 config: SynthesisConfig | None = None, notify: Callable[[str], None] = print,
                 summaries: bool = False) -> None:
        self._voice = voice
        self._device = device
        self._volume = volume
        self._config = config
        self._notify = notify
        self._summaries = summaries
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._player: Player | None = None
        self._device_lost = False
        self._task: asyncio.Task[None] | None = None
        self._utterance: asyncio.Task[None] | None = None
        self._current: str | None = None
        self._last: str | None = None
        self._first_audio_s: float | None = None
        self._underruns = 0
        self.errors = 0
        """Lines that failed with an error (the piped front end's exit status)."""

    async def __aenter__(self) -> Speaker:
        self._idle.set()
        self._task = asyncio.create_task(self._run(), name="rtvoice[repl].speaker")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.stop()
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await self._close_player()

    @property
    def status(self) -> Status:
        audible = self._player is not None and self._player.queued_s > 0
        speaking = self._current or (self._last if audible else None)
        return Status(speaking, self._queue.qsize(), self._first_audio_s, self._underruns)

    def say(self, text: str) -> None:
        """Queue a line; it is spoken once the ones before it have been."""
        self._idle.clear()
        self._queue.put_nowait(text)

    def stop(self) -> bool:
        """Barge-in: cancel the line being synthesized, forget queued lines, silence the player.

        Returns whether anything was stopped. The sound stops within the block the device is
        playing: the player's ring is flushed here, before the cancelled synthesis unwinds.
        """
        stopped = False
        while not self._queue.empty():
            self._queue.get_nowait()
            stopped = True
        if self._utterance is not None and not self._utterance.done():
            self._utterance.cancel()
            stopped = True
        if self._player is not None and self._player.flush() > 0:
            stopped = True
        return stopped

    async def wait_idle(self) -> None:
        """Wait until every queued line has been synthesized and has played."""
        await self._idle.wait()
        if self._player is not None:
            try:
                await self._player.adrain()
            except AudioDeviceError as exc:
                self._failed(exc)
                await self._close_player(lost=True)

    async def _run(self) -> None:
        while True:
            if self._queue.empty():
                self._idle.set()
            text = await self._queue.get()
            utterance = asyncio.create_task(self._speak(text), name="rtvoice[repl].utterance")
            self._utterance = utterance
            try:
                await asyncio.wait({utterance})
            finally:  # also when this task itself is cancelled: never leave the child behind
                if not utterance.done():
                    utterance.cancel()
                    await asyncio.gather(utterance, return_exceptions=True)
                self._utterance = None
                self._current = None
            if utterance.cancelled():
                continue  # barge-in
            exc = utterance.exception()
            if isinstance(exc, RtvoiceError):
                self._failed(exc)
                if isinstance(exc, AudioDeviceError):
                    await self._close_player(lost=True)
            elif exc is not None:
                raise exc  # a bug in rtvoice: let it surface

    async def _speak(self, text: str) -> None:
        player = await self._open_player()
        self._current = self._last = text
        self._first_audio_s = None
        before = player.stats
        audio_s = 0.0
        try:
            async with contextlib.aclosing(self._voice.stream(text, self._config)) as chunks:
                async for chunk in chunks:
                    if self._first_audio_s is None:
                        self._first_audio_s = chunk.timing.time_to_first_audio_s
                    await player.awrite(chunk.samples, last=chunk.is_last)
                    audio_s = chunk.timing.audio_s
        except Exception:
            if audio_s:  # broke off mid-line: end the utterance, or the idle player would count underruns
                with contextlib.suppress(AudioDeviceError):  # the error being raised says it all
                    await player.awrite(np.zeros(0, np.float32), last=True)
            raise
        after = player.stats
        underruns = after.underruns - before.underruns
        self._underruns += underruns
        if underruns:
            self._notify(f"underrun: {after.underrun_s - before.underrun_s:.2f} s of silence while speaking "
                         f"{textwrap.shorten(text, 30)!r} (synthesis fell behind playback)")
        if self._summaries:
            self._notify(f"spoke {textwrap.shorten(text, 40)!r}: first audio {self._first_audio_s or 0:.2f} s, "
                         f"{audio_s:.2f} s of audio")

    async def _open_player(self) -> Player:
        if self._player is None:
            if self._device_lost:
                # The device list PortAudio took at start-up may be stale after an unplug.
                await asyncio.to_thread(rescan_devices)
                self._device_lost = False
            player = Player(self._voice.sample_rate, device=self._device, volume=self._volume)
            # In a thread: probing the device may take a moment, and the prompt stays live. Shielded:
            # the open finishes in its thread even if this line is stopped meanwhile, so wait for it
            # and keep the player, rather than leave a device open that nobody would close.
            opening = asyncio.ensure_future(asyncio.to_thread(player.open))
            try:
                await asyncio.shield(opening)
            except asyncio.CancelledError:
                await asyncio.wait({opening})
                if not opening.cancelled() and opening.exception() is None:
                    self._player = player
                raise
            self._player = player
        return self._player

    async def _close_player(self, lost: bool = False) -> None:
        player, self._player = self._player, None
        self._device_lost = self._device_lost or lost
        if player is not None:
            await asyncio.to_thread(player.close)

    def _failed(self, exc: RtvoiceError) -> None:
        self.errors += 1
        self._notify(f"error: {exc}")


def history_path() -> Path:
    """Where the prompt keeps its history: ``$XDG_STATE_HOME/rtvoice/history``.

    ``XDG_STATE_HOME`` defaults to ``~/.local/state``, and a relative value is ignored, as the
    XDG Base Directory specification says.
    """
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "rtvoice" / "history"


async def prompt_lines(speaker: Speaker, history: Path | None) -> None:
    """The terminal front end; returns on Ctrl-D."""
    try:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, History, InMemoryHistory
        from prompt_toolkit.patch_stdout import patch_stdout
    except ImportError as exc:
        raise RtvoiceError("The interactive prompt needs prompt_toolkit. Hint: pip install "
                           "'prompt_toolkit>=3.0.40,<4', or pipe the lines in: printf 'Hi.\\n' | rtvoice repl") from exc
    store: History = InMemoryHistory()
    if history is not None:
        try:
            history.parent.mkdir(parents=True, exist_ok=True)
            store = FileHistory(str(history))
        except OSError as exc:
            log.warning("history not kept: cannot create %s: %s", history.parent, exc)
    session: PromptSession[str] = PromptSession(history=store, bottom_toolbar=lambda: speaker.status.toolbar(),
                                                refresh_interval=0.25)
    with patch_stdout(raw=True), _logging_above_prompt():
        while True:
            try:
                line = await session.prompt_async(PROMPT)
            except KeyboardInterrupt:  # Ctrl-C is a key press here (raw mode), not a signal
                speaker.stop()
                continue
            except EOFError:  # Ctrl-D on an empty line
                return
            if line.strip():
                speaker.say(line)
            else:
                speaker.stop()


@contextlib.contextmanager
def _logging_above_prompt() -> Iterator[None]:
    """Point the root log handlers at the patched stderr, so log lines print above the prompt."""
    swapped: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.__stderr__, sys.__stdout__):
            old = handler.setStream(sys.stderr)
            if old is not None:
                swapped.append((handler, old))
    try:
        yield
    finally:
        for handler, old in swapped:
            handler.setStream(old)


async def piped_lines(speaker: Speaker, stream: TextIO) -> None:
    """The non-terminal front end; returns once the input has ended and everything has played."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        # Runs on the rtvoice[repl].stdin thread: each line crosses into the loop through
        # call_soon_threadsafe. A daemon thread, because a blocked read must not keep the
        # process alive after Ctrl-C.
        try:
            for line in stream:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:  # the loop closed (we were interrupted): nobody reads any more
            return

    threading.Thread(target=read, name="rtvoice[repl].stdin", daemon=True).start()
    while (line := await lines.get()) is not None:
        if line.strip():
            speaker.say(line.strip())
    await speaker.wait_idle()


async def repl(voice: Voice, *, device: str | int | None = None, volume: float = 1.0,
               config: SynthesisConfig | None = None, interactive: bool | None = None,
               history: Path | None = None, stdin: TextIO | None = None) -> int:
    """Run the prompt (a terminal) or read lines (anything else); returns the exit status.

    Args:
        voice: the loaded voice.
        device: output device, as for :class:`~rtvoice.playback.Player`.
        volume: playback gain.
        config: per-line synthesis settings.
        interactive: force the terminal (True) or piped (False) front end; None decides by
            whether stdin and stdout are terminals.
        history: the prompt's history file (None: :func:`history_path`).
        stdin: where piped lines come from (default ``sys.stdin``).

    Returns:
        0, or 2 when a piped line failed (an error message was printed for it).
    """
    source = stdin or sys.stdin
    if interactive is None:
        interactive = source.isatty() and sys.stdout.isatty()

    def notify(message: str) -> None:
        print(message, file=sys.stderr, flush=True)  # above the prompt: stderr is patched there

    async with Speaker(voice, device=device, volume=volume, config=config, notify=notify,
                       summaries=not interactive) as speaker:
        if interactive:
            await prompt_lines(speaker, history or history_path())
            return 0
        await piped_lines(speaker, source)
        return 2 if speaker.errors else 0
