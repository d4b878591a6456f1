"""Worker processes that take jobs one at a time, and a parent that sees one die (for training.data.make).

Why not ``multiprocessing.Pool``: a worker killed while it holds a task (SIGKILL, the OOM killer,
an abort inside ONNX Runtime's CUDA code) never returns it, and the pool waits forever. One
killed while it waits for a task leaves the pool's shared queue lock taken, so the other
workers starve and even ``Pool.terminate()`` hangs on that lock. Here each worker has a pipe of
its own and nothing is shared, so a death shows as that pipe's end and the process's exit code,
and stopping never waits on a lock.

Like the pool it replaces: spawned processes (no CUDA state inherited), whichever is free takes
the next job, and each process lives for the whole run (so per-process state, such as an ONNX
Runtime session or a ``both`` slot, is made once). A job's exception is raised in the parent.
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

STOP_GRACE_S = 5.0
"""How long a stopped worker gets to exit on SIGTERM before it is killed."""


class WorkerDied(RuntimeError):
    """A worker process exited while the run still needed it (its job, if any, is lost)."""


class RemoteTraceback(Exception):
    """The traceback of a job's exception, as the worker printed it (the raised exception's cause)."""


def _serve(conn: Connection, fn: Callable[[Any], Any]) -> None:
    """A worker's loop: run ``fn`` on each job received, send back (ok, result or exception)."""
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            reply: tuple[bool, Any, str] = (True, fn(job), "")
        except Exception as exc:  # noqa: BLE001 (raised again in the parent)
            reply = (False, exc, traceback.format_exc())
        try:
            conn.send(reply)
        except Exception:  # noqa: BLE001 (an exception that does not pickle)
            conn.send((False, RuntimeError(repr(reply[1])), reply[2]))


class ShardWorkers:
    """``jobs`` processes running ``fn``; :meth:`next` returns results in the order they finish."""

    def __init__(self, fn: Callable[[Any], Any], jobs: int, context: str = "spawn") -> None:
        ctx = multiprocessing.get_context(context)
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        for _ in range(jobs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, fn), daemon=True)
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        self.waiting: deque[Any] = deque()
        self.busy: set[int] = set()

    def __enter__(self) -> ShardWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, jobs: list[Any]) -> None:
        self.waiting.extend(jobs)
        for k in range(len(self.procs)):
            self._feed(k)

    @property
    def pending(self) -> int:
        """Jobs submitted whose results have not been returned yet."""
        return len(self.waiting) + len(self.busy)

    def next(self, timeout: float) -> Any | None:
        """The next finished job's result; None if none finished within ``timeout`` seconds.

        Raises :class:`WorkerDied` when any worker has exited, and a job's own exception.
        """
        ready = wait([self.conns[k] for k in self.busy], timeout) if self.busy else []
        for conn in ready:  # a result that arrived comes before any news of a death
            k = self.conns.index(conn)
            try:
                ok, value, trace = conn.recv()
            except EOFError:  # its process died: said below, once it is reaped
                self.procs[k].join(STOP_GRACE_S)
                continue
            self.busy.discard(k)
            if not ok:
                raise value from RemoteTraceback(trace)
            self._feed(k)
            return value
        dead = self.died()
        if dead:
            raise WorkerDied(dead)
        return None

    def died(self) -> str:
        """How the first worker seen to have exited ended (e.g. ``pid 812, SIGKILL``); empty while all live."""
        for proc in self.procs:
            code = proc.exitcode
            if code is not None:
                how = signal.Signals(-code).name if -code in signal.valid_signals() else f"exit {code}"
                return f"pid {proc.pid}, {how}"
        return ""

    def stop(self) -> None:
        """End every worker (a job in flight is lost): SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`."""
        for proc in self.procs:
            if proc.exitcode is None:
                proc.terminate()
        for proc in self.procs:
            proc.join(STOP_GRACE_S)
            if proc.exitcode is None:
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.waiting.clear()
        self.busy.clear()

    def _feed(self, k: int) -> None:
        """Give worker ``k`` the next waiting job, if it is idle and one waits."""
        if k in self.busy or not self.waiting:
            return
        try:
            self.conns[k].send(self.waiting[0])
        except (BrokenPipeError, ConnectionResetError):
            return  # its process died: next() says so
        self.waiting.popleft()
        self.busy.add(k)
