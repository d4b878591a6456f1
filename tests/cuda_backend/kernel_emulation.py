"""Build kernel_emulation.cpp (decoder_step.cu as C++, a host thread per CUDA thread) and launch it.

:class:`EmulatedLauncher` is a drop-in Launcher for rtvoice.engine.cuda_step: the real
kernel source runs on host memory (the emulated runtime's buffers), so the CPU suite
checks the CUDA C itself, not only its numpy twin.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from rtvoice.engine.cuda_step import DEFAULT_SHAPE, KERNEL_SOURCE, KernelShape, StepParams

HERE = Path(__file__).parent
EMULATION = HERE / "kernel_emulation.cpp"


def build(folder: Path, shape: KernelShape = DEFAULT_SHAPE) -> Path:
    """Compile the emulation of ``shape`` (cached by source hash and defines in ``folder``); skip without g++."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ is not installed: the CUDA C emulation cannot be built")
    defines = shape.defines()
    digest = hashlib.sha256(KERNEL_SOURCE.read_bytes() + EMULATION.read_bytes()
                            + " ".join(defines).encode()).hexdigest()[:16]
    lib = folder / f"kernel_emulation-{digest}.so"
    if not lib.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [compiler, "-O1", "-std=c++17", "-pthread", "-shared", "-fPIC", "-Wall", "-Wno-unknown-pragmas",
             f'-DKERNEL_PATH="{KERNEL_SOURCE}"', *defines, str(EMULATION), "-o", str(lib)],
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-4000:]
    return lib


class EmulatedLauncher:
    """Runs the kernels of decoder_step.cu on the CPU; counts launches per kernel."""

    def __init__(self, lib: Path, sms: int = 4) -> None:
        self._lib = ctypes.CDLL(str(lib))
        self._lib.emu_launch.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        assert self._lib.emu_params_size() == ctypes.sizeof(StepParams)  # the struct layouts agree
        self.sms = sms
        self.launches: dict[str, int] = {}

    def max_blocks_per_sm(self, kernel: str, threads: int, smem: int) -> int:
        return 1

    def launch(self, kernel: str, grid: int, threads: int, smem: int, stream: int, params: ctypes.Structure,
               *, cooperative: bool = False) -> None:
        assert threads == 256
        self.launches[kernel] = self.launches.get(kernel, 0) + 1
        rc = self._lib.emu_launch(kernel.encode(), grid, smem, ctypes.addressof(params))
        assert rc == 0, kernel
