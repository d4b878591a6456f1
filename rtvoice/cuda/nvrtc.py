"""Compiling CUDA C at run time with NVRTC, and caching the cubins.

Why NVRTC: the fused decoder step (issue 26) ships as source, so rtvoice needs no CUDA
toolkit at install time, and NVRTC compiles without a GPU (CI compiles for sm_80 and
sm_90). It is compiled to a cubin (SASS) for the exact architecture, never to PTX: a
cubin loads on any driver of the same CUDA major version, PTX from a newer NVRTC would
not load on an older driver.

Cubins are cached on disk, keyed by the source's hash, the architecture, the options and
the NVRTC version, so a process pays for the compile once per machine. The cache is a
plain folder of files written atomically (rename), safe to delete at any time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtvoice.errors import BackendError

_log = logging.getLogger(__name__)

NVRTC_HINT = "Hint: pip install 'rtvoice[gpu]' (cuda-python and nvidia-cuda-nvrtc for CUDA 13)."


def _nvrtc() -> Any:
    try:
        from cuda.bindings import nvrtc
    except ImportError as exc:
        raise BackendError(f"NVRTC is unavailable: cuda-python is not installed ({exc}). {NVRTC_HINT}",
                           backend="cuda") from exc
    return nvrtc


def _ok(result: tuple[Any, ...], function: str) -> Any:
    nvrtc = _nvrtc()
    err, *values = result
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        name = getattr(err, "name", str(err))
        raise BackendError(f"{function} failed with {name}.", backend="cuda")
    return values[0] if len(values) == 1 else tuple(values)


def version() -> tuple[int, int]:
    """NVRTC's (major, minor); raises BackendError when the library cannot be loaded."""
    nvrtc = _nvrtc()
    try:
        major, minor = _ok(nvrtc.nvrtcVersion(), "nvrtcVersion")
    except BackendError:
        raise
    except Exception as exc:  # cuda.pathfinder raises its own error when libnvrtc.so is missing
        raise BackendError(f"NVRTC could not be loaded: {str(exc).splitlines()[0]}. {NVRTC_HINT}",
                           backend="cuda") from exc
    return int(major), int(minor)


def supported_archs() -> tuple[int, ...]:
    """The sm_XY architectures this NVRTC can compile for (as XY)."""
    return tuple(int(a) for a in _ok(_nvrtc().nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs"))


@dataclass(frozen=True)
class Compiled:
    """A cubin, and how it was obtained (for logs and the GPU check's report)."""

    cubin: bytes
    arch: int
    cached: bool
    seconds: float
    key: str


def compile_cubin(source: str, name: str, arch: int, options: Sequence[str] = ()) -> bytes:
    """Compile ``source`` (file name ``name`` in messages) to a cubin for sm_``arch``.

    Raises:
        BackendError: NVRTC is missing, or the source does not compile (the message holds
            NVRTC's log).
    """
    nvrtc = _nvrtc()
    version()  # a clear error when libnvrtc is missing
    prog = _ok(nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], []), "nvrtcCreateProgram")
    try:
        opts = [f"--gpu-architecture=sm_{arch}".encode(), b"-std=c++17", *(o.encode() for o in options)]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            size = _ok(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
            log = b" " * size
            _ok(nvrtc.nvrtcGetProgramLog(prog, log), "nvrtcGetProgramLog")
            text = log.rstrip(b"\0 ").decode(errors="replace")
            raise BackendError(f"NVRTC could not compile {name} for sm_{arch}:\n{text}", backend="cuda")
        size = _ok(nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
        cubin = b" " * size
        _ok(nvrtc.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
        return bytes(cubin)
    finally:
        _ok(nvrtc.nvrtcDestroyProgram(prog), "nvrtcDestroyProgram")


def default_cache_dir() -> Path:
    """``$RTVOICE_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/rtvoice/kernels``, else ``~/.cache/rtvoice/kernels``."""
    explicit = os.environ.get("RTVOICE_KERNEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rtvoice" / "kernels"


def cache_key(source: str, arch: int, options: Sequence[str], nvrtc_version: tuple[int, int]) -> str:
    """The cubin's identity: source hash, architecture, options and NVRTC version."""
    h = hashlib.sha256(source.encode())
    h.update(f"|sm_{arch}|{' '.join(options)}|nvrtc {nvrtc_version[0]}.{nvrtc_version[1]}".encode())
    return h.hexdigest()[:32]


def cached_cubin(source: str, name: str, arch: int, options: Sequence[str] = (),
                 cache_dir: Path | None = None) -> Compiled:
    """The cubin for sm_``arch``, from the cache or compiled (and then cached).

    A cache that cannot be written (read-only home) only costs a compile per process.
    """
    start = time.perf_counter()
    key = cache_key(source, arch, options, version())
    folder = cache_dir or default_cache_dir()
    path = folder / f"{Path(name).stem}-sm{arch}-{key}.cubin"
    if path.is_file():
        return Compiled(path.read_bytes(), arch, True, time.perf_counter() - start, key)
    cubin = compile_cubin(source, name, arch, options)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".tmp") as tmp:
            tmp.write(cubin)
        os.replace(tmp.name, path)
    except OSError as exc:
        _log.warning("could not cache the compiled kernel in %s: %s", folder, exc)
    seconds = time.perf_counter() - start
    _log.info("compiled %s for sm_%d in %.2f s", name, arch, seconds)
    return Compiled(cubin, arch, False, seconds, key)
