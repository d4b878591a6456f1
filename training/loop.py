"""What both training scripts share.

Device and precision, the time budget, the learning rate schedule, loss history, logging.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch

log = logging.getLogger("training")

Precision = str  # "bf16" | "fp16" | "fp32"


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(device: torch.device, threads: int | None) -> None:
    """Set torch's CPU threads: one by default on a CPU run.

    The decoder's many tiny operations ran 40 times slower with two threads contending
    for a busy 2-core machine than with one.
    """
    if device.type == "cpu" or threads:
        torch.set_num_threads(threads or 1)


def autocast(device: torch.device, precision: Precision, cache: bool = True,
             ) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A factory of autocast contexts for the forward pass; fp32 gives a no-op context.

    ``cache=False`` turns off autocast's cache of low-precision weight copies, which a CUDA
    graph capture cannot use (training/decoder_graphs.py).
    """
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


def grad_scaler(device: torch.device, precision: Precision) -> torch.amp.GradScaler:
    """Loss scaling for fp16 only (bf16 has float32's exponent range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def default_precision(device: torch.device) -> Precision:
    return "bf16" if device.type == "cuda" else "fp32"


@dataclass(frozen=True)
class Schedule:
    """Linear warm-up, then constant, then halving every ``halflife`` iterations after ``decay_start``."""

    lr: float
    warmup: int
    decay_start: int
    halflife: int

    def at(self, iteration: int, warm_from: int = 0) -> float:
        """The rate at ``iteration``; ``warm_from`` restarts the warm-up (a resume without optimizer state)."""
        warm = min(1.0, (iteration - warm_from + 1) / max(1, self.warmup))
        decay = 0.5 ** (max(0, iteration - self.decay_start) / max(1, self.halflife))
        return self.lr * warm * decay


class Budget:
    """Wall-clock budget of one run, and when to checkpoint.

    Training stops at ``minutes`` less ``reserve_s`` (kept for the last checkpoint and its
    plots), with a checkpoint every ``every_minutes``.
    """

    def __init__(self, minutes: float, every_minutes: float, reserve_s: float) -> None:
        self.start = time.monotonic()
        self.finish = self.start + minutes * 60  # the whole run's end, the reserve included
        self.end = self.finish - reserve_s
        self.every = every_minutes * 60
        self.last_checkpoint = self.start

    def over(self) -> bool:
        return time.monotonic() >= self.end

    def checkpoint_due(self) -> bool:
        return time.monotonic() - self.last_checkpoint >= self.every

    def checkpointed(self) -> None:
        self.last_checkpoint = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def minutes_left(self) -> float:
        """Of the whole run, reserve included: what a restarted run may take."""
        return (self.finish - time.monotonic()) / 60


class History:
    """Loss series by name ("train/mel", "val/gate", ...): lists of (iteration, value)."""

    def __init__(self, series: dict[str, list[tuple[int, float]]] | None = None) -> None:
        self.series: dict[str, list[tuple[int, float]]] = {k: [tuple(v) for v in vs]  # type: ignore[misc]
                                                           for k, vs in (series or {}).items()}

    def add(self, iteration: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            if math.isfinite(value):
                self.series.setdefault(key, []).append((iteration, float(value)))

    def last(self, key: str) -> float | None:
        """The latest value of ``key``, or None before the first."""
        values = self.series.get(key)
        return values[-1][1] if values else None

    def to_dict(self) -> dict[str, list[tuple[int, float]]]:
        return self.series


def start_run(args: argparse.Namespace, name: str) -> tuple[torch.device, Precision, Budget]:
    """Begin a trainer's run: log to ``args.out``, settle device, precision and threads, start the budget.

    Both trainers begin alike from the flags of :func:`add_run_arguments` and
    :func:`add_device_arguments` (TF32 matmuls and convolutions allowed on CUDA), so a change
    to how a run starts reaches both. The budget counts from this call.
    """
    setup_logging(args.out, name)
    device = pick_device(args.device)
    precision = args.precision or default_precision(device)
    set_threads(device, args.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return device, precision, Budget(args.minutes, args.checkpoint_minutes, args.reserve_seconds)


def restore_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any] | None, iteration: int) -> int:
    """Load a resumed run's optimizer ``state``, if any; return ``warm_from`` for :meth:`Schedule.at`.

    Without saved state (none was kept, or it no longer fits the parameters) AdamW's moments
    start from zero, so the learning rate warms up again from the resumed ``iteration``; a
    fresh run is at iteration 0 and warms up from there either way.
    """
    if state is None:
        return iteration
    optimizer.load_state_dict(state)
    return 0


@dataclass(frozen=True)
class WindowMeans:
    """One log line's worth of training: each loss's mean, over how many steps and seconds."""

    means: dict[str, float]
    steps: int
    seconds: float


class LossWindow:
    """The losses of the steps since the last log line, summed on the device.

    Both trainers log this way: adding tensors costs no host sync per step, and the means
    divide by the steps actually summed, so the short first window after a resume (or a
    graph capture's warm-up) reads like the others.
    """

    def __init__(self) -> None:
        self._restart()

    def _restart(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self._start = time.monotonic()

    def add(self, parts: Mapping[str, torch.Tensor]) -> None:
        """Add one step's losses (tensors on the training device; they are detached)."""
        for key, value in parts.items():
            self._sums[key] = self._sums.get(key, 0.0) + value.detach()
        self.steps += 1

    def take(self) -> WindowMeans:
        """The means since the last take (one sync), and start a new window."""
        means = {key: float(total) / self.steps for key, total in self._sums.items()}
        taken = WindowMeans(means, self.steps, time.monotonic() - self._start)
        self._restart()
        return taken


def setup_logging(folder: Path, name: str) -> None:
    """Log to stdout and append to FOLDER/NAME.log (which travels back with the checkpoint)."""
    folder.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(folder / f"{name}.log")):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate; a tensor one (a CUDA-graphed step reads it) is filled in place."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


class CaptureFailed(RuntimeError):
    """CUDA graphs could not be captured; this process's CUDA state is suspect, train in a new one."""


def restart_eagerly(module: str, argv: list[str], budget: Budget, what: str, exc: CaptureFailed) -> NoReturn:
    """Log that capturing ``what`` failed; rerun as this process, ``--cuda-graphs off``, for the minutes left.

    A new process, because a failed capture can leave the CUDA random generator mid-capture
    (dropout then fails outside any graph: it cost Tacotron 2 a stretch on the H200).
    Captures come before the first step, so nothing trained is lost.
    """
    log.warning("CUDA graph capture of %s failed (%s); restarting eagerly in a fresh process (this one's CUDA state "
                "is suspect)", what, exc)
    left = max(0.05, budget.minutes_left())
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, "-m", module, *argv, "--cuda-graphs", "off", "--minutes", f"{left:.3f}"])


def check_finite(model: torch.nn.Module) -> None:
    """Refuse to checkpoint weights that went NaN or infinite (a diverged run)."""
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise FloatingPointError(f"{len(bad)} parameter tensors are not finite (first: {bad[0]}); not saving. "
                                 "Hint: resume from the last checkpoint with a lower --lr, or --precision fp32.")


def shrink_batch(device: torch.device, size: int, items: int, frames: int) -> int:
    """After a batch of ``items`` x ``frames`` ran out of memory: free the cache, log, and return 3/4 of ``size``.

    The caller drops that batch and draws new ones at the returned size, so a --batch-size
    chosen a little too high costs one batch, not the run (and not the GPU call it is in).
    """
    if device.type == "cuda":
        torch.cuda.empty_cache()
    smaller = max(1, size * 3 // 4)
    log.warning("out of memory on a batch of %d items x %d frames%s: batch size %d -> %d",
                items, frames, memory_note(device), size, smaller)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return smaller


def memory_note(device: torch.device) -> str:
    """Peak device memory so far, for the log (choosing --batch-size)."""
    if device.type != "cuda":
        return ""
    return f", peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"


def add_run_arguments(p: argparse.ArgumentParser, presets: list[str], data: Path, out: Path) -> None:
    """The flags every trainer takes first: the time budget, resuming, folders and the size preset."""
    p.add_argument("--minutes", type=float, required=True, help="wall-time budget of this run")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out, if any")
    p.add_argument("--data", type=Path, default=data)
    p.add_argument("--follow-data", type=float, default=0.0, metavar="SECONDS",
                   help="every this many seconds, take in the shards --data's manifest lists beyond those loaded "
                        "(a teacher still making the corpus beside the run; 0: the data loaded at the start)")
    p.add_argument("--out", type=Path, default=out)
    p.add_argument("--preset", choices=sorted(presets), default="default", help="model sizes of a new run")


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every trainer shares for precision, device, threads and checkpointing."""
    p.add_argument("--precision", choices=("bf16", "fp16", "fp32"), help="default: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--device", help="default: cuda if available")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: 1 on a CPU run, torch's own on CUDA)")
    p.add_argument("--checkpoint-minutes", type=float, default=3.0)
    p.add_argument("--reserve-seconds", type=float, default=30.0, help="kept from --minutes for the last save")
    p.add_argument("--profile-steps", type=int, default=0,
                   help="profile this many steps early in the run and log where their time went "
                        "(training/profile_steps.py)")
    p.add_argument("--optimizer-state", choices=("bf16", "fp32", "none"), default="bf16",
                   help="how AdamW's moments are saved (none: resume warms up a fresh optimizer)")
