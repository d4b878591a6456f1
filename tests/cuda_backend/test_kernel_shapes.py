"""Kernel shapes (issue 26): compile-time work splits the GPU check's sweep stage times side by side.

A :class:`KernelShape` becomes NVRTC ``-D`` defines, so each is its own cubin (its own cache
key); here every shape of the sweep compiles for sm_80 and sm_90 and ptxas's register caps
hold, and shapes reach the engine from ``RTVOICE_CUDA_KERNEL`` with one-line errors. That each
shape computes the same step is tests/cuda_backend/test_kernel_emulated.py's job.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rtvoice.cuda import nvrtc
from rtvoice.engine import cuda_engine
from rtvoice.engine.cuda_engine import NVRTC_OPTIONS, kernel_shape
from rtvoice.engine.cuda_step import (
    DEFAULT_SHAPE,
    KERNEL_SOURCE,
    KERNELS,
    PHASES,
    KernelShape,
    parse_shape,
    phase_grids,
)
from rtvoice.engine.step_weights import StepDims
from rtvoice.errors import BackendError

sys.path.insert(0, str(Path(__file__).parents[2] / "tools" / "gpu"))
import kernel_variants  # noqa: E402  # tools/gpu/kernel_variants.py


def test_a_shape_is_its_defines_and_today_is_the_default() -> None:
    first = KernelShape()  # the first GPU run's shape; DEFAULT_SHAPE is what the engine compiles
    assert first == KernelShape(tile=16, quad=4, ctx_channels=64, warp_scan=False, fused_max_registers=None,
                                lstm_unroll=2, inner_unroll=0, fold_query=False)
    assert first.defines() == ("-DTILE=16", "-DQUAD=4", "-DCTX_CH=64", "-DWARP_SCAN=0", "-DLSTM_UNROLL=2",
                               "-DINNER_UNROLL=0", "-DFOLD_QUERY=0")
    assert first.phases == PHASES and KernelShape(fold_query=True).phases == tuple(
        k for k in PHASES if k != "k_query")
    capped = KernelShape(tile=8, warp_scan=True, fused_max_registers=64)
    assert capped.defines()[-1] == "-DFUSED_MAXREG=64" and capped.name == "tile8-quad4-ctx64-warp-reg64"
    assert kernel_variants.SWEEP[0].shape == DEFAULT_SHAPE  # the engine's shape is each run's baseline
    assert len({v.shape for v in kernel_variants.SWEEP}) == len({v.name for v in kernel_variants.SWEEP}) \
        == len(kernel_variants.SWEEP)
    dims = StepDims(n_mel=80, r=1, prenet=256, encoder=512, attention_rnn=1024, decoder_rnn=1024, attention=128,
                    location_kernel=31)
    grids = phase_grids(dims, 1, 512, KernelShape(tile=4, ctx_channels=16))
    assert grids["k_energy"] == 128 and grids["k_context"] == 32  # the grids follow the shape


@pytest.mark.parametrize(("fields", "problem"), [
    ({"tile": 6}, "multiple of quad"), ({"quad": 3, "tile": 6}, "multiple of quad"), ({"tile": 128}, "1-64"),
    ({"ctx_channels": 48}, "divide 256"), ({"fused_max_registers": 16}, "32-255"), ({"lstm_unroll": 3}, "1, 2 or 4"),
    ({"inner_unroll": 3}, "0, 1, 2, 4, 8 or 16")])
def test_a_shape_the_kernel_cannot_compile_is_refused(fields: dict[str, int], problem: str) -> None:
    with pytest.raises(BackendError, match=problem):
        KernelShape(**fields)  # type: ignore[arg-type]


def test_shapes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RTVOICE_CUDA_KERNEL", raising=False)
    assert kernel_shape() is DEFAULT_SHAPE
    monkeypatch.setenv("RTVOICE_CUDA_KERNEL", " tile=8, warp_scan=1,ctx_channels=32,fused_max_registers=64,"
                       "fold_query=1")
    assert kernel_shape() == KernelShape(tile=8, ctx_channels=32, warp_scan=True, fused_max_registers=64,
                                         fold_query=True)
    assert parse_shape("fused_max_registers=0", KernelShape(fused_max_registers=64)).fused_max_registers is None
    for bad in ("tile=8;quad=2", "tile=eight", "tiles=8", "tile=6", "warp_scan", "tile=\u00b2"):  # str.isdigit("²")
        monkeypatch.setenv("RTVOICE_CUDA_KERNEL", bad)
        with pytest.raises(BackendError) as error:
            kernel_shape()
        assert str(error.value).startswith("RTVOICE_CUDA_KERNEL=") and "\n" not in str(error.value)


def test_the_engine_compiles_the_shape_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_module's cubin options are the engine's plus the shape's defines (so the cache keys differ)."""
    seen = []

    def fake_cached(source: str, name: str, arch: int, options: tuple[str, ...]) -> object:
        seen.append(options)
        raise BackendError("stop here", backend="cuda")

    monkeypatch.setattr(nvrtc, "cached_cubin", fake_cached)
    monkeypatch.setattr(cuda_engine, "get_device_info", lambda index: type("I", (), {"compute_capability": (9, 0)}))
    shape = KernelShape(tile=8, fused_max_registers=80)
    with pytest.raises(BackendError, match="stop here"):
        cuda_engine.load_module(0, shape)
    assert seen == [(*NVRTC_OPTIONS, *shape.defines())]


def test_ptxas_log_is_read_per_kernel() -> None:
    log = ("ptxas info    : Compiling entry function 'k_fused' for 'sm_90'\n"
           "ptxas         .     272 bytes stack frame, 1232 bytes spill stores, 1656 bytes spill loads\n"
           "ptxas info    : Used 64 registers, used 1 barriers\n"
           "ptxas info    : Compiling entry function 'k_query' for 'sm_90'\n"
           "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
           "ptxas info    : Used 31 registers, used 0 barriers\n")
    assert kernel_variants.parse_ptxas(log) == {
        "k_fused": {"stack": 272, "spill_stores": 1232, "spill_loads": 1656, "registers": 64},
        "k_query": {"stack": 0, "spill_stores": 0, "spill_loads": 0, "registers": 31}}


@pytest.mark.parametrize("arch", [80, 90])
def test_every_swept_shape_compiles_and_keeps_its_register_cap(arch: int) -> None:
    """NVRTC (no GPU needed) compiles each sweep shape to a cubin with every kernel; ptxas obeys the caps.

    The shapes compile on one thread per core: NVRTC releases the GIL, and each compile is
    single-threaded (14 shapes took 37 s an arch one at a time, on 2 cores).
    """
    with ThreadPoolExecutor(max(1, len(os.sched_getaffinity(0)))) as pool:
        builds = list(pool.map(lambda v: kernel_variants.build(v.shape, arch), kernel_variants.SWEEP))
    for variant, built in zip(kernel_variants.SWEEP, builds, strict=True):
        assert built.cubin[:4] == b"\x7fELF", variant.name
        assert all(kernel.encode() in built.cubin for kernel in KERNELS), variant.name
        assert set(built.usage) == set(KERNELS), (variant.name, built.usage)
        fused = built.usage["k_fused"]["registers"]
        assert fused <= (variant.shape.fused_max_registers or 255), (variant.name, fused)
    keys = {nvrtc.cache_key(KERNEL_SOURCE.read_text(), arch, (*NVRTC_OPTIONS, *v.shape.defines()), (13, 0))
            for v in kernel_variants.SWEEP}
    assert len(keys) == len(kernel_variants.SWEEP)  # each shape is its own cached cubin
