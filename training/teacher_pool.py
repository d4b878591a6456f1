"""Where the Piper teacher's processes run: ``make --teacher-device both`` (issue 22).

``training.data.make`` hands shards, one at a time, to a pool of processes: whichever is free
takes the next, so every shard is made once, by one process. With ``both`` the pool holds
``--jobs`` processes and the first ``--cuda-jobs`` of them to speak claim a CUDA slot; the rest
run on the CPU. Why: on the H100 machine (16 cores), 4 processes on CUDA made 41 shards of 64
sentences in 3 minutes, fewer a minute than 12 CPU processes had made there (132 in 7.3
minutes), while 12 cores sat idle. Not yet run on a GPU in this mode.

The slots live in a folder made fresh for each ``make`` (:func:`slots_folder`), where each
process also counts the texts it spoke, so the log says what each device contributed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("training.teacher")

CUDA_STAND_IN = "RTVOICE_TEST_TEACHER_CUDA_ON_CPU"
"""Tests only: set to 1, a process whose role is ``cuda`` runs ONNX Runtime's CPU provider.

It lets the mixed pool (roles, tallies, shards, manifest) and stretch.sh's ``auto`` probe run
where there is no GPU; it proves nothing about CUDA itself. Each session it touches says so in
a warning."""

_ROLES: dict[str, str] = {}
_SPOKEN: dict[str, int] = {}
"""Per process: its role in each slots folder, and how many texts it spoke there."""


def claim_role(folder: Path, cuda_jobs: int) -> str:
    """``cuda`` if this process holds or takes one of ``folder``'s ``cuda_jobs`` slots, else ``cpu``.

    Each slot is a file created exclusively (O_EXCL), so no two processes hold one. A process
    claims once, on its first text, and keeps its role for the pool's life.
    """
    key = str(folder)
    if key not in _ROLES:
        _ROLES[key] = "cpu"
        for k in range(cuda_jobs):
            try:
                fd = os.open(folder / f"cuda-{k}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            _ROLES[key] = "cuda"
            break
    return _ROLES[key]


def count_spoken(folder: Path, device: str) -> None:
    """One more text spoken by this process, written atomically (the pool may be terminated)."""
    name = f"{device}-{os.getpid()}.spoken"
    _SPOKEN[str(folder / name)] = _SPOKEN.get(str(folder / name), 0) + 1
    tmp = folder / (name + ".tmp")
    tmp.write_text(str(_SPOKEN[str(folder / name)]))
    os.replace(tmp, folder / name)


def tally(folder: Path) -> dict[str, tuple[int, int]]:
    """Per device: (processes that spoke, texts they spoke) in ``folder``."""
    out: dict[str, tuple[int, int]] = {}
    for f in sorted(folder.glob("*.spoken")):
        device = f.name.split("-", 1)[0]
        processes, texts = out.get(device, (0, 0))
        out[device] = (processes + 1, texts + int(f.read_text()))
    return out


def describe(counts: dict[str, tuple[int, int]], seconds: float) -> str:
    """One log line: what each device's processes spoke, and at what rate."""
    parts = [f"{device}: {n} process{'es' if n != 1 else ''} spoke {texts} texts "
             f"({60 * texts / max(seconds, 1e-9):.0f} a minute)"
             for device, (n, texts) in sorted(counts.items())]
    return "; ".join(parts) or "no texts spoken"


@contextmanager
def slots_folder() -> Iterator[Path]:
    """A fresh folder for one pool's slots and tallies, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="rtvoice-teacher-slots-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ort_provider(device: str) -> str:
    """ONNX Runtime's provider for ``device``: the device itself, unless :data:`CUDA_STAND_IN` is on."""
    if device == "cuda" and os.environ.get(CUDA_STAND_IN) == "1":
        log.warning("%s=1: this cuda process runs ONNX Runtime's CPU provider (tests only)", CUDA_STAND_IN)
        return "cpu"
    return device
