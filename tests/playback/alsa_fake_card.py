"""A sound card for tests, made of ALSA configuration and a FIFO: real PortAudio, no hardware.

How it works: a temporary ``$HOME/.asoundrc`` defines PCM devices of ALSA's ``file`` plugin
(built into libasound, no extra package) over a ``null`` slave. PortAudio opens them like any
device; the ``file`` plugin writes every frame it is given into a FIFO, which a thread here
reads at a real-time pace. The pace matters: ``null`` has no clock and would swallow audio as
fast as PortAudio can produce it, so the FIFO's reader *is* the sound card's clock (the
writer blocks when the 4 KiB pipe is full, as a real device's buffer would).

Why a subprocess: ALSA reads its configuration (``~/.asoundrc``) once, when PortAudio
initialises, and keeps it for the life of the process. The player under test therefore runs
in a child process started with :meth:`FakeCard.env`, never in pytest's own process.

Unplugging closes the FIFO's reader: the ``file`` plugin's next write fails (EPIPE), ALSA
returns -EIO and PortAudio stops the stream, just as it does when a USB device is pulled.
"""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

import rtvoice

REPO = Path(rtvoice.__file__).resolve().parents[1]

PIPE_BYTES = 4096


@dataclass(frozen=True)
class Sink:
    """One fake output device.

    ``name == "default"`` replaces ALSA's default device. ``fmt`` is the sample format the
    device accepts: ``FLOAT_LE`` (PortAudio's float32 passes straight through) or ``S16_LE``
    (an ALSA ``linear`` plugin converts, like a 16-bit card).
    """

    name: str = "default"
    fmt: str = "FLOAT_LE"
    rate: int = 22050
    """The rate the reader paces at (the rate the player is expected to open the device at)."""
    channels: int = 2
    speed: float = 1.0
    """How much faster than real time the card plays (tests of pre-made audio need no real time)."""

    @property
    def dtype(self) -> str:
        return "<f4" if self.fmt == "FLOAT_LE" else "<i2"

    @property
    def frame_bytes(self) -> int:
        return self.channels * (4 if self.fmt == "FLOAT_LE" else 2)


@dataclass
class _Reader:
    sink: Sink
    fifo: Path
    data: bytearray = field(default_factory=bytearray)
    marks: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic time, total bytes received by then), after every read that got something."""
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeCard:
    """A temporary ALSA setup whose devices are read back here. Use as a context manager.

    Args:
        root: an empty temporary directory; it becomes the child process's ``$HOME``.
        sinks: the devices; none at all makes a machine with no output device.
    """

    def __init__(self, root: Path, sinks: tuple[Sink, ...] = (Sink(),)) -> None:
        self.root = root
        self.readers = {s.name: _Reader(s, root / f"{s.name}.fifo") for s in sinks}
        (root / ".asoundrc").write_text(self._config())

    def _config(self) -> str:
        if not self.readers:
            # A default that cannot open: PortAudio then lists no output device at all.
            return "pcm.!default { type hw card 63 }\nctl.!default { type hw card 63 }\n"
        parts = []
        for name, r in self.readers.items():
            head = "pcm.!default" if name == "default" else f"pcm.{name}"
            file_pcm = f'{{ type file slave.pcm {{ type null }} file "{r.fifo}" format "raw" }}'
            if r.sink.fmt == "FLOAT_LE":
                parts.append(f"{head} {file_pcm}")
            else:
                parts.append(f"{head} {{ type linear slave {{ pcm {file_pcm} format {r.sink.fmt} }} }}")
        return "\n".join(parts) + "\n"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for a child process that should play on this card."""
        env = dict(os.environ if base is None else base)
        for key in ("ALSA_CONFIG_PATH", "ALSA_CARD", "ALSA_PCM_CARD", "AUDIODEV"):
            env.pop(key, None)
        env.update(
            HOME=str(self.root),
            XDG_CONFIG_HOME=str(self.root / ".config"),
            XDG_STATE_HOME=str(self.root / "state"),
            JACK_NO_START_SERVER="1",  # PortAudio probes JACK; never start a server for it
        )
        return env

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeCard:
        for name in self.readers:
            self.plug(name)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for name in self.readers:
            self.unplug(name)

    def plug(self, name: str = "default") -> None:
        """Connect the device: create its FIFO and start reading it."""
        r = self.readers[name]
        if r.thread is not None:
            return
        if r.fifo.is_dir():
            r.fifo.rmdir()
        if not r.fifo.exists():
            os.mkfifo(r.fifo)
        r.stop.clear()
        # Open before returning, so that a player started right after never blocks opening the FIFO.
        fd = os.open(r.fifo, os.O_RDONLY | os.O_NONBLOCK)
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # a small device buffer: barge-in is audible at once
        r.thread = threading.Thread(target=self._read, args=(r, fd), name=f"fake-card[{name}]", daemon=True)
        r.thread.start()

    def unplug(self, name: str = "default") -> None:
        """Pull the device out: stop reading, so the player's next write fails.

        The FIFO is replaced by a directory, so that a player opening the device afterwards
        fails at once instead of blocking on a FIFO nobody reads.
        """
        r = self.readers[name]
        if r.thread is None:
            return
        r.stop.set()
        r.thread.join(5)
        r.thread = None
        r.fifo.unlink()
        r.fifo.mkdir()

    @staticmethod
    def _read(r: _Reader, fd: int) -> None:
        bytes_per_s = r.sink.rate * r.sink.frame_bytes * r.sink.speed
        budget = 0.0
        last = time.monotonic()
        try:
            while not r.stop.is_set():
                now = time.monotonic()
                # Credit for the time passed, capped so that an idle spell is not paid back in a burst.
                budget = min(budget + (now - last) * bytes_per_s, PIPE_BYTES)
                last = now
                if budget >= 1:
                    try:
                        chunk = os.read(fd, int(budget))
                    except BlockingIOError:
                        chunk = b""  # a writer is there but has nothing yet
                    if chunk:
                        budget -= len(chunk)
                        with r.lock:
                            r.data += chunk
                            r.marks.append((time.monotonic(), len(r.data)))
                time.sleep(0.002)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
        finally:
            os.close(fd)

    # -- what arrived ----------------------------------------------------------------------

    def frames(self, name: str = "default") -> npt.NDArray[Any]:
        """Every whole frame received so far, shape (frames, channels), in the device's format."""
        r = self.readers[name]
        with r.lock:
            raw = bytes(r.data)
        usable = len(raw) - len(raw) % r.sink.frame_bytes
        return np.frombuffer(raw[:usable], dtype=r.sink.dtype).reshape(-1, r.sink.channels)

    def frames_since(self, t: float, name: str = "default") -> npt.NDArray[Any]:
        """The frames that arrived after monotonic time ``t``."""
        r = self.readers[name]
        with r.lock:
            before = max((n for when, n in r.marks if when <= t), default=0)
            raw = bytes(r.data[before:])
        usable = len(raw) - len(raw) % r.sink.frame_bytes
        return np.frombuffer(raw[:usable], dtype=r.sink.dtype).reshape(-1, r.sink.channels)

    def sound(self, name: str = "default") -> npt.NDArray[Any]:
        """The left channel with every exact zero removed.

        Silence the device pads with (stream start, underruns, idle time) is exact zeros, and
        synthesized audio is almost never exactly zero, so this is the audio that played, in
        order, comparable to the expected audio with its zeros removed the same way.
        """
        left = self.frames(name)[:, 0]
        sound: npt.NDArray[Any] = left[left != 0]
        return sound

    def wait_for_sound(self, n: int, timeout: float, name: str = "default") -> bool:
        """Wait until at least ``n`` non-zero frames have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.sound(name)) >= n:
                return True
            time.sleep(0.02)
        return False


def without_zeros(samples: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``samples`` with every exact zero removed (see :meth:`FakeCard.sound`)."""
    kept: npt.NDArray[Any] = samples[samples != 0]
    return kept


# -- running code that plays on a card ---------------------------------------------------


MakeCard = Callable[..., FakeCard]
"""The ``make_card`` fixture: ``make_card(Sink(...), ..., no_devices=False) -> FakeCard``."""


def card_maker(tmp_path: Path) -> Iterator[MakeCard]:
    """The body of the ``make_card`` fixture (shared by tests/playback and tests/repl).

    ``make_card(Sink(...), ...)`` plugs in a fake card: by default one float32 ``default``
    device; ``make_card(no_devices=True)`` is a machine with no output device at all. Every
    card is unplugged at the end of the test.
    """
    cards: list[FakeCard] = []

    def make(*sinks: Sink, no_devices: bool = False) -> FakeCard:
        root = tmp_path / f"card{len(cards)}"
        root.mkdir()
        card = FakeCard(root, () if no_devices else sinks or (Sink(),))
        cards.append(card.__enter__())
        return card

    yield make
    for card in cards:
        card.__exit__(None, None, None)


def child_env(card: FakeCard) -> dict[str, str]:
    """The card's environment, importing rtvoice from this checkout."""
    env = card.env()
    env["PYTHONPATH"] = str(REPO) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_python(card: FakeCard, code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet in a child process that plays on ``card``."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=child_env(card), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def rtvoice_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rtvoice", *args]


def run_rtvoice(card: FakeCard, *args: str, timeout: float = 60,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``rtvoice ARGS`` in a child process that plays on ``card``."""
    return subprocess.run(rtvoice_command(*args), env=child_env(card), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, input=input)


def cpu_voice(folder: Path) -> list[str]:
    """The options that load the tiny test voice on the CPU."""
    return ["--voice", str(folder), "--backend", "onnxruntime", "--device", "cpu"]
