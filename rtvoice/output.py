"""Audio files written whole or not at all, opened before synthesis starts.

``rtvoice say --out x.mp3`` used to open its file after the whole synthesis, and a failure
(a full disk, a bad voice) left a 0-byte file behind. :class:`AtomicOutput` creates a
temporary file beside the target first (so a folder we cannot write to is an error before
any work), streams into it, and renames it over the target only when everything was
written. Targets that are not regular files (a FIFO, ``/dev/full``) and every path under
``/dev`` or ``/proc`` (``/dev/stdout`` redirected to a file is a regular file seen through a
link) are written in place: renaming over them would replace the device or the link itself.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

from .audio import wav_header
from .errors import RtvoiceError

IN_PLACE_ROOTS: Final = ("/dev/", "/proc/")
"""Paths under these are written in place, never replaced by a rename."""


class AtomicOutput:
    """One output file; use as a context manager and call :meth:`commit` when the data is complete.

    Leaving the ``with`` block without :meth:`commit` (an error, Ctrl-C) removes the
    temporary file and leaves any earlier file at ``path`` untouched.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._target = Path(os.path.realpath(path))  # through a symlink: replace the file, keep the link
        self.bytes_written = 0
        self._temp: Path | None = None
        self._handle: BinaryIO | None = None
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise self._error("cannot use", exc) from exc
        try:
            if mode is not None and stat.S_ISDIR(mode):
                raise RtvoiceError(f"Cannot write {self.path}: it is a folder.")
            special = os.path.abspath(self.path).startswith(IN_PLACE_ROOTS) or str(self._target).startswith(
                IN_PLACE_ROOTS)
            if mode is not None and (special or not stat.S_ISREG(mode)):  # a device, FIFO or link: in place
                self._handle = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed by close()
            else:
                fd, name = tempfile.mkstemp(dir=self._target.parent, prefix=f".{self._target.name[:100]}.",
                                            suffix=".part")
                self._temp = Path(name)
                self._handle = os.fdopen(fd, "wb")
        except OSError as exc:
            raise self._error("cannot create", exc) from exc

    @property
    def in_place(self) -> bool:
        """True for a device or FIFO, written directly (no rename, no seeking)."""
        return self._temp is None

    def write(self, data: bytes) -> None:
        """Append ``data``; a failed write (disk full) is an RtvoiceError naming the file."""
        if not data:
            return
        try:
            self._open_handle().write(data)
        except OSError as exc:
            raise self._error("could not write", exc) from exc
        self.bytes_written += len(data)

    def patch_wav_header(self, sample_rate: int, n_samples: int) -> None:
        """Rewrite a WAV's streaming header (sizes unknown) with the real sizes, where the file can seek."""
        if self.in_place:
            return
        handle = self._open_handle()
        try:
            handle.seek(0)
            handle.write(wav_header(sample_rate, n_samples))
            handle.seek(0, os.SEEK_END)
        except OSError as exc:
            raise self._error("could not write", exc) from exc

    def commit(self) -> None:
        """Flush to disk and move the finished file into place."""
        handle = self._open_handle()
        try:
            handle.flush()
            if not self.in_place:
                os.fsync(handle.fileno())
            handle.close()
            self._handle = None
            if self._temp is not None:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self._temp, 0o666 & ~umask)  # mkstemp made it 0600; a plain open() would not
                os.replace(self._temp, self._target)
                self._temp = None
        except OSError as exc:
            raise self._error("could not write", exc) from exc

    def close(self) -> None:
        """Drop an uncommitted file (idempotent)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()
            except OSError:
                pass  # closing a file we are throwing away: its flush error changes nothing
        if self._temp is not None:
            temp, self._temp = self._temp, None
            temp.unlink(missing_ok=True)

    def _open_handle(self) -> BinaryIO:
        if self._handle is None:
            raise RtvoiceError(f"{self.path} is already closed.")
        return self._handle

    def _error(self, what: str, exc: OSError) -> RtvoiceError:
        return RtvoiceError(f"Cannot write {self.path}: {what} it: {exc.strerror or exc}.")

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
