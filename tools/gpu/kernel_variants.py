"""The kernel shapes the GPU check's ``sweep`` stage times side by side, and what ptxas made of each.

The first H100 run (docs/gpu.md, 2026-12-07) measured 54 µs a full-size step at batch 1;
the energies phase (10.6 µs) and the other small phases are latency, and the fused kernel
(128 registers, two blocks an SM) lost to seven kernels at batch 16 and 64. Each candidate
here is a :class:`~rtvoice.engine.cuda_step.KernelShape`, compiled with its own ``-D``
defines, so one GPU run measures them all against the engine's shape (``default``, first)
and the data picks:

- ``warp_scan``: a row's text length read by each warp alone (no block barriers, no shared
  atomics) in the energies and context phases;
- ``tile8``, ``tile4``, ``tile4-quad2``: more, shorter energy work items (a 130-symbol row
  is 9 busy blocks at ``TILE`` 16, 17 at 8, 33 at 4);
- ``ctx32``, ``ctx16``: more, shorter context work items (8 blocks at batch 1 today);
- ``reg80``, ``reg64``: a register cap for ``k_fused``; with 256 threads a block, an SM
  holds 2 blocks at 128 registers, 3 at 80 and 4 at 64 (96 would still be 2 blocks: all
  spills, no more blocks, so it is not swept); ``reg80-unroll1`` with one LSTM weight chunk
  in flight instead of two, which spills less under the cap (ptxas: 448 bytes of spill
  loads against 1116 on sm_90);
- ``tile8-ctx32-foldq``: no query phase; each energy item computes its row's 128 x 1024
  query products (one launch and one grid barrier less a step, at the price of repeating
  those products in every item: for batch 1, likely a loss at 16);
- ``tile8-ctx32-inner8``: the prenet's 80-input loop and the location conv's 62-tap loop
  unrolled by 8, so eight weight loads are in flight instead of what the compiler chose
  (the prenet kernel, 6.9 µs for 0.1 M weights, is timed alone too);
- ``tile8-ctx32`` and ``tile8-ctx32-reg64``: the likely winners together, so a combined
  step is measured rather than added up.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from typing import Any

from rtvoice.engine.cuda_engine import NVRTC_OPTIONS
from rtvoice.engine.cuda_step import DEFAULT_SHAPE, KERNEL_SOURCE, KernelShape

ENERGY = {"modes": ("phases", "fused"), "batches": (1, 16), "phases": ("k_energy", "k_context")}
"""Shapes that change the attention phases: per-step time in both per-step modes, and those phases alone."""
REGISTERS = {"modes": ("fused", "persistent"), "batches": (1, 16, 64), "phases": ()}
"""Shapes that change the fused kernel's registers: the grid-barrier modes up to batch 64."""


@dataclass(frozen=True)
class Variant:
    """One candidate: its shape and what the sweep times of it."""

    name: str
    shape: KernelShape
    modes: tuple[str, ...]
    batches: tuple[int, ...]
    phases: tuple[str, ...]
    """Phase kernels timed alone (64 launches in a graph) at each of ``batches``."""


def _variant(name: str, what: dict[str, Any], **shape: Any) -> Variant:
    return Variant(name, KernelShape(**shape), what["modes"], what["batches"], what["phases"])


SWEEP: tuple[Variant, ...] = (
    Variant("default", DEFAULT_SHAPE, ("phases", "fused", "persistent"), (1, 16, 64), ("k_energy", "k_context")),
    _variant("warp_scan", ENERGY, warp_scan=True),
    _variant("tile8", ENERGY, warp_scan=True, tile=8),
    _variant("tile4", ENERGY, warp_scan=True, tile=4),
    _variant("tile4-quad2", ENERGY, warp_scan=True, tile=4, quad=2),
    _variant("ctx32", ENERGY, warp_scan=True, ctx_channels=32),
    _variant("ctx16", ENERGY, warp_scan=True, ctx_channels=16),
    _variant("tile8-ctx32", ENERGY, warp_scan=True, tile=8, ctx_channels=32),
    _variant("tile8-ctx32-foldq", ENERGY, warp_scan=True, tile=8, ctx_channels=32, fold_query=True),
    Variant("tile8-ctx32-inner8", KernelShape(warp_scan=True, tile=8, ctx_channels=32, inner_unroll=8),
            ENERGY["modes"], ENERGY["batches"], ("k_prenet", *ENERGY["phases"])),
    _variant("reg80", REGISTERS, fused_max_registers=80),
    _variant("reg64", REGISTERS, fused_max_registers=64),
    _variant("reg80-unroll1", REGISTERS, fused_max_registers=80, lstm_unroll=1),
    _variant("tile8-ctx32-reg64", REGISTERS, warp_scan=True, tile=8, ctx_channels=32, fused_max_registers=64),
)
"""The engine's shape first (the baseline of the same run), then the candidates (each over
KernelShape's own defaults, the first GPU run's shape)."""


@dataclass(frozen=True)
class Build:
    """A shape compiled for one architecture, with ptxas's account of each kernel."""

    cubin: bytes
    seconds: float
    usage: dict[str, dict[str, int]]
    """Per kernel: registers, spill_stores and spill_loads (bytes), stack (bytes)."""


_ENTRY = re.compile(r"Compiling entry function '(\w+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")


def parse_ptxas(log: str) -> dict[str, dict[str, int]]:
    """What ``ptxas -v`` logged, per entry function (each function's lines follow its name)."""
    usage: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for line in log.splitlines():
        if entry := _ENTRY.search(line):
            current = usage.setdefault(entry.group(1), {})
        elif current is not None and (frame := _FRAME.search(line)):
            current.update(stack=int(frame.group(1)), spill_stores=int(frame.group(2)),
                           spill_loads=int(frame.group(3)))
        elif current is not None and (used := _USED.search(line)):
            current["registers"] = int(used.group(1))
    return usage


@functools.lru_cache(maxsize=64)
def build(shape: KernelShape, arch: int) -> Build:
    """Compile ``shape`` for sm_``arch`` as the engine does (its options and defines) plus ptxas -v.

    ``-v`` only adds the log; the code is the engine's. Not in the cubin cache (the sweep
    wants the log); kept for the process, so the tests compile each shape once.
    """
    from rtvoice.cuda import nvrtc as ours
    from rtvoice.errors import BackendError

    nvrtc = ours._nvrtc()
    ours.version()
    start = time.perf_counter()
    options = [f"--gpu-architecture=sm_{arch}", "-std=c++17", *NVRTC_OPTIONS, *shape.defines(),
               "--ptxas-options=-v"]
    prog = ours._ok(nvrtc.nvrtcCreateProgram(KERNEL_SOURCE.read_bytes(), KERNEL_SOURCE.name.encode(), 0, [], []),
                    "nvrtcCreateProgram")
    try:
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(options), [o.encode() for o in options])
        size = ours._ok(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
        raw = b" " * size
        ours._ok(nvrtc.nvrtcGetProgramLog(prog, raw), "nvrtcGetProgramLog")
        log = raw.rstrip(b"\0 ").decode(errors="replace")
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise BackendError(f"NVRTC could not compile {shape.name} for sm_{arch}:\n{log}", backend="cuda")
        size = ours._ok(nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
        cubin = b" " * size
        ours._ok(nvrtc.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
    finally:
        ours._ok(nvrtc.nvrtcDestroyProgram(prog), "nvrtcDestroyProgram")
    return Build(bytes(cubin), time.perf_counter() - start, parse_ptxas(log))
